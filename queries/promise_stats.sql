-- Promises to pay due in the window (outcome known): how many were kept and broken, what was
-- promised and what was paid (reporting currency), and the share kept.
CREATE OR REPLACE VIEW promise_stats AS
SELECT count(*) AS promises_due,
       count(*) FILTER (WHERE o.kept) AS kept,
       count(*) FILTER (WHERE NOT o.kept) AS broken,
       CAST(coalesce(sum(o.amount * fx.rate), 0) AS DECIMAL(18, 2)) AS promised_rc,
       CAST(coalesce(sum(least(o.paid, o.amount) * fx.rate), 0) AS DECIMAL(18, 2)) AS paid_against_promises_rc,
       CAST(count(*) FILTER (WHERE o.kept) AS DOUBLE) / CAST(nullif(count(*), 0) AS DOUBLE) AS kept_rate
FROM promise_outcomes o
LEFT JOIN fx_closing fx ON fx.currency = o.currency;
