SELECT LEFT(symbol, 2) AS l, RIGHT(symbol, 2) AS r FROM 'file://data/trades.csv' LIMIT 3;
