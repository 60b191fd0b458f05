SELECT symbol, SUM(qty) AS volume FROM 'file://data/trades.csv' GROUP BY symbol HAVING SUM(qty) >= 1000 AND MIN(qty) = 1 EMIT FINAL ORDER BY volume DESC;
