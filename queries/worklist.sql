-- The collectors' worklist: one row per customer to work today, ranked by expected amount at
-- risk, with the next action, the collector assigned (null when none can be: `assignment`
-- says why) and the reasons behind the risk.
CREATE OR REPLACE VIEW worklist AS
SELECT q.rank,
       q.customer_id,
       q.name,
       q.segment,
       CAST(q.probability AS DECIMAL(5, 3)) AS probability,
       q.expected_at_risk,
       q.open_amount_rc,
       q.past_due_amount_rc,
       q.max_days_past_due,
       q.next_action,
       a.collector_id,
       q.reasons,
       a.reason AS assignment
FROM worklist_queue q
LEFT JOIN assignments a ON a.customer_id = q.customer_id;
