-- The closing rate of each currency at the as-of date: its latest rate dated on or before it.
-- The reporting currency converts at 1 and needs no rate row.
CREATE OR REPLACE VIEW fx_closing AS
SELECT currency, rate
FROM (
    SELECT f.currency,
           f.rate,
           row_number() OVER (PARTITION BY f.currency ORDER BY f.rate_date DESC) AS latest
    FROM params p
    CROSS JOIN fx_rates f
    WHERE f.rate_date <= p.as_of
      AND f.currency <> p.currency
) ranked
WHERE latest = 1
UNION ALL
SELECT currency, CAST(1 AS DECIMAL(18, 8)) AS rate
FROM params;
