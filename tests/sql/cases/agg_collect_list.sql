SELECT user_id, COLLECT_LIST(event) AS events FROM 'file://data/events.jsonl' GROUP BY user_id EMIT FINAL ORDER BY user_id;
