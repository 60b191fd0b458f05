SELECT meta FROM 'file://data/events.jsonl' LIMIT 3;
