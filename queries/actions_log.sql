-- Every action collectors recorded (`arstream act`, the dashboard), as applied: who, when,
-- what, on which customer and invoice, and from which command. Never rewritten: closing a
-- dispute is a row of its own after the one that opened it.
CREATE OR REPLACE VIEW actions_log AS
SELECT _ts AS recorded_at,
       recorded_by,
       action,
       coalesce(activity_id, promise_id, dispute_id) AS id,
       customer_id,
       invoice_id,
       channel,
       outcome,
       amount,
       currency,
       promised_date,
       hold_until,
       reason,
       status,
       team,
       note,
       recorded_via
FROM action_rows;
