SELECT note, amount FROM 'file://data/events.jsonl' LIMIT 8;
