SELECT DISTINCT symbol FROM 'file://data/trades.csv' ORDER BY symbol;
