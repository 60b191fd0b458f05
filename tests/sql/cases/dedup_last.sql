-- Dedup, keep last: the latest reading of each sensor as a changelog
-- keyed by sensor (insert, then update). The s1 reading stamped 00:04
-- arrives after the one at 00:05: it is not the latest and is dropped.
SELECT sensor, ts, v FROM (
  SELECT sensor, ts, v,
         ROW_NUMBER() OVER (PARTITION BY sensor ORDER BY ts DESC) AS rn
  FROM 'file://data/over_latest.csv' AS r)
WHERE rn = 1
WITH ('r.event.time.field' = 'ts');
