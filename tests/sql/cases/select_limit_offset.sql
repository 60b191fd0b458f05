SELECT symbol, qty FROM 'file://data/trades.csv' ORDER BY ts LIMIT 3 OFFSET 2;
