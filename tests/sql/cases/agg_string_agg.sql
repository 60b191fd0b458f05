SELECT symbol, STRING_AGG(side, ',') AS sides FROM 'file://data/trades.csv' WHERE qty >= 100 GROUP BY symbol EMIT FINAL ORDER BY symbol;
