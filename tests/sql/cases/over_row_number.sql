-- ROW_NUMBER per sensor in event-time order.
SELECT sensor, ts, v,
       ROW_NUMBER() OVER (PARTITION BY sensor ORDER BY ts) AS rn
FROM 'file://data/over_readings.csv' AS r
ORDER BY sensor, ts
WITH ('r.event.time.field' = 'ts');
