-- The same input as session_merge_changes with EMIT FINAL: only the merged
-- sessions come out, once each.
SELECT _window_start AS ws, _window_end AS we, user_id, COUNT(*) AS n,
       SUM(amount) AS total, STRING_AGG(CAST(amount AS STRING), '+') AS parts
FROM 'file://data/session_ooo.csv' AS e
WINDOW SESSION(INTERVAL '30' SECOND)
GROUP BY user_id EMIT FINAL
ORDER BY user_id, ws
WITH ('e.event.time.field' = 'ts', 'e.watermark.max_out_of_orderness' = '60s');
