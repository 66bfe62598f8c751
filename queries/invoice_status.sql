-- One row per invoice that exists at the as-of date, paid or not: its open amount (in its own
-- currency and in the reporting currency), how late it is, its aging bucket, whether it is in
-- dispute, and the promised date of an active promise to pay. Paid-off invoices are here with 0
-- open, overpaid ones with a negative open amount; `open_items` is those still open. `days_since_settled` and `last_settled_by_cash`
-- say how recently, and how, it was last settled (invoice_balances).
CREATE OR REPLACE VIEW invoice_status AS
WITH disputed AS (
    -- Open at the as-of date: opened by then and not resolved or rejected by then.
    SELECT DISTINCT d.invoice_id
    FROM params p
    CROSS JOIN disputes d
    WHERE d.opened_date <= p.as_of
      AND (d.status = 'open' OR d.resolved_date IS NULL OR d.resolved_date > p.as_of)
),
promised AS (
    -- Active: made by the as-of date and not yet past its date plus the grace days.
    SELECT pr.invoice_id, max(pr.promised_date) AS promised_date
    FROM params p
    CROSS JOIN promises pr
    WHERE pr.invoice_id IS NOT NULL
      AND pr.created_date <= p.as_of
      AND pr.promised_date + p.grace_days >= p.as_of
    GROUP BY pr.invoice_id
)
SELECT b.invoice_id,
       b.customer_id,
       b.currency,
       b.invoice_date,
       b.due_date,
       b.amount,
       b.open_amount,
       b.open_amount * b.rate AS open_amount_rc,
       b.days_past_due,
       b.days_since_settled,
       b.last_settled_by_cash,
       k.bucket,
       d.invoice_id IS NOT NULL AS in_dispute,
       pr.promised_date
FROM invoice_balances b
JOIN aging_buckets k
  ON b.days_past_due >= k.min_days AND (k.max_days IS NULL OR b.days_past_due <= k.max_days)
LEFT JOIN disputed d ON d.invoice_id = b.invoice_id
LEFT JOIN promised pr ON pr.invoice_id = b.invoice_id;
