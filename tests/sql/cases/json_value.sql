SELECT JSON_VALUE(meta, '$.device') AS device, JSON_VALUE(meta, '$.tags[0]') AS first_tag FROM 'file://data/events.jsonl' LIMIT 5;
