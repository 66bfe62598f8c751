-- Promises to pay whose outcome is known at the as-of date and whose promised date falls in
-- the window (kept or broken as `promise_results` decides).
CREATE OR REPLACE VIEW promise_outcomes AS
SELECT r.promise_id,
       r.customer_id,
       r.invoice_id,
       r.collector_id,
       r.created_date,
       r.promised_date,
       r.amount,
       r.currency,
       r.paid,
       r.kept
FROM params p
CROSS JOIN promise_results r
WHERE r.promised_date > p.window_start;
