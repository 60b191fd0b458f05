-- The grace period as a property ('<src>.window.grace'): the same as
-- session_grace.sql, which writes GRACE INTERVAL '60' SECOND.
SELECT _window_start AS ws, _window_end AS we, user_id, COUNT(*) AS n,
       SUM(amount) AS total
FROM 'file://data/session_ooo.csv' AS e
WINDOW SESSION(INTERVAL '30' SECOND)
GROUP BY user_id EMIT FINAL
ORDER BY user_id, ws
WITH ('e.event.time.field' = 'ts', 'e.window.grace' = '60s');
