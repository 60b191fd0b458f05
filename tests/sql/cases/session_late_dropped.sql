-- No disorder allowance and no grace: a click whose own session would
-- already have closed at the watermark is late and dropped; one that
-- falls into a still-open session joins it.
SELECT _window_start AS ws, _window_end AS we, user_id, COUNT(*) AS n,
       SUM(amount) AS total
FROM 'file://data/session_ooo.csv' AS e
WINDOW SESSION(INTERVAL '30' SECOND)
GROUP BY user_id EMIT FINAL
ORDER BY user_id, ws
WITH ('e.event.time.field' = 'ts');
