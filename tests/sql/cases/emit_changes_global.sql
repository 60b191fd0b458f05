SELECT COUNT(*) AS n, MAX(qty) AS m FROM 'file://data/trades.csv' WHERE symbol = 'GOOG' EMIT CHANGES;
