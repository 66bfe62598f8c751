-- Each open invoice's risk: the model's probability that it is paid more than [risk]
-- late_days after its due date, or not at all (`invoice_scores`, made from the state at each
-- refresh: docs/models.md), its segment, the reasons that push it up most, and what is open
-- on it in the reporting currency. An invoice already more than late_days past due is late
-- whatever happens: probability 1. scored_by says what scored it: 'risk model', or
-- 'baseline: <why>' when no model could be trained or the model lost to the baseline (each
-- customer's share of late invoices) on its own backtest.
CREATE OR REPLACE VIEW invoice_risk AS
SELECT s.invoice_id,
       s.customer_id,
       s.probability,
       g.segment,
       s.reasons,
       o.open_amount_rc,
       o.days_past_due,
       o.in_dispute,
       o.promised_date,
       s.scored_by
FROM invoice_scores s
JOIN open_items o ON o.invoice_id = s.invoice_id
JOIN risk_segments g
  ON s.probability >= g.min_probability
 AND (g.max_probability IS NULL OR s.probability < g.max_probability)
WHERE o.open_amount > 0;
