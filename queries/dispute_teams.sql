-- The teams that resolve disputes: how many days each has (its SLA, from the day a dispute is
-- opened) and its lead, to whom a dispute past its SLA is escalated (by email to
-- `lead_email`, or the outreach policy's webhook; pipelines/dispute_escalation.toml). Change
-- them here: dispute_routing, dispute_queue and dispute_stats follow.
CREATE OR REPLACE VIEW dispute_teams AS
SELECT team, sla_days, lead, lead_email
FROM (VALUES
    ('sales', 20, 'Sales lead', 'sales-lead@example.com'),
    ('key_accounts', 10, 'Key accounts lead', 'key-accounts-lead@example.com'),
    ('logistics', 14, 'Logistics lead', 'logistics-lead@example.com'),
    ('billing', 10, 'Billing lead', 'billing-lead@example.com'),
    ('credit', 30, 'Credit manager', 'credit-manager@example.com')
) AS t(team, sla_days, lead, lead_email);
