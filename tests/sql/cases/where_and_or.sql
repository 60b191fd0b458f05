SELECT ts, symbol, qty FROM 'file://data/trades.csv' WHERE (symbol = 'MSFT' OR symbol = 'GOOG') AND qty >= 100;
