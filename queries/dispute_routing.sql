-- Which team works each dispute: the team a collector reassigned it to (`arstream act
-- reassign`, latest first), else the first rule that holds:
--   credit        disputed amount of 50,000 or more in the reporting currency
--   key_accounts  pricing or discount, on an enterprise customer
--   sales         pricing or discount
--   logistics     damaged, missing or short goods, goods not received
--   billing       billing errors, duplicate billing, tax, and anything else
-- Teams and their SLAs are in dispute_teams.
CREATE OR REPLACE VIEW dispute_routing AS
WITH reassigned AS (
    SELECT id AS dispute_id, team
    FROM (SELECT id, team, row_number() OVER (PARTITION BY id ORDER BY recorded_at DESC) AS n
          FROM actions_log
          WHERE action = 'reassign') r
    WHERE n = 1
)
SELECT d.dispute_id,
       coalesce(r.team, CASE
           WHEN d.amount * coalesce(fx.rate, 1) >= 50000 THEN 'credit'
           WHEN d.reason IN ('pricing', 'discount') AND c.segment = 'enterprise' THEN 'key_accounts'
           WHEN d.reason IN ('pricing', 'discount') THEN 'sales'
           WHEN d.reason IN ('damaged_goods', 'missing_goods', 'quantity', 'not_received') THEN 'logistics'
           ELSE 'billing'
       END) AS team,
       CASE WHEN r.team IS NULL THEN 'rule' ELSE 'reassigned' END AS routed_by
FROM disputes d
LEFT JOIN customers c ON c.customer_id = d.customer_id
LEFT JOIN fx_closing fx ON fx.currency = d.currency
LEFT JOIN reassigned r ON r.dispute_id = d.dispute_id;
