-- The totals line of the aging report: what is open at the as-of date per aging bucket, in the
-- reporting currency, in cents, every bucket present. Money is rounded once: the buckets add
-- up to total AR rounded to the cent (`kpi_summary.total_ar`), and `allocate_cents` puts the
-- cents rounding each bucket on its own would lose or add on the buckets rounding moved
-- furthest (queries/README.md).
CREATE OR REPLACE VIEW aging_totals AS
WITH total AS (
    SELECT CAST(sum(open_amount_rc) AS DECIMAL(18, 2)) AS total_ar
    FROM aging_totals_exact
)
SELECT e.bucket,
       e.ord,
       allocate_cents(e.open_amount_rc, t.total_ar) OVER (ORDER BY e.ord) AS open_amount_rc
FROM aging_totals_exact e
CROSS JOIN total t;
