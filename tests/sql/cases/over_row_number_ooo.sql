-- The same readings arriving up to 2 s out of order, within the allowed
-- 5 s: rows wait for the watermark and are numbered in event-time order,
-- so the result equals over_row_number's.
SELECT sensor, ts, v,
       ROW_NUMBER() OVER (PARTITION BY sensor ORDER BY ts) AS rn
FROM 'file://data/over_readings_ooo.csv' AS r
ORDER BY sensor, ts
WITH ('r.event.time.field' = 'ts',
      'r.watermark.max_out_of_orderness' = '5s');
