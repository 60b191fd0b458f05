-- No disorder allowance, but GRACE 60 s keeps each session open 60 s past
-- its end: the click at 00:00:25 still bridges u1's sessions [00:00,
-- 00:30) and [00:50, 01:20); the click at 00:00:30 arrives when u2's
-- session ([00:40, 01:40), closed at 02:40) and its own would-be session
-- ([00:30, 01:00) + 60 s) are behind the 03:00 watermark: dropped.
SELECT _window_start AS ws, _window_end AS we, user_id, COUNT(*) AS n,
       SUM(amount) AS total
FROM 'file://data/session_ooo.csv' AS e
WINDOW SESSION(INTERVAL '30' SECOND) GRACE INTERVAL '60' SECOND
GROUP BY user_id EMIT FINAL
ORDER BY user_id, ws
WITH ('e.event.time.field' = 'ts');
