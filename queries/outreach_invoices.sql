-- The invoices outreach may write to a customer about, with who to write to: every invoice
-- open at the as-of date, and those settled in full in the last 7 days (so that a reminder
-- they would have had is recorded as skipped, not silently dropped). The rules of
-- pipelines/outreach.toml choose among these rows with their `trigger`; `suppressed` says why
-- no message may go out about a row whatever the rules say (null: nothing stops it), the
-- first that holds of:
--   in dispute   a dispute on it is open at the as-of date
--   promised     a promise to pay on it, or on the customer's account, is active: made by the
--                as-of date and its promised date plus the grace days not yet past
--   paid         nothing is left open, and cash came on the day of its last settlement
--   credited     nothing is left open, and its last settlement was a credit or write-off only
--   opted out    the customer is on the opt-out list (the table outreach_opt_outs, from the
--                policy's `opt_outs` file); an ERP's own opt-out column can be added here
-- Amounts are in the invoice's currency; `open_amount_rc` in the reporting currency.
CREATE OR REPLACE VIEW outreach_invoices AS
WITH account_promised AS (
    -- An active promise on the account holds every invoice of the customer.
    SELECT DISTINCT pr.customer_id
    FROM params p
    CROSS JOIN promises pr
    WHERE pr.invoice_id IS NULL
      AND pr.created_date <= p.as_of
      AND pr.promised_date + p.grace_days >= p.as_of
)
SELECT o.invoice_id,
       o.customer_id,
       c.name AS customer_name,
       c.email,
       c.phone,
       c.language,
       c.country,
       c.segment AS customer_segment,
       o.currency,
       o.invoice_date,
       o.due_date,
       o.amount,
       o.open_amount,
       o.open_amount_rc,
       o.days_past_due,
       o.bucket,
       o.in_dispute,
       o.promised_date,
       c.collector_id,
       k.name AS collector_name,
       k.email AS collector_email,
       CASE
           WHEN o.in_dispute THEN 'in dispute'
           WHEN o.promised_date IS NOT NULL OR ap.customer_id IS NOT NULL THEN 'promised'
           WHEN o.open_amount <= 0 AND o.last_settled_by_cash THEN 'paid'
           WHEN o.open_amount <= 0 THEN 'credited'
           WHEN x.customer_id IS NOT NULL THEN 'opted out'
       END AS suppressed
FROM open_items o
JOIN customers c ON c.customer_id = o.customer_id
LEFT JOIN collectors k ON k.collector_id = c.collector_id
LEFT JOIN account_promised ap ON ap.customer_id = o.customer_id
LEFT JOIN (SELECT DISTINCT customer_id FROM outreach_opt_outs) x ON x.customer_id = o.customer_id
-- On open_items' own columns, so that the engine filters before joining the rest.
WHERE o.open_amount > 0
   OR o.days_since_settled < 7;
