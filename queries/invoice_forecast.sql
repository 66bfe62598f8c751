-- Each open invoice's part of the cash forecast: what is open on it and what of that is
-- expected in cash within the 13 weeks (both in the reporting currency), the expected date of
-- receipt (the probability-weighted day within the 13 weeks; null when nothing is expected in
-- them) and why ("payment pattern", "promised for …", "held: open dispute, …").
-- The weeks of cash_forecast add these up by day of receipt, not by expected_date.
CREATE OR REPLACE VIEW invoice_forecast AS
SELECT invoice_id,
       customer_id,
       expected_date,
       CAST(expected_amount AS DECIMAL(18, 2)) AS expected_amount,
       CAST(open_amount AS DECIMAL(18, 2)) AS open_amount,
       currency,
       basis,
       forecast_as_of
FROM forecast_invoices;
