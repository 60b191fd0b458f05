-- Sessions per user with a 30 s gap: a click within 30 s of the last one
-- extends the session [first, last + 30 s); one row per session when the
-- watermark passes its end (or the input ends).
SELECT _window_start AS ws, _window_end AS we, user_id, COUNT(*) AS n,
       SUM(amount) AS total
FROM 'file://data/session_clicks.csv'
WINDOW SESSION(ts, INTERVAL '30' SECOND)
GROUP BY user_id EMIT FINAL
ORDER BY user_id, ws;
