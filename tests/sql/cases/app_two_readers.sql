CREATE STREAM buys AS SELECT symbol, qty FROM 'file://data/trades.csv' WHERE side = 'BUY';
SELECT COUNT(*) AS n FROM buys EMIT FINAL;
SELECT symbol, SUM(qty) AS volume FROM buys GROUP BY symbol EMIT FINAL ORDER BY symbol;
