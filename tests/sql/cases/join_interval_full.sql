-- FULL interval join: matched pairs, clicks without a purchase and
-- purchases without a click (u1's 10:30 purchase comes before its click).
SELECT a.user_id, a.page, b.user_id AS buyer, b.item
FROM 'file://data/join_clicks.csv' a FULL JOIN 'file://data/join_buys.csv' b
  ON a.user_id = b.user_id AND b.ts BETWEEN a.ts AND a.ts + INTERVAL '10' MINUTE
ORDER BY a.user_id, a.page, b.item
WITH ('a.event.time.field' = 'ts', 'b.event.time.field' = 'ts');
