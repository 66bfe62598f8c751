-- The customers to work today: those with anything past due, or high or critical risk, with
-- their next action (`next_actions`, over `customer_risk`) and their current owner.
-- `worklist_queue` ranks them; the collector assignment is made from that order, and the
-- customers a refresh touched between two full assignments are assigned from this view.
CREATE OR REPLACE VIEW worklist_customers AS
SELECT r.customer_id,
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
