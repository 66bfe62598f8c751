-- Every invoice that exists at the as-of date (issued by then, not void), with what is still
-- open on it at the as-of date and at the start of the window:
--   open = amount - payments dated up to that day - adjustments dated up to that day.
-- Amounts in the invoice's currency; `rate` is the closing rate (null when there is none).
CREATE OR REPLACE VIEW invoice_balances AS
WITH cash AS (
    SELECT pay.invoice_id,
           sum(CASE WHEN pay.payment_date <= p.as_of THEN pay.amount ELSE 0 END) AS paid,
           sum(CASE WHEN pay.payment_date <= p.window_start THEN pay.amount ELSE 0 END) AS paid_at_start
    FROM payments pay
    CROSS JOIN params p
    WHERE pay.invoice_id IS NOT NULL
    GROUP BY pay.invoice_id
),
adjusted AS (
    SELECT a.invoice_id,
           sum(CASE WHEN a.adjustment_date <= p.as_of THEN a.amount ELSE 0 END) AS adjusted,
           sum(CASE WHEN a.adjustment_date <= p.window_start THEN a.amount ELSE 0 END) AS adjusted_at_start
    FROM adjustments a
    CROSS JOIN params p
    GROUP BY a.invoice_id
)
SELECT i.invoice_id,
       i.customer_id,
       i.currency,
       i.invoice_date,
       i.due_date,
       i.amount,
       i.amount - coalesce(c.paid, 0) - coalesce(a.adjusted, 0) AS open_amount,
       CASE WHEN i.invoice_date <= p.window_start
            THEN i.amount - coalesce(c.paid_at_start, 0) - coalesce(a.adjusted_at_start, 0)
       END AS open_amount_at_start,
       p.as_of - i.due_date AS days_past_due,
       p.window_start - i.due_date AS days_past_due_at_start,
       fx.rate
FROM invoices i
CROSS JOIN params p
LEFT JOIN cash c ON c.invoice_id = i.invoice_id
LEFT JOIN adjusted a ON a.invoice_id = i.invoice_id
LEFT JOIN fx_closing fx ON fx.currency = i.currency
WHERE i.invoice_date <= p.as_of
  AND i.status <> 'void';
