-- Interval join of two streams: a purchase within 10 minutes after a click
-- of the same user (both bounds inclusive: u1's 10:00 click matches the
-- 10:10 purchase).
SELECT a.user_id, a.page, b.item, a.ts, b.ts AS bts
FROM 'file://data/join_clicks.csv' a JOIN 'file://data/join_buys.csv' b
  ON a.user_id = b.user_id AND b.ts BETWEEN a.ts AND a.ts + INTERVAL '10' MINUTE
ORDER BY a.ts, b.ts
WITH ('a.event.time.field' = 'ts', 'b.event.time.field' = 'ts');
