-- `aging_totals_exact` from the ledger (see ../aging_totals_exact.sql for the definition it must match):
-- the open amount at the as-of date per number of days past due, then per bucket.
CREATE OR REPLACE VIEW aging_totals_exact AS
WITH open_by_days AS (
    SELECT p.as_of - o.due_date AS days_past_due,
           sum(o.amount * fx.rate) AS open_amount_rc
    FROM params p
    CROSS JOIN ledger_open o
    LEFT JOIN fx_closing fx ON fx.currency = o.currency
    WHERE o.open_from <= p.as_of
    GROUP BY p.as_of - o.due_date
)
SELECT k.bucket,
       k.ord,
       coalesce(sum(d.open_amount_rc), 0) AS open_amount_rc
FROM aging_buckets k
LEFT JOIN open_by_days d
  ON d.days_past_due >= k.min_days AND (k.max_days IS NULL OR d.days_past_due <= k.max_days)
GROUP BY k.bucket, k.ord;
