-- LEFT window join: a click with no purchase of its user in its window
-- comes out once, NULL-padded, when the window closes.
SELECT _window_start AS ws, a.user_id, a.page, b.item
FROM 'file://data/join_clicks.csv' a LEFT JOIN 'file://data/join_buys.csv' b ON a.user_id = b.user_id
WINDOW TUMBLING(INTERVAL '10' MINUTE)
ORDER BY ws, a.user_id, a.page, b.item
WITH ('a.event.time.field' = 'ts', 'b.event.time.field' = 'ts');
