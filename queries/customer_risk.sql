-- Each customer's risk over its open invoices: `expected_at_risk` is the sum of probability x
-- open amount (reporting currency), `probability` that sum over the open amount, and the
-- reasons are those of the invoice with the most expected at risk, after its id (its days past
-- due may differ from max_days_past_due, the customer's oldest).
CREATE OR REPLACE VIEW customer_risk AS
WITH per_customer AS (
    SELECT customer_id,
           sum(CAST(open_amount_rc AS DOUBLE)) AS open_amount_rc,
           sum(probability * CAST(open_amount_rc AS DOUBLE)) AS expected_at_risk,
           sum(CASE WHEN days_past_due > 0 THEN CAST(open_amount_rc AS DOUBLE) ELSE 0 END)
               AS past_due_amount_rc,
           sum(CASE WHEN in_dispute THEN CAST(open_amount_rc AS DOUBLE) ELSE 0 END)
               AS disputed_amount_rc,
           max(days_past_due) AS max_days_past_due,
           count(*) AS open_invoices,
           first_value(invoice_id || ': ' || reasons
                       ORDER BY probability * CAST(open_amount_rc AS DOUBLE) DESC)
               AS reasons
    FROM invoice_risk
    GROUP BY customer_id
)
SELECT c.customer_id,
       c.expected_at_risk / c.open_amount_rc AS probability,
       g.segment,
       CAST(c.open_amount_rc AS DECIMAL(18, 2)) AS open_amount_rc,
       CAST(c.past_due_amount_rc AS DECIMAL(18, 2)) AS past_due_amount_rc,
       CAST(c.disputed_amount_rc AS DECIMAL(18, 2)) AS disputed_amount_rc,
       CAST(c.expected_at_risk AS DECIMAL(18, 2)) AS expected_at_risk,
       c.max_days_past_due,
       c.open_invoices,
       c.reasons
FROM per_customer c
JOIN risk_segments g
  ON c.expected_at_risk / c.open_amount_rc >= g.min_probability
 AND (g.max_probability IS NULL OR c.expected_at_risk / c.open_amount_rc < g.max_probability)
WHERE c.open_amount_rc > 0;
