-- The 13-week cash forecast: the cash expected in each week after the as-of date on the
-- invoices open then, in the reporting currency, with an 80 % band (the actual receipts of
-- 8 weeks in 10 should fall inside it). Made by the forecast model (docs/models.md) from each
-- customer's payment delays, open disputes (held until their expected resolution) and active
-- promises; its measured error is forecast_accuracy.wape (kpi_summary.cash_forecast_wape).
-- Invoices not yet issued are not in it. Empty until the models have run on this state.
CREATE OR REPLACE VIEW cash_forecast AS
SELECT week,
       week_start,
       week_end,
       CAST(expected AS DECIMAL(18, 2)) AS expected,
       CAST(low AS DECIMAL(18, 2)) AS low,
       CAST(high AS DECIMAL(18, 2)) AS high,
       currency,
       forecast_as_of
FROM forecast_weeks
ORDER BY week;
