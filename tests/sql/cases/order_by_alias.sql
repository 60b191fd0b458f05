SELECT symbol, qty * 2 AS dq FROM 'file://data/trades.csv' ORDER BY dq DESC, symbol LIMIT 3;
