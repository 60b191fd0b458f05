-- LEFT interval join: clicks without a purchase in the next 10 minutes
-- come out NULL-padded when they expire (or when the input ends).
SELECT a.user_id, a.page, a.ts, b.item, b.amount
FROM 'file://data/join_clicks.csv' a LEFT JOIN 'file://data/join_buys.csv' b
  ON a.user_id = b.user_id AND b.ts BETWEEN a.ts AND a.ts + INTERVAL '10' MINUTE
ORDER BY a.ts, b.item
WITH ('a.event.time.field' = 'ts', 'b.event.time.field' = 'ts');
