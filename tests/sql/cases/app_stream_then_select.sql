CREATE STREAM big AS SELECT ts, symbol, qty FROM 'file://data/trades.csv' WHERE qty >= 100;
SELECT symbol, COUNT(*) AS n FROM big GROUP BY symbol EMIT FINAL ORDER BY symbol;
