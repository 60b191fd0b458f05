SELECT symbol, price, qty FROM 'file://data/trades.csv';
