-- outreach_invoices with each customer's risk segment and probability of paying late
-- (customer_risk: the risk model's scores, docs/models.md), for rules whose trigger reads them
-- (`segment IN ('high', 'critical')`). A customer the model has not scored (nothing open) has
-- no segment. Outreach reads this view only when a rule's trigger needs a column that
-- outreach_invoices lacks, so that rules without one never wait for the model.
CREATE OR REPLACE VIEW outreach_candidates AS
SELECT i.*,
       r.segment,
       r.probability
FROM outreach_invoices i
LEFT JOIN customer_risk r ON r.customer_id = i.customer_id;
