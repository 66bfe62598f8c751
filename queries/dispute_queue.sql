-- The disputes open at the as-of date, each with the team that works it (dispute_routing),
-- its age, the day its SLA falls due (dispute_teams) and whether it is past it: the teams'
-- queue (read it ORDER BY breached DESC, sla_due). A breached dispute is escalated to its
-- team's lead once per stage (pipelines/dispute_escalation.toml).
CREATE OR REPLACE VIEW dispute_queue AS
SELECT d.dispute_id,
       d.customer_id,
       c.name,
       d.invoice_id,
       d.reason,
       d.amount,
       d.currency,
       CAST(d.amount * fx.rate AS DECIMAL(18, 2)) AS amount_rc,
       r.team,
       r.routed_by,
       t.lead,
       t.lead_email,
       d.opened_date,
       CAST(p.as_of - d.opened_date AS INT) AS age_days,
       d.opened_date + t.sla_days AS sla_due,
       p.as_of > d.opened_date + t.sla_days AS breached,
       greatest(0, CAST(p.as_of - d.opened_date AS INT) - t.sla_days) AS days_over_sla
FROM params p
CROSS JOIN disputes d
JOIN dispute_routing r ON r.dispute_id = d.dispute_id
JOIN dispute_teams t ON t.team = r.team
LEFT JOIN customers c ON c.customer_id = d.customer_id
LEFT JOIN fx_closing fx ON fx.currency = d.currency
WHERE d.opened_date <= p.as_of
  AND (d.status = 'open' OR d.resolved_date IS NULL OR d.resolved_date > p.as_of);
