-- The customers to work today, ranked: those with anything past due, or high or critical
-- risk, by expected amount at risk (highest first), with their next action (`next_actions`,
-- over `customer_risk`). The collector assignment (`assignments`) is made from this order;
-- `worklist` adds it.
CREATE OR REPLACE VIEW worklist_queue AS
SELECT row_number() OVER (ORDER BY r.expected_at_risk DESC NULLS LAST, r.customer_id) AS rank,
       r.customer_id,
       c.name,
       c.language,
       c.collector_id AS owner,
       r.segment,
       r.probability,
       r.open_amount_rc,
       r.past_due_amount_rc,
       r.expected_at_risk,
       r.max_days_past_due,
       r.next_action,
       r.reasons
FROM next_actions r
LEFT JOIN customers c ON c.customer_id = r.customer_id
WHERE r.past_due_amount_rc > 0
   OR r.segment IN ('high', 'critical');
