-- EMIT CHANGES: the session's row after every click, insert for a new
-- session and update as it grows (its end moves with the last click).
SELECT _window_start AS ws, _window_end AS we, user_id, COUNT(*) AS n,
       SUM(amount) AS total
FROM 'file://data/session_clicks.csv'
WINDOW SESSION(ts, INTERVAL '30' SECOND)
GROUP BY user_id EMIT CHANGES;
