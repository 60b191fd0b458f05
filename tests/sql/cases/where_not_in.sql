SELECT ts, symbol, qty FROM 'file://data/trades.csv' WHERE qty NOT IN (1, 10, 25);
