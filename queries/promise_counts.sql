-- How many promises to pay fell due in the window (outcome known at the as-of date), and how
-- many of them were kept: the numbers behind `ptp_kept_rate`.
CREATE OR REPLACE VIEW promise_counts AS
SELECT count(*) AS promises,
       count(*) FILTER (WHERE kept) AS kept
FROM promise_outcomes;
