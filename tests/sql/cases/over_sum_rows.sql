-- A moving sum over the current reading and the two before it.
SELECT sensor, ts, v,
       SUM(v) OVER (PARTITION BY sensor ORDER BY ts
                    ROWS BETWEEN 2 PRECEDING AND CURRENT ROW) AS sum3
FROM 'file://data/over_readings.csv' AS r
ORDER BY sensor, ts
WITH ('r.event.time.field' = 'ts');
