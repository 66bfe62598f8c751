-- What is open at the as-of date per aging bucket, in the reporting currency converted exactly
-- (ten decimals, not rounded), every bucket present. `aging_totals` rounds it to cents.
CREATE OR REPLACE VIEW aging_totals_exact AS
SELECT k.bucket,
       k.ord,
       coalesce(sum(o.open_amount_rc), 0) AS open_amount_rc
FROM aging_buckets k
LEFT JOIN open_items o ON o.bucket = k.bucket
GROUP BY k.bucket, k.ord;
