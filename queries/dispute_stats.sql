-- Disputes per reason and team (dispute_routing): open at the as-of date (count and
-- reporting-currency amount), opened, resolved and rejected in the window, and days to
-- resolution of those closed in the window.
CREATE OR REPLACE VIEW dispute_stats AS
SELECT d.reason,
       r.team,
       count(*) FILTER (WHERE d.opened_date <= p.as_of
                        AND (d.resolved_date IS NULL OR d.resolved_date > p.as_of)) AS open_disputes,
       CAST(coalesce(sum(d.amount * fx.rate) FILTER (WHERE d.opened_date <= p.as_of
                        AND (d.resolved_date IS NULL OR d.resolved_date > p.as_of)), 0) AS DECIMAL(18, 2)) AS open_amount_rc,
       count(*) FILTER (WHERE d.opened_date > p.window_start AND d.opened_date <= p.as_of) AS opened_in_window,
       count(*) FILTER (WHERE d.status = 'resolved' AND d.resolved_date > p.window_start AND d.resolved_date <= p.as_of) AS resolved_in_window,
       count(*) FILTER (WHERE d.status = 'rejected' AND d.resolved_date > p.window_start AND d.resolved_date <= p.as_of) AS rejected_in_window,
       avg(CAST(d.resolved_date - d.opened_date AS DOUBLE)) FILTER (WHERE d.status IN ('resolved', 'rejected')
                        AND d.resolved_date > p.window_start AND d.resolved_date <= p.as_of) AS resolution_days_mean,
       median(CAST(d.resolved_date - d.opened_date AS DOUBLE)) FILTER (WHERE d.status IN ('resolved', 'rejected')
                        AND d.resolved_date > p.window_start AND d.resolved_date <= p.as_of) AS resolution_days_median
FROM params p
CROSS JOIN disputes d
LEFT JOIN fx_closing fx ON fx.currency = d.currency
JOIN dispute_routing r ON r.dispute_id = d.dispute_id
GROUP BY d.reason, r.team
ORDER BY d.reason, r.team;
