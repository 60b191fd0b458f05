SELECT venue, COUNT(*) AS n FROM 'file://data/trades.csv' GROUP BY venue EMIT FINAL ORDER BY venue NULLS FIRST;
