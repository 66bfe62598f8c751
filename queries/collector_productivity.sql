-- Per collector over the window: activities logged, distinct accounts touched, promises taken,
-- and cash collected (reporting currency) on the accounts assigned to them.
CREATE OR REPLACE VIEW collector_productivity AS
WITH acts AS (
    SELECT a.collector_id, count(*) AS activities, count(DISTINCT a.customer_id) AS accounts_touched
    FROM params p
    CROSS JOIN activities a
    WHERE CAST(a.activity_ts AS DATE) > p.window_start
      AND CAST(a.activity_ts AS DATE) <= p.as_of
    GROUP BY a.collector_id
),
taken AS (
    SELECT pr.collector_id, count(*) AS promises_taken
    FROM params p
    CROSS JOIN promises pr
    WHERE pr.created_date > p.window_start
      AND pr.created_date <= p.as_of
    GROUP BY pr.collector_id
),
collected AS (
    SELECT c.collector_id, sum(pay.amount * fx.rate) AS cash_collected_rc
    FROM params p
    CROSS JOIN payments pay
    JOIN customers c ON c.customer_id = pay.customer_id
    LEFT JOIN fx_closing fx ON fx.currency = pay.currency
    WHERE pay.payment_date > p.window_start
      AND pay.payment_date <= p.as_of
    GROUP BY c.collector_id
)
SELECT col.collector_id,
       col.name,
       coalesce(a.activities, 0) AS activities,
       coalesce(a.accounts_touched, 0) AS accounts_touched,
       coalesce(t.promises_taken, 0) AS promises_taken,
       CAST(coalesce(cc.cash_collected_rc, 0) AS DECIMAL(18, 2)) AS cash_collected_rc
FROM collectors col
LEFT JOIN acts a ON a.collector_id = col.collector_id
LEFT JOIN taken t ON t.collector_id = col.collector_id
LEFT JOIN collected cc ON cc.collector_id = col.collector_id
ORDER BY col.collector_id;
