-- The risk segments: a probability of paying late (more than [risk] late_days after the due
-- date, or not at all) falls in the segment whose range holds it, from min_probability up to
-- (not including) max_probability. Change the cut-offs here: invoice_risk, customer_risk,
-- next_actions and the worklist follow.
CREATE OR REPLACE VIEW risk_segments AS
SELECT segment, min_probability, max_probability, ord
FROM (VALUES
    ('low', 0.0, 0.25, 1),
    ('medium', 0.25, 0.5, 2),
    ('high', 0.5, 0.8, 3),
    ('critical', 0.8, CAST(NULL AS DOUBLE), 4)
) AS s(segment, min_probability, max_probability, ord);
