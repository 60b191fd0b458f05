SELECT symbol, COUNT(*) AS n, SUM(qty) AS volume FROM 'file://data/trades.csv' GROUP BY symbol EMIT FINAL ORDER BY symbol;
