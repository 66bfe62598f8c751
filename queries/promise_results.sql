-- Every promise to pay whose outcome is known at the as-of date: the grace days after its
-- promised date have passed (`deadline` = promised date + grace days). A promise is kept when
-- the payments on its invoice (or, for a promise on the account, on the customer) dated from
-- the day it was made to the deadline add up to at least the promised amount. The outcome
-- depends on nothing dated after the deadline, so the risk model can count a customer's kept
-- and broken promises as known on any day.
CREATE OR REPLACE VIEW promise_results AS
WITH due AS (
    SELECT pr.*, pr.promised_date + p.grace_days AS deadline
    FROM params p
    CROSS JOIN promises pr
    WHERE pr.promised_date + p.grace_days <= p.as_of
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
       d.deadline,
       d.amount,
       d.currency,
       coalesce(pd.paid, 0) AS paid,
       coalesce(pd.paid, 0) >= d.amount AS kept
FROM due d
LEFT JOIN paid pd ON pd.promise_id = d.promise_id;
