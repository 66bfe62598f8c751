-- The KPI summary as of `params.as_of` over the window (window_start, as_of], every amount in
-- the reporting currency at the closing rate. Definitions: docs/kpis.md. A ratio whose
-- denominator is zero is null.
CREATE OR REPLACE VIEW kpi_summary AS
WITH balances AS (
    SELECT coalesce(sum(b.open_amount * b.rate), 0) AS total_ar,
           coalesce(sum(CASE WHEN b.days_past_due <= 0 THEN b.open_amount * b.rate ELSE 0 END), 0) AS current_ar,
           sum(CASE WHEN b.open_amount > 0 THEN b.open_amount * b.rate * greatest(b.days_past_due, 0) END) AS open_days,
           sum(CASE WHEN b.open_amount > 0 THEN b.open_amount * b.rate END) AS open_positive,
           coalesce(sum(b.open_amount_at_start * b.rate), 0) AS ar_at_start,
           coalesce(sum(CASE WHEN b.days_past_due_at_start > 0 THEN b.open_amount_at_start * b.rate END), 0) AS past_due_ar_at_start,
           coalesce(sum(CASE WHEN b.invoice_date > p.window_start THEN b.amount * b.rate END), 0) AS credit_sales,
           count(*) FILTER (WHERE b.rate IS NULL) AS unconverted_invoices,
           -- Cash dated in the window on invoices that were past due at the window's start.
           coalesce(sum(CASE WHEN b.days_past_due_at_start > 0 AND b.open_amount_at_start IS NOT NULL
                             THEN b.paid_in_window * b.rate END), 0) AS recovered_cash
    FROM params p
    CROSS JOIN invoice_balances b
),
cash AS (
    SELECT coalesce(sum(CASE WHEN pay.invoice_id IS NULL THEN pay.amount * fx.rate END), 0) AS unapplied_cash
    FROM params p
    CROSS JOIN payments pay
    LEFT JOIN fx_closing fx ON fx.currency = pay.currency
    WHERE pay.payment_date <= p.as_of
),
written_off AS (
    SELECT coalesce(sum(a.amount * fx.rate), 0) AS write_offs
    FROM params p
    CROSS JOIN adjustments a
    LEFT JOIN fx_closing fx ON fx.currency = a.currency
    WHERE a.kind = 'write_off'
      AND a.adjustment_date > p.window_start
      AND a.adjustment_date <= p.as_of
),
promises_due AS (
    SELECT count(*) AS promises, count(*) FILTER (WHERE kept) AS kept
    FROM promise_outcomes
),
resolutions AS (
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
    CROSS JOIN balances bl
    WHERE w.sales_through >= bl.total_ar
    ORDER BY w.month_start DESC
    LIMIT 1
)
SELECT p.as_of,
       p.window_days,
       p.currency,
       CAST(bl.total_ar AS DECIMAL(18, 2)) AS total_ar,
       CAST(bl.current_ar AS DECIMAL(18, 2)) AS current_ar,
       CAST(bl.total_ar - bl.current_ar AS DECIMAL(18, 2)) AS past_due_ar,
       CAST(c.unapplied_cash AS DECIMAL(18, 2)) AS unapplied_cash,
       CAST(bl.credit_sales AS DECIMAL(18, 2)) AS credit_sales,
       CAST(bl.total_ar AS DOUBLE) / CAST(nullif(bl.credit_sales, 0) AS DOUBLE) * p.window_days AS dso,
       CAST(bl.current_ar AS DOUBLE) / CAST(nullif(bl.credit_sales, 0) AS DOUBLE) * p.window_days AS best_possible_dso,
       CAST(bl.total_ar - bl.current_ar AS DOUBLE) / CAST(nullif(bl.credit_sales, 0) AS DOUBLE) * p.window_days AS "add",
       CAST(bl.open_days AS DOUBLE) / CAST(nullif(bl.open_positive, 0) AS DOUBLE) AS add_weighted,
       (SELECT countback_dso FROM countback) AS countback_dso,
       CAST(bl.ar_at_start + bl.credit_sales - bl.total_ar AS DOUBLE)
           / CAST(nullif(bl.ar_at_start + bl.credit_sales - bl.current_ar, 0) AS DOUBLE) * 100 AS cei,
       CAST(w.write_offs AS DOUBLE) / CAST(nullif(bl.credit_sales, 0) AS DOUBLE) AS bad_debt_ratio,
       CAST(bl.recovered_cash AS DOUBLE) / CAST(nullif(bl.past_due_ar_at_start, 0) AS DOUBLE) AS recovery_rate,
       CAST(pd.kept AS DOUBLE) / CAST(nullif(pd.promises, 0) AS DOUBLE) AS ptp_kept_rate,
       rs.mean_days AS dispute_resolution_days,
       rs.median_days AS dispute_resolution_days_median,
       CAST(NULL AS DOUBLE) AS cash_forecast_wape,
       bl.unconverted_invoices
FROM params p
CROSS JOIN balances bl
CROSS JOIN cash c
CROSS JOIN written_off w
CROSS JOIN promises_due pd
CROSS JOIN resolutions rs;
