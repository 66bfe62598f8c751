-- The invoices still open at the as-of date (an overpaid one, with a negative open amount,
-- included): `invoice_status` without the paid-off ones. What a BI user counts per aging
-- bucket; the rules are in invoice_status.
CREATE OR REPLACE VIEW open_items AS
SELECT *
FROM invoice_status
WHERE open_amount <> 0;
