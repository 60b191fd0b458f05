SELECT REPLACE(symbol, 'A', 'a') AS r FROM 'file://data/trades.csv' WHERE symbol = 'AAPL' LIMIT 2;
