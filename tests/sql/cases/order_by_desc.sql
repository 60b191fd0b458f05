SELECT ts, symbol, qty FROM 'file://data/trades.csv' ORDER BY qty DESC, ts LIMIT 5;
