SELECT symbol, qty FROM 'file://data/trades.csv' ORDER BY qty * -1, symbol, ts LIMIT 4;
