-- The aging report: per customer and bucket, what is open (reporting currency) and on how many
-- invoices. Fully paid invoices are left out.
CREATE OR REPLACE VIEW aging AS
SELECT o.customer_id,
       o.bucket,
       CAST(sum(o.open_amount_rc) AS DECIMAL(18, 2)) AS open_amount_rc,
       count(*) AS invoices
FROM open_items o
JOIN aging_buckets k ON k.bucket = o.bucket
WHERE o.open_amount <> 0
GROUP BY o.customer_id, o.bucket, k.ord
ORDER BY o.customer_id, k.ord;
