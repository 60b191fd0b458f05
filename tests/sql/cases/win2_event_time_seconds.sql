-- epoch_seconds set on a declared stream (its CREATE STREAM carries the
-- event time properties); qty serves as a seconds column, out of order,
-- absorbed by a one-minute grace.
CREATE STREAM ev (ts_ms BIGINT, sym STRING, qty BIGINT)
WITH ('ev.type' = 'file_source', 'ev.path' = 'data/win2_events.csv', 'ev.format' = 'csv',
      'ev.event.time.field' = 'qty', 'ev.event.time.format' = 'epoch_seconds');
SELECT _window_start AS ws, COUNT(*) AS n FROM ev WINDOW TUMBLING(INTERVAL '20' SECOND) GRACE INTERVAL '1' MINUTE;
