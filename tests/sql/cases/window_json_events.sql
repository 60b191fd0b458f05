SELECT _window_start AS ws, event, COUNT(*) AS n FROM 'file://data/events.jsonl' WINDOW TUMBLING(ts, INTERVAL '10' MINUTE) GROUP BY event EMIT FINAL ORDER BY ws, event;
