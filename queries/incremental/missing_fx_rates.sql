-- `missing_fx_rates` from the ledger (see ../missing_fx_rates.sql for the definition it must
-- match): currencies of existing invoices with no closing rate, their invoices and what is
-- open on them at the as-of date.
CREATE OR REPLACE VIEW missing_fx_rates AS
WITH missing AS (
    SELECT s.currency, sum(s.invoices) AS invoices
    FROM params p
    CROSS JOIN ledger_sales s
    LEFT JOIN fx_closing fx ON fx.currency = s.currency
    WHERE fx.rate IS NULL
      AND s.invoice_date <= p.as_of
    GROUP BY s.currency
),
still_open AS (
    SELECT o.currency, sum(o.amount) AS open_amount
    FROM params p
    CROSS JOIN ledger_open o
    WHERE o.open_from <= p.as_of
    GROUP BY o.currency
)
SELECT m.currency, m.invoices, o.open_amount
FROM missing m
LEFT JOIN still_open o ON o.currency = m.currency
ORDER BY m.currency;
