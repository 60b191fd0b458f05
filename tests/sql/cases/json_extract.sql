SELECT JSON_EXTRACT(meta, '$.tags') AS tags FROM 'file://data/events.jsonl' LIMIT 5;
