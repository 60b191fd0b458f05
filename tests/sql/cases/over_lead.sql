-- LEAD looks at the next reading of the sensor; the last one has none.
SELECT sensor, ts, v,
       LEAD(v) OVER (PARTITION BY sensor ORDER BY ts) AS next_v,
       LEAD(v, 2, -1) OVER (PARTITION BY sensor ORDER BY ts) AS next2_v
FROM 'file://data/over_readings.csv' AS r
ORDER BY sensor, ts
WITH ('r.event.time.field' = 'ts');
