SELECT * FROM 'file://data/events.jsonl' LIMIT 3;
