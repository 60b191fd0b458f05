-- Dedup, keep first: the first reading of each sensor by event time.
SELECT sensor, ts, v FROM (
  SELECT sensor, ts, v,
         ROW_NUMBER() OVER (PARTITION BY sensor ORDER BY ts ASC) AS rn
  FROM 'file://data/over_readings.csv' AS r)
WHERE rn = 1
ORDER BY sensor
WITH ('r.event.time.field' = 'ts');
