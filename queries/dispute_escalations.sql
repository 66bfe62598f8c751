-- The disputes outreach escalates, in the shape outreach reads (one row per open dispute, as
-- outreach_invoices has one per invoice): `days_past_due` is the days past the team's SLA,
-- `due_date` the day the SLA fell due, `open_amount` the amount disputed, and the reader is
-- the team's lead (`collector_email`, dispute_teams). `customer_id` is the customer and the
-- team (`C000009/logistics`): a message goes to one reader, so a customer's disputes with two
-- teams make one message to each lead. pipelines/dispute_escalation.toml escalates each
-- breached dispute once per stage.
CREATE OR REPLACE VIEW dispute_escalations AS
SELECT q.dispute_id AS invoice_id,
       q.customer_id || '/' || q.team AS customer_id,
       q.name AS customer_name,
       q.lead_email AS email,
       CAST(NULL AS VARCHAR) AS phone,
       CAST(NULL AS VARCHAR) AS language,
       c.country,
       q.currency,
       q.opened_date AS invoice_date,
       q.sla_due AS due_date,
       q.amount,
       q.amount AS open_amount,
       q.amount_rc AS open_amount_rc,
       q.days_over_sla AS days_past_due,
       q.team AS collector_id,
       q.lead AS collector_name,
       q.lead_email AS collector_email,
       CAST(NULL AS VARCHAR) AS suppressed,
       q.invoice_id AS disputed_invoice,
       q.reason,
       q.team,
       q.routed_by,
       q.breached,
       q.age_days
FROM dispute_queue q
LEFT JOIN customers c ON c.customer_id = q.customer_id;
