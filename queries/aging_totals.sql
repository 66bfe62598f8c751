-- What is open at the as-of date per aging bucket (reporting currency), every bucket present:
-- the totals line of the aging report.
CREATE OR REPLACE VIEW aging_totals AS
SELECT k.bucket,
       k.ord,
       coalesce(sum(o.open_amount_rc), 0) AS open_amount_rc
FROM aging_buckets k
LEFT JOIN open_items o ON o.bucket = k.bucket
GROUP BY k.bucket, k.ord;
