-- Credit sales per currency and invoice date: the amount and number of the invoices that
-- exist (not void), in their own currency.
CREATE OR REPLACE VIEW daily_sales AS
SELECT currency,
       invoice_date,
       sum(amount) AS amount,
       count(*) AS invoices
FROM invoices
WHERE status <> 'void'
  AND invoice_date IS NOT NULL
GROUP BY currency, invoice_date;
