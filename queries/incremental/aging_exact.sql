-- `aging_exact` from the ledger (see ../aging_exact.sql for the definition it must match): the ledger
-- keeps what is open per customer, currency and due date at the as-of date of the last
-- refresh (`ledger_aging`, invoices with nothing open left out); here it is put in buckets
-- and converted. At another as-of date the engine uses ../aging_exact.sql instead.
CREATE OR REPLACE VIEW aging_exact AS
SELECT a.customer_id,
       k.bucket,
       sum(a.amount * fx.rate) AS open_amount_rc,
       sum(a.invoices) AS invoices
FROM params p
CROSS JOIN ledger_aging a
JOIN aging_buckets k
  ON p.as_of - a.due_date >= k.min_days
 AND (k.max_days IS NULL OR p.as_of - a.due_date <= k.max_days)
LEFT JOIN fx_closing fx ON fx.currency = a.currency
GROUP BY a.customer_id, k.bucket;
