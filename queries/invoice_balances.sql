-- Every invoice that exists at the as-of date (issued by then, not void), with what is still
-- open on it at the as-of date and at the start of the window:
--   open = amount - payments dated up to that day - adjustments dated up to that day.
-- Payments and adjustments both settle an invoice, so they are summed together, once per
-- invoice; `paid_in_window` is the cash (payments only) dated in the window. Amounts are in the
-- invoice's currency; `rate` is the closing rate (null when none). `days_since_settled` counts
-- the days since its last settlement dated up to the as-of date (null: none), and
-- `last_settled_by_cash` says whether cash came that day (else only credits).
CREATE OR REPLACE VIEW invoice_balances AS
WITH settlements AS (
    SELECT invoice_id, payment_date AS settled_on, amount, true AS is_cash
    FROM payments
    WHERE invoice_id IS NOT NULL
    UNION ALL
    SELECT invoice_id, adjustment_date AS settled_on, amount, false AS is_cash
    FROM adjustments
),
settled AS (
    SELECT s.invoice_id,
           sum(CASE WHEN s.settled_on <= p.as_of THEN s.amount ELSE 0 END) AS settled,
           sum(CASE WHEN s.settled_on <= p.window_start THEN s.amount ELSE 0 END) AS settled_at_start,
           sum(CASE WHEN s.is_cash AND s.settled_on > p.window_start AND s.settled_on <= p.as_of
                    THEN s.amount ELSE 0 END) AS paid_in_window,
           max(CASE WHEN s.settled_on <= p.as_of THEN s.settled_on END) AS last_settled_on,
           max(CASE WHEN s.is_cash AND s.settled_on <= p.as_of THEN s.settled_on END) AS last_paid_on
    FROM params p
    CROSS JOIN settlements s
    GROUP BY s.invoice_id
)
SELECT i.invoice_id,
       i.customer_id,
       i.currency,
       i.invoice_date,
       i.due_date,
       i.amount,
       i.amount - coalesce(s.settled, 0) AS open_amount,
       CASE WHEN i.invoice_date <= p.window_start
            THEN i.amount - coalesce(s.settled_at_start, 0)
       END AS open_amount_at_start,
       p.as_of - i.due_date AS days_past_due,
       p.window_start - i.due_date AS days_past_due_at_start,
       coalesce(s.paid_in_window, 0) AS paid_in_window,
       p.as_of - s.last_settled_on AS days_since_settled,
       s.last_settled_on = s.last_paid_on AS last_settled_by_cash,
       fx.rate
FROM params p
CROSS JOIN invoices i
LEFT JOIN settled s ON s.invoice_id = i.invoice_id
LEFT JOIN fx_closing fx ON fx.currency = i.currency
WHERE i.invoice_date <= p.as_of
  AND i.status <> 'void';
