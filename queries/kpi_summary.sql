-- The KPI summary as of `params.as_of` over the window (window_start, as_of], every amount in
-- the reporting currency at the closing rate. Definitions: docs/kpis.md. A ratio whose
-- denominator is zero is null. The figures it divides come from `kpi_balances`, `kpi_flows`,
-- `promise_counts` and `monthly_sales` (computed from the ledger unless run with --plain).
-- `cash_forecast_wape` is the cash forecast's backtested error (`forecast_accuracy`: the
-- forecast made 13 weeks before the as-of date against the receipts since; docs/models.md),
-- null until the models have run on this state.
CREATE OR REPLACE VIEW kpi_summary AS
WITH resolutions AS (
    SELECT avg(CAST(d.resolved_date - d.opened_date AS DOUBLE)) AS mean_days,
           median(CAST(d.resolved_date - d.opened_date AS DOUBLE)) AS median_days
    FROM params p
    CROSS JOIN disputes d
    WHERE d.status IN ('resolved', 'rejected')
      AND d.resolved_date > p.window_start
      AND d.resolved_date <= p.as_of
),
countback AS (
    -- Walk back month by month from the as-of month until the sales cover what is open.
    SELECT (w.days_before + CAST(bl.total_ar - w.sales_before AS DOUBLE)
                / CAST(nullif(w.sales, 0) AS DOUBLE) * w.month_days) AS countback_dso
    FROM (
        SELECT month_start,
               month_days,
               sales,
               sum(sales) OVER newest_first - sales AS sales_before,
               sum(month_days) OVER newest_first - month_days AS days_before,
               sum(sales) OVER newest_first AS sales_through
        FROM monthly_sales
        WINDOW newest_first AS (ORDER BY month_start DESC ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
    ) w
    CROSS JOIN kpi_balances bl
    WHERE w.sales_through >= bl.total_ar
    ORDER BY w.month_start DESC
    LIMIT 1
)
SELECT p.as_of,
       p.window_days,
       p.currency,
       CAST(bl.total_ar AS DECIMAL(18, 2)) AS total_ar,
       CAST(bl.current_ar AS DECIMAL(18, 2)) AS current_ar,
       -- Rounded parts, so that current and past-due AR add up to total AR to the cent.
       CAST(CAST(bl.total_ar AS DECIMAL(18, 2)) - CAST(bl.current_ar AS DECIMAL(18, 2)) AS DECIMAL(18, 2)) AS past_due_ar,
       CAST(f.unapplied_cash AS DECIMAL(18, 2)) AS unapplied_cash,
       CAST(bl.credit_sales AS DECIMAL(18, 2)) AS credit_sales,
       CAST(bl.total_ar AS DOUBLE) / CAST(nullif(bl.credit_sales, 0) AS DOUBLE) * p.window_days AS dso,
       CAST(bl.current_ar AS DOUBLE) / CAST(nullif(bl.credit_sales, 0) AS DOUBLE) * p.window_days AS best_possible_dso,
       CAST(bl.total_ar - bl.current_ar AS DOUBLE) / CAST(nullif(bl.credit_sales, 0) AS DOUBLE) * p.window_days AS "add",
       CAST(bl.open_days AS DOUBLE) / CAST(nullif(bl.open_positive, 0) AS DOUBLE) AS add_weighted,
       (SELECT countback_dso FROM countback) AS countback_dso,
       CAST(bl.ar_at_start + bl.credit_sales - bl.total_ar AS DOUBLE)
           / CAST(nullif(bl.ar_at_start + bl.credit_sales - bl.current_ar, 0) AS DOUBLE) AS cei,
       CAST(f.write_offs AS DOUBLE) / CAST(nullif(bl.credit_sales, 0) AS DOUBLE) AS bad_debt_ratio,
       CAST(bl.recovered_cash AS DOUBLE) / CAST(nullif(bl.past_due_ar_at_start, 0) AS DOUBLE) AS recovery_rate,
       CAST(pd.kept AS DOUBLE) / CAST(nullif(pd.promises, 0) AS DOUBLE) AS ptp_kept_rate,
       rs.mean_days AS dispute_resolution_days,
       rs.median_days AS dispute_resolution_days_median,
       (SELECT max(wape) FROM forecast_accuracy) AS cash_forecast_wape,
       bl.unconverted_invoices
FROM params p
CROSS JOIN kpi_balances bl
CROSS JOIN kpi_flows f
CROSS JOIN promise_counts pd
CROSS JOIN resolutions rs;
