-- What is open per customer and bucket at the as-of date, in the reporting currency converted
-- exactly (ten decimals, not rounded), and on how many invoices; fully paid invoices are left
-- out. `aging` rounds it to cents so that the customers add up to the bucket totals.
CREATE OR REPLACE VIEW aging_exact AS
SELECT o.customer_id,
       o.bucket,
       sum(o.open_amount_rc) AS open_amount_rc,
       count(*) AS invoices
FROM open_items o
WHERE o.open_amount <> 0
GROUP BY o.customer_id, o.bucket;
