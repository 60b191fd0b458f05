SELECT DISTINCT symbol FROM 'file://data/trades.csv' WHERE symbol ILIKE '%s%' ORDER BY symbol;
