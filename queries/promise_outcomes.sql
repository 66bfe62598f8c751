-- Promises to pay whose outcome is known at the as-of date: the promised date falls in the
-- window and the grace days after it have passed. A promise is kept when the payments on its
-- invoice (or, for a promise on the account, on the customer) dated from the day it was made
-- to the promised date plus the grace days add up to at least the promised amount.
CREATE OR REPLACE VIEW promise_outcomes AS
WITH due AS (
    SELECT pr.*, pr.promised_date + p.grace_days AS deadline
    FROM params p
    CROSS JOIN promises pr
    WHERE pr.promised_date > p.window_start
      AND pr.promised_date + p.grace_days <= p.as_of
),
paid AS (
    SELECT d.promise_id, sum(pay.amount) AS paid
    FROM due d
    JOIN payments pay ON pay.invoice_id = d.invoice_id
    WHERE d.invoice_id IS NOT NULL
      AND pay.payment_date BETWEEN d.created_date AND d.deadline
    GROUP BY d.promise_id
    UNION ALL
    SELECT d.promise_id, sum(pay.amount) AS paid
    FROM due d
    JOIN payments pay ON pay.customer_id = d.customer_id
    WHERE d.invoice_id IS NULL
      AND pay.payment_date BETWEEN d.created_date AND d.deadline
    GROUP BY d.promise_id
)
SELECT d.promise_id,
       d.customer_id,
       d.invoice_id,
       d.collector_id,
       d.created_date,
       d.promised_date,
       d.amount,
       d.currency,
       coalesce(pd.paid, 0) AS paid,
       coalesce(pd.paid, 0) >= d.amount AS kept
FROM due d
LEFT JOIN paid pd ON pd.promise_id = d.promise_id;
