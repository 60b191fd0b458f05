-- RIGHT interval join: every purchase, with the clicks in the 10 minutes
-- before it; purchases without one have NULL click columns.
SELECT b.user_id, b.item, b.ts, a.page
FROM 'file://data/join_clicks.csv' a RIGHT JOIN 'file://data/join_buys.csv' b
  ON a.user_id = b.user_id AND b.ts BETWEEN a.ts AND a.ts + INTERVAL '10' MINUTE
ORDER BY b.ts, a.page
WITH ('a.event.time.field' = 'ts', 'b.event.time.field' = 'ts');
