-- Customers a collector put on hold (`arstream act hold`: no reminders, no calls, until a
-- date or until released) or opted out of outreach (`act opt-out`: no reminders; calls go
-- on), from the latest of their hold, opt-out and release actions (actions_log). A hold whose
-- date has passed by the as-of date is over. outreach_invoices and next_actions read this.
CREATE OR REPLACE VIEW customer_holds AS
SELECT l.customer_id,
       CASE l.action WHEN 'hold' THEN 'on hold' ELSE 'opted out' END AS status,
       l.hold_until,
       l.recorded_by,
       l.recorded_at,
       l.note
FROM (SELECT customer_id, action, hold_until, recorded_by, recorded_at, note,
             row_number() OVER (PARTITION BY customer_id ORDER BY recorded_at DESC, id DESC) AS n
      FROM actions_log
      WHERE action IN ('hold', 'opt_out', 'release')) l
CROSS JOIN params p
WHERE l.n = 1
  AND (l.action = 'opt_out' OR (l.action = 'hold' AND (l.hold_until IS NULL OR l.hold_until >= p.as_of)));
