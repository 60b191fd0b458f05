SELECT symbol FROM file://data/trades.csv LIMIT 2;
