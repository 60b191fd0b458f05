SELECT price, price * 1.5 AS up, price / 4 AS q FROM 'file://data/trades.csv' LIMIT 5;
