SELECT symbol, COUNT(*) AS n FROM 'file://data/trades.csv' WHERE qty < 0 GROUP BY symbol EMIT FINAL;
