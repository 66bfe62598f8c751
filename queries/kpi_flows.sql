-- The money flows behind the KPI summary, one row, in the reporting currency at the closing
-- rate: cash received on no invoice up to the as-of date (reported apart, it does not lower
-- AR) and write-offs dated in the window.
CREATE OR REPLACE VIEW kpi_flows AS
WITH unapplied AS (
    SELECT coalesce(sum(pay.amount * fx.rate), 0) AS unapplied_cash
    FROM params p
    CROSS JOIN payments pay
    LEFT JOIN fx_closing fx ON fx.currency = pay.currency
    WHERE pay.invoice_id IS NULL
      AND pay.payment_date <= p.as_of
),
written_off AS (
    SELECT coalesce(sum(a.amount * fx.rate), 0) AS write_offs
    FROM params p
    CROSS JOIN adjustments a
    LEFT JOIN fx_closing fx ON fx.currency = a.currency
    WHERE a.kind = 'write_off'
      AND a.adjustment_date > p.window_start
      AND a.adjustment_date <= p.as_of
)
SELECT u.unapplied_cash, w.write_offs
FROM unapplied u
CROSS JOIN written_off w;
