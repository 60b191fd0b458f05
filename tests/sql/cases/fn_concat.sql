SELECT CONCAT(symbol, ':', venue) AS c FROM 'file://data/trades.csv' LIMIT 6;
