-- Out-of-order clicks (up to 60 s allowed): the click at 00:00:25 bridges
-- u1's sessions [00:00, 00:30) and [00:50, 01:20); the later session is
-- retracted (delete) and the merged one updated. The click at 00:00:40
-- extends u2's session backwards; the one at 00:00:30 comes after u2's
-- session has closed and is dropped as late.
SELECT _window_start AS ws, _window_end AS we, user_id, COUNT(*) AS n,
       SUM(amount) AS total
FROM 'file://data/session_ooo.csv' AS e
WINDOW SESSION(INTERVAL '30' SECOND)
GROUP BY user_id EMIT CHANGES
WITH ('e.event.time.field' = 'ts', 'e.watermark.max_out_of_orderness' = '60s');
