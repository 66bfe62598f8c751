-- Credit sales (existing invoices, reporting currency) per calendar month, from the first
-- invoice's month to the as-of date's month, months without sales included. `month_days` is
-- the month's length, except the as-of month, counted from its day 1 to the as-of date.
CREATE OR REPLACE VIEW monthly_sales AS
WITH sales AS (
    SELECT CAST(date_trunc('month', s.invoice_date) AS DATE) AS month_start,
           sum(s.amount * fx.rate) AS sales
    FROM params p
    CROSS JOIN daily_sales s
    LEFT JOIN fx_closing fx ON fx.currency = s.currency
    WHERE s.invoice_date <= p.as_of
    GROUP BY CAST(date_trunc('month', s.invoice_date) AS DATE)
),
months AS (
    SELECT CAST(m AS DATE) AS month_start
    FROM (
        SELECT unnest(generate_series(
            CAST(date_trunc('month', min(s.invoice_date)) AS DATE),
            CAST(date_trunc('month', max(p.as_of)) AS DATE),
            INTERVAL '1 month')) AS m
        FROM params p
        CROSS JOIN daily_sales s
        WHERE s.invoice_date <= p.as_of
    ) series
)
SELECT m.month_start,
       CASE WHEN m.month_start = CAST(date_trunc('month', p.as_of) AS DATE)
            THEN CAST(p.as_of - m.month_start + 1 AS BIGINT)
            ELSE CAST(CAST(m.month_start + INTERVAL '1 month' AS DATE) - m.month_start AS BIGINT)
       END AS month_days,
       coalesce(s.sales, 0) AS sales
FROM params p
CROSS JOIN months m
LEFT JOIN sales s ON s.month_start = m.month_start;
