-- The aging report: per customer and bucket, what is open at the as-of date (reporting
-- currency, in cents) and on how many invoices; fully paid invoices are left out. Money is
-- rounded once: the customers of a bucket add up to its line in `aging_totals`
-- (`allocate_cents`, queries/README.md).
CREATE OR REPLACE VIEW aging AS
SELECT a.customer_id,
       a.bucket,
       allocate_cents(a.open_amount_rc, t.open_amount_rc)
           OVER (PARTITION BY a.bucket ORDER BY a.customer_id) AS open_amount_rc,
       a.invoices
FROM aging_exact a
JOIN aging_totals t ON t.bucket = a.bucket
ORDER BY a.customer_id, t.ord;
