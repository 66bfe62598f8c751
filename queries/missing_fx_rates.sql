-- Currencies of invoices existing at the as-of date (open or paid) that have no closing rate:
-- their amounts (open amounts, and sales in the window) cannot be converted to the reporting
-- currency and are left out of the totals. Load the missing rates into fx_rates to fix it.
CREATE OR REPLACE VIEW missing_fx_rates AS
SELECT currency, count(*) AS invoices, sum(open_amount) AS open_amount
FROM invoice_balances
WHERE rate IS NULL
GROUP BY currency
ORDER BY currency;
