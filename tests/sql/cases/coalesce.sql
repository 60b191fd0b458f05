SELECT venue, COALESCE(venue, 'unknown') AS v, COALESCE(NULL, NULL, 3) AS c FROM 'file://data/trades.csv' LIMIT 6;
