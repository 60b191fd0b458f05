SELECT ts, symbol FROM 'file://data/trades.csv' WHERE NOT side = 'BUY' LIMIT 6;
