SELECT UPPER(event) AS u, LOWER('MiXeD') AS l FROM 'file://data/events.jsonl' LIMIT 3;
