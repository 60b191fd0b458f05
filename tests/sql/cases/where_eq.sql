SELECT ts, qty FROM 'file://data/trades.csv' WHERE symbol = 'AAPL';
