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
--   on hold      a collector put the customer on hold (customer_holds)
--   opted out    the customer is on the opt-out list (the table outreach_opt_outs, from the
--                policy's `opt_outs` file), or a collector opted it out (customer_holds); an
--                ERP's own opt-out column can be added here
--   unapplied cash  the invoice is due (today or before) and the customer's cash received on
--                no invoice covers everything it has due: the money is probably there and
--                waits to be applied, so nobody is asked for it again (a payment made
--                without remittance advice must not be answered with an escalation)
-- Amounts are in the invoice's currency; `open_amount_rc`, `unapplied_cash` (the customer's
-- cash received on no invoice up to the as-of date) and `customer_due_rc` (the customer's
-- open amount due today or before) in the reporting currency.
CREATE OR REPLACE VIEW outreach_invoices AS
WITH account_promised AS (
    -- An active promise on the account holds every invoice of the customer.
    SELECT DISTINCT pr.customer_id
    FROM params p
    CROSS JOIN promises pr
    WHERE pr.invoice_id IS NULL
      AND pr.created_date <= p.as_of
      AND pr.promised_date + p.grace_days >= p.as_of
),
unapplied AS (
    SELECT pay.customer_id, sum(pay.amount * fx.rate) AS unapplied_cash
    FROM params p
    CROSS JOIN payments pay
    LEFT JOIN fx_closing fx ON fx.currency = pay.currency
    WHERE pay.invoice_id IS NULL
      AND pay.payment_date <= p.as_of
    GROUP BY pay.customer_id
),
candidates AS (
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
           o.last_settled_by_cash,
           c.collector_id,
           k.name AS collector_name,
           k.email AS collector_email,
           coalesce(u.unapplied_cash, 0) AS unapplied_cash,
           sum(CASE WHEN o.open_amount > 0 AND o.days_past_due >= 0 THEN o.open_amount_rc ELSE 0 END)
               OVER (PARTITION BY o.customer_id) AS customer_due_rc,
           ap.customer_id IS NOT NULL AS account_promised,
           x.customer_id IS NOT NULL OR h.status = 'opted out' AS opted_out,
           coalesce(h.status = 'on hold', false) AS on_hold
    FROM invoice_status o
    JOIN customers c ON c.customer_id = o.customer_id
    LEFT JOIN collectors k ON k.collector_id = c.collector_id
    LEFT JOIN account_promised ap ON ap.customer_id = o.customer_id
    LEFT JOIN (SELECT DISTINCT customer_id FROM outreach_opt_outs) x ON x.customer_id = o.customer_id
    LEFT JOIN customer_holds h ON h.customer_id = o.customer_id
    LEFT JOIN unapplied u ON u.customer_id = o.customer_id
    -- On invoice_status' own columns, so that the engine filters before joining the rest.
    WHERE o.open_amount > 0
       OR o.days_since_settled < 7
)
SELECT invoice_id,
       customer_id,
       customer_name,
       email,
       phone,
       language,
       country,
       customer_segment,
       currency,
       invoice_date,
       due_date,
       amount,
       open_amount,
       open_amount_rc,
       days_past_due,
       bucket,
       in_dispute,
       promised_date,
       collector_id,
       collector_name,
       collector_email,
       unapplied_cash,
       customer_due_rc,
       CASE
           WHEN in_dispute THEN 'in dispute'
           WHEN promised_date IS NOT NULL OR account_promised THEN 'promised'
           WHEN open_amount <= 0 AND last_settled_by_cash THEN 'paid'
           WHEN open_amount <= 0 THEN 'credited'
           WHEN on_hold THEN 'on hold'
           WHEN opted_out THEN 'opted out'
           WHEN days_past_due >= 0 AND unapplied_cash > 0 AND unapplied_cash >= customer_due_rc
               THEN 'unapplied cash'
       END AS suppressed
FROM candidates;
