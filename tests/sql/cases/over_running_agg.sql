-- Running aggregates from the first reading of each sensor, and
-- FIRST_VALUE over the same frame.
SELECT sensor, ts, v,
       SUM(v) OVER (PARTITION BY sensor ORDER BY ts) AS running_sum,
       MAX(v) OVER (PARTITION BY sensor ORDER BY ts) AS running_max,
       FIRST_VALUE(v) OVER (PARTITION BY sensor ORDER BY ts) AS first_v
FROM 'file://data/over_readings.csv' AS r
ORDER BY sensor, ts
WITH ('r.event.time.field' = 'ts');
