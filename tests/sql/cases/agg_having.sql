SELECT symbol, COUNT(*) AS n FROM 'file://data/trades.csv' GROUP BY symbol HAVING COUNT(*) > 12 EMIT FINAL ORDER BY symbol;
