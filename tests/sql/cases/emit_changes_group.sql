SELECT symbol, COUNT(*) AS n, SUM(qty) AS volume FROM 'file://data/trades.csv' WHERE qty >= 100 GROUP BY symbol EMIT CHANGES;
