SELECT SUM(amount) AS total, COUNT(amount) AS priced, AVG(amount) AS mean FROM 'file://data/events.jsonl' EMIT FINAL;
