-- `daily_sales` from the ledger (see ../daily_sales.sql for the definition it must match).
CREATE OR REPLACE VIEW daily_sales AS
SELECT currency, invoice_date, amount, invoices
FROM ledger_sales;
