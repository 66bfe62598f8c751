-- Each invoice that exists at the as-of date, with how it was paid as known then: `paid_date`
-- is the first day its settlements (payments and adjustments dated up to the as-of date)
-- covered its amount, null while they do not; `days_late` is that day minus the due date
-- (negative: paid early) or, while unpaid, the as-of date minus the due date. This is the
-- outcome the risk model learns from and is backtested on: "late" means `days_late` above
-- the `late_days` asked for.
CREATE OR REPLACE VIEW invoice_outcomes AS
WITH settlements AS (
    SELECT invoice_id, payment_date AS settled_on, amount
    FROM payments
    WHERE invoice_id IS NOT NULL
    UNION ALL
    SELECT invoice_id, adjustment_date AS settled_on, amount
    FROM adjustments
    WHERE invoice_id IS NOT NULL
),
daily AS (
    SELECT s.invoice_id, s.settled_on, sum(s.amount) AS amount
    FROM params p
    CROSS JOIN settlements s
    WHERE s.settled_on <= p.as_of
    GROUP BY s.invoice_id, s.settled_on
),
running AS (
    SELECT invoice_id,
           settled_on,
           sum(amount) OVER (PARTITION BY invoice_id ORDER BY settled_on
                             ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS settled
    FROM daily
),
paid AS (
    SELECT r.invoice_id, min(r.settled_on) AS paid_date
    FROM running r
    JOIN invoices i ON i.invoice_id = r.invoice_id
    WHERE r.settled >= i.amount
    GROUP BY r.invoice_id
)
SELECT i.invoice_id,
       i.customer_id,
       i.invoice_date,
       i.due_date,
       i.amount,
       i.currency,
       pd.paid_date,
       pd.paid_date IS NOT NULL AS paid,
       CAST(coalesce(pd.paid_date, p.as_of) - i.due_date AS BIGINT) AS days_late
FROM params p
CROSS JOIN invoices i
LEFT JOIN paid pd ON pd.invoice_id = i.invoice_id
WHERE i.invoice_date <= p.as_of
  AND i.status <> 'void';
