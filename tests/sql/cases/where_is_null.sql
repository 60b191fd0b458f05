SELECT ts, symbol FROM 'file://data/trades.csv' WHERE venue IS NULL;
