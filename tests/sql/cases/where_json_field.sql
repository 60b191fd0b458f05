SELECT ts, user_id FROM 'file://data/events.jsonl' WHERE meta.device = 'ios';
