SELECT symbol AS s, qty AS quantity FROM 'file://data/trades.csv' LIMIT 5;
