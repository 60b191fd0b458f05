-- A sum and a count over the readings of the last 10 seconds (inclusive).
SELECT sensor, ts, v,
       SUM(v) OVER (PARTITION BY sensor ORDER BY ts
                    RANGE BETWEEN INTERVAL '10' SECOND PRECEDING
                    AND CURRENT ROW) AS sum10s,
       COUNT(*) OVER (PARTITION BY sensor ORDER BY ts
                      RANGE BETWEEN INTERVAL '10' SECOND PRECEDING
                      AND CURRENT ROW) AS n10s
FROM 'file://data/over_readings.csv' AS r
ORDER BY sensor, ts
WITH ('r.event.time.field' = 'ts');
