-- Event time from an epoch-millisecond column; rows arrive up to 4.5 s out
-- of order, within the allowed 5 s: none is late.
SELECT _window_start AS ws, sym, COUNT(*) AS n, SUM(qty) AS total
FROM 'file://data/win2_events.csv' AS e
WINDOW TUMBLING(INTERVAL '10' SECOND)
GROUP BY sym EMIT FINAL
WITH ('e.event.time.field' = 'ts_ms', 'e.event.time.format' = 'epoch_millis',
      'e.watermark.max_out_of_orderness' = '5s');
