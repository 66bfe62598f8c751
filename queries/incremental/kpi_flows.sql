-- `kpi_flows` from the ledger (see ../kpi_flows.sql for the definition it must match):
-- unapplied cash and write-offs are kept summed per currency and day.
CREATE OR REPLACE VIEW kpi_flows AS
WITH unapplied AS (
    SELECT coalesce(sum(u.amount * fx.rate), 0) AS unapplied_cash
    FROM params p
    CROSS JOIN ledger_unapplied u
    LEFT JOIN fx_closing fx ON fx.currency = u.currency
    WHERE u.payment_date <= p.as_of
),
written_off AS (
    SELECT coalesce(sum(w.amount * fx.rate), 0) AS write_offs
    FROM params p
    CROSS JOIN ledger_write_offs w
    LEFT JOIN fx_closing fx ON fx.currency = w.currency
    WHERE w.adjustment_date > p.window_start
      AND w.adjustment_date <= p.as_of
)
SELECT u.unapplied_cash, w.write_offs
FROM unapplied u
CROSS JOIN written_off w;
