SELECT user_id, meta.device AS device, meta['device'] AS device2 FROM 'file://data/events.jsonl' LIMIT 5;
