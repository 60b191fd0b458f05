-- '<src>.event.time.format' as a strftime pattern.
SELECT _window_start AS ws, k, SUM(v) AS s
FROM 'file://data/pattern_times.csv' AS e
WINDOW TUMBLING(INTERVAL '1' MINUTE) GROUP BY k
WITH ('e.event.time.field'='when', 'e.event.time.format'='%d/%m/%Y %H:%M:%S');
