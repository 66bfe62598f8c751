-- The next action on each customer with something open (the columns of customer_risk, and
-- `next_action`): the first rule that holds.
--   on hold              a collector put the customer on hold (customer_holds)
--   hold for dispute     half or more of what is open is in dispute
--   follow up a promise  a promise to pay falls due within 7 days either side of the as-of
--                        date, or one was broken in the last 14 days
--   escalate             an invoice over 60 days past due, or two promises broken in 90 days
--   call                 the customer is high or critical risk, or over 30 days past due
--   reminder             anything else
CREATE OR REPLACE VIEW next_actions AS
WITH promised AS (
    SELECT pr.customer_id, count(*) AS falling_due
    FROM params p
    CROSS JOIN promises pr
    WHERE pr.created_date <= p.as_of
      AND pr.promised_date BETWEEN p.as_of - 7 AND p.as_of + 7
    GROUP BY pr.customer_id
),
broken AS (
    SELECT r.customer_id,
           sum(CASE WHEN r.deadline > p.as_of - 14 THEN 1 ELSE 0 END) AS lately,
           count(*) AS in_90_days
    FROM params p
    CROSS JOIN promise_results r
    WHERE NOT r.kept
      AND r.deadline > p.as_of - 90
    GROUP BY r.customer_id
)
SELECT r.*,
       CASE
           WHEN h.status = 'on hold' THEN 'on hold'
           WHEN r.disputed_amount_rc >= 0.5 * r.open_amount_rc THEN 'hold for dispute'
           WHEN coalesce(pm.falling_due, 0) > 0 OR coalesce(b.lately, 0) > 0
               THEN 'follow up a promise'
           WHEN r.max_days_past_due > 60 OR coalesce(b.in_90_days, 0) >= 2 THEN 'escalate'
           WHEN r.segment IN ('high', 'critical') OR r.max_days_past_due > 30 THEN 'call'
           ELSE 'reminder'
       END AS next_action
FROM customer_risk r
LEFT JOIN promised pm ON pm.customer_id = r.customer_id
LEFT JOIN broken b ON b.customer_id = r.customer_id
LEFT JOIN customer_holds h ON h.customer_id = r.customer_id;
