SELECT event, COALESCE(amount, 0) AS amount FROM 'file://data/events.jsonl' LIMIT 8;
