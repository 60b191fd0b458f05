-- GRACE keeps windows open 5 s past their end: the disorder is absorbed.
SELECT _window_start AS ws, sym, COUNT(*) AS n, SUM(qty) AS total
FROM 'file://data/win2_events.csv' AS e
WINDOW TUMBLING(INTERVAL '10' SECOND) GRACE INTERVAL '5' SECOND
GROUP BY sym EMIT FINAL
WITH ('e.event.time.field' = 'ts_ms', 'e.event.time.format' = 'epoch_millis');
