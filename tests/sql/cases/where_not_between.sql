SELECT ts, qty FROM 'file://data/trades.csv' WHERE qty NOT BETWEEN 10 AND 100;
