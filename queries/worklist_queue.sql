-- The customers to work today (`worklist_customers`: anything past due, or high or critical
-- risk), ranked by expected amount at risk (highest first). The collector assignment
-- (`assignments`) is made from this order; `worklist` adds it.
CREATE OR REPLACE VIEW worklist_queue AS
SELECT row_number() OVER (ORDER BY expected_at_risk DESC NULLS LAST, customer_id) AS rank,
       customer_id,
       name,
       language,
       owner,
       segment,
       probability,
       open_amount_rc,
       past_due_amount_rc,
       expected_at_risk,
       max_days_past_due,
       next_action,
       reasons
FROM worklist_customers;
