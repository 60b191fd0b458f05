-- EMIT CHANGES with the update strategy: a window closes 0.5 s after its
-- end (GRACE) and its state is held 0.5 s more (max(grace,
-- out-of-orderness)); a late row in that time updates the window's row
-- (the update of 00:00:00 after 00:00:10 has opened), a later one is
-- dropped and logged.
SELECT _window_start AS ws, COUNT(*) AS n, SUM(qty) AS total
FROM 'file://data/win2_events.csv' AS e
WINDOW TUMBLING(INTERVAL '10' SECOND) GRACE INTERVAL '0.5' SECOND
EMIT CHANGES
WITH ('e.event.time.field' = 'ts_ms', 'e.late.data.strategy' = 'update');
