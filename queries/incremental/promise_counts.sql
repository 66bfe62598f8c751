-- `promise_counts` from the ledger (see ../promise_counts.sql for the definition it must
-- match): each promise's outcome is decided when it or the cash it is judged on changes, and
-- promises are counted per promised date and outcome.
CREATE OR REPLACE VIEW promise_counts AS
SELECT coalesce(sum(l.promises), 0) AS promises,
       coalesce(sum(CASE WHEN l.kept THEN l.promises END), 0) AS kept
FROM params p
CROSS JOIN ledger_promises l
WHERE l.promised_date > p.window_start
  AND l.promised_date + p.grace_days <= p.as_of;
