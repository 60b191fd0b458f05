SELECT meta.device AS device, COUNT(*) AS n FROM 'file://data/events.jsonl' GROUP BY meta.device ORDER BY device;
