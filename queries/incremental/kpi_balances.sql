-- `kpi_balances` from the ledger (see ../kpi_balances.sql for the definition it must match).
--
-- `ledger_open` holds each invoice's open amount as dated rows: `+amount` from its invoice
-- date, `-settlement` from each payment's or adjustment's date, summed per currency, day and
-- due date. The open amount at a day is the sum of the rows dated up to it, so AR as of any
-- day is one filtered sum. Invoices overpaid on some day are flagged `never_overpaid = false`
-- and also listed one by one in `ledger_overpaid`, where `add_weighted` takes them only on
-- the days their open amount is positive.
CREATE OR REPLACE VIEW kpi_balances AS
WITH open_rows AS (
    SELECT o.open_from, o.due_date, o.never_overpaid, o.amount * fx.rate AS amount_rc
    FROM ledger_open o
    LEFT JOIN fx_closing fx ON fx.currency = o.currency
),
balances AS (
    SELECT coalesce(sum(CASE WHEN o.open_from <= p.as_of THEN o.amount_rc END), 0) AS total_ar,
           coalesce(sum(CASE WHEN o.open_from <= p.as_of AND o.due_date >= p.as_of
                             THEN o.amount_rc END), 0) AS current_ar,
           sum(CASE WHEN o.never_overpaid AND o.open_from <= p.as_of AND o.due_date < p.as_of
                    THEN o.amount_rc * (p.as_of - o.due_date) END) AS open_days,
           sum(CASE WHEN o.never_overpaid AND o.open_from <= p.as_of THEN o.amount_rc END) AS open_positive,
           coalesce(sum(CASE WHEN o.open_from <= p.window_start THEN o.amount_rc END), 0) AS ar_at_start,
           coalesce(sum(CASE WHEN o.open_from <= p.window_start AND o.due_date < p.window_start
                             THEN o.amount_rc END), 0) AS past_due_ar_at_start
    FROM params p
    CROSS JOIN open_rows o
),
overpaid_open AS (
    SELECT o.invoice_id, o.currency, o.due_date, sum(o.amount) AS open_amount
    FROM params p
    CROSS JOIN ledger_overpaid o
    WHERE o.open_from <= p.as_of
    GROUP BY o.invoice_id, o.currency, o.due_date
),
overpaid AS (
    SELECT sum(CASE WHEN x.open_amount > 0
                    THEN x.open_amount * fx.rate * greatest(p.as_of - x.due_date, 0) END) AS open_days,
           sum(CASE WHEN x.open_amount > 0 THEN x.open_amount * fx.rate END) AS open_positive
    FROM params p
    CROSS JOIN overpaid_open x
    LEFT JOIN fx_closing fx ON fx.currency = x.currency
),
sales AS (
    SELECT coalesce(sum(CASE WHEN s.invoice_date > p.window_start THEN s.amount * fx.rate END), 0) AS credit_sales,
           coalesce(sum(CASE WHEN fx.rate IS NULL THEN s.invoices END), 0) AS unconverted_invoices
    FROM params p
    CROSS JOIN ledger_sales s
    LEFT JOIN fx_closing fx ON fx.currency = s.currency
    WHERE s.invoice_date <= p.as_of
),
recovered AS (
    -- Cash dated in the window on invoices that were past due at the window's start.
    SELECT coalesce(sum(r.amount * fx.rate), 0) AS recovered_cash
    FROM params p
    CROSS JOIN ledger_recovery r
    LEFT JOIN fx_closing fx ON fx.currency = r.currency
    WHERE r.past_due_from <= p.window_start
      AND r.payment_date > p.window_start
      AND r.payment_date <= p.as_of
)
SELECT b.total_ar,
       b.current_ar,
       CASE WHEN b.open_positive IS NOT NULL OR o.open_positive IS NOT NULL
            THEN coalesce(b.open_days, 0) + coalesce(o.open_days, 0) END AS open_days,
       CASE WHEN b.open_positive IS NOT NULL OR o.open_positive IS NOT NULL
            THEN coalesce(b.open_positive, 0) + coalesce(o.open_positive, 0) END AS open_positive,
       b.ar_at_start,
       b.past_due_ar_at_start,
       s.credit_sales,
       r.recovered_cash,
       s.unconverted_invoices
FROM balances b
CROSS JOIN overpaid o
CROSS JOIN sales s
CROSS JOIN recovered r;
