-- The balance figures behind the KPI summary, one row, in the reporting currency at the
-- closing rate: what is open at the as-of date (all of it, the part not yet due, and the
-- open-days products of `add_weighted` over invoices with a positive open amount), what was
-- open at the window's start, credit sales in the window, the cash of the window on invoices
-- already past due at its start, and how many invoices have no rate.
CREATE OR REPLACE VIEW kpi_balances AS
SELECT coalesce(sum(b.open_amount * b.rate), 0) AS total_ar,
       coalesce(sum(CASE WHEN b.days_past_due <= 0 THEN b.open_amount * b.rate ELSE 0 END), 0) AS current_ar,
       sum(CASE WHEN b.open_amount > 0 THEN b.open_amount * b.rate * greatest(b.days_past_due, 0) END) AS open_days,
       sum(CASE WHEN b.open_amount > 0 THEN b.open_amount * b.rate END) AS open_positive,
       coalesce(sum(b.open_amount_at_start * b.rate), 0) AS ar_at_start,
       coalesce(sum(CASE WHEN b.days_past_due_at_start > 0 THEN b.open_amount_at_start * b.rate END), 0) AS past_due_ar_at_start,
       coalesce(sum(CASE WHEN b.invoice_date > p.window_start THEN b.amount * b.rate END), 0) AS credit_sales,
       -- Cash dated in the window on invoices that were past due at the window's start.
       coalesce(sum(CASE WHEN b.days_past_due_at_start > 0 AND b.open_amount_at_start IS NOT NULL
                         THEN b.paid_in_window * b.rate END), 0) AS recovered_cash,
       count(*) FILTER (WHERE b.rate IS NULL) AS unconverted_invoices
FROM params p
CROSS JOIN invoice_balances b;
