-- The same out-of-order input with the default ascending watermark: rows
-- behind the highest event time past a window's end are late.
SELECT _window_start AS ws, sym, COUNT(*) AS n, SUM(qty) AS total
FROM 'file://data/win2_events.csv' AS e
WINDOW TUMBLING(INTERVAL '10' SECOND)
GROUP BY sym EMIT FINAL
WITH ('e.event.time.field' = 'ts_ms');
