-- Window join: clicks and purchases of the same user in the same 10-minute
-- tumbling window (no GROUP BY); the window bounds are selectable.
SELECT _window_start AS ws, _window_end AS we, a.user_id, a.page, b.item
FROM 'file://data/join_clicks.csv' a JOIN 'file://data/join_buys.csv' b ON a.user_id = b.user_id
WINDOW TUMBLING(INTERVAL '10' MINUTE)
ORDER BY ws, a.user_id, a.page, b.item
WITH ('a.event.time.field' = 'ts', 'b.event.time.field' = 'ts');
