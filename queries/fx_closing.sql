-- The closing rate of each currency at the as-of date, in units of the reporting currency.
--
-- The feed's rates are quoted in one currency (params.rates_currency, USD by default): a
-- rate row gives its units for one unit of `currency`, and the latest row dated on or before
-- the as-of date is the closing rate. The quote currency itself converts at 1. Another
-- reporting currency converts through cross rates: X in reporting units is
-- rate(X) / rate(reporting). When the reporting currency itself has no closing rate, no
-- currency converts and missing_fx_rates lists them all.
CREATE OR REPLACE VIEW fx_closing AS
SELECT currency, CAST(rate / reporting_rate AS DECIMAL(18, 8)) AS rate
FROM (
    SELECT q.currency,
           q.rate,
           max(CASE WHEN q.currency = p.currency THEN q.rate END) OVER () AS reporting_rate
    FROM params p
    CROSS JOIN (
        SELECT currency, rate
        FROM (
            SELECT f.currency,
                   f.rate,
                   row_number() OVER (PARTITION BY f.currency ORDER BY f.rate_date DESC) AS latest
            FROM params p
            CROSS JOIN fx_rates f
            WHERE f.rate_date <= p.as_of
              AND f.currency <> p.rates_currency
        ) ranked
        WHERE latest = 1
        UNION ALL
        SELECT rates_currency AS currency, CAST(1 AS DECIMAL(18, 8)) AS rate
        FROM params
    ) q
) closing
WHERE reporting_rate IS NOT NULL;
