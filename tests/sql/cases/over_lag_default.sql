-- LAG with an offset and a default: the first reading of each sensor has
-- no previous one and gets 0; LAG(v, 2) without a default gives NULL.
SELECT sensor, ts, v,
       LAG(v, 1, 0) OVER (PARTITION BY sensor ORDER BY ts) AS prev_v,
       LAG(v, 2) OVER (PARTITION BY sensor ORDER BY ts) AS prev2_v
FROM 'file://data/over_readings.csv' AS r
ORDER BY sensor, ts
WITH ('r.event.time.field' = 'ts');
