SELECT * FROM 'file://data/trades.csv' LIMIT 1;
