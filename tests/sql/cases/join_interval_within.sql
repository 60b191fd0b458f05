-- WITHIN INTERVAL '5' MINUTE: the purchase is at most 5 minutes before or
-- after the click (both ends inclusive).
SELECT a.user_id, a.page, b.item
FROM 'file://data/join_clicks.csv' a JOIN 'file://data/join_buys.csv' b WITHIN INTERVAL '5' MINUTE
  ON a.user_id = b.user_id
ORDER BY a.ts, b.ts
WITH ('a.event.time.field' = 'ts', 'b.event.time.field' = 'ts');
