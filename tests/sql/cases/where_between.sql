SELECT ts, qty FROM 'file://data/trades.csv' WHERE qty BETWEEN 10 AND 100;
