SELECT COUNT(DISTINCT symbol) AS symbols, COUNT(DISTINCT venue) AS venues FROM 'file://data/trades.csv' EMIT FINAL;
