-- Top-N: the two highest readings per sensor (ties: the earlier reading
-- first, as ROW_NUMBER keeps arrival order). On bounded input the final
-- top rows are emitted at the end.
SELECT * FROM (
  SELECT sensor, ts, v,
         ROW_NUMBER() OVER (PARTITION BY sensor ORDER BY v DESC) AS rn
  FROM 'file://data/over_readings.csv')
WHERE rn <= 2
ORDER BY sensor, rn;
