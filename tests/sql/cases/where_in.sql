SELECT ts, symbol, qty FROM 'file://data/trades.csv' WHERE qty IN (1, 250);
