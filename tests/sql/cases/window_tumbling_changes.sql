SELECT _window_start AS ws, symbol, COUNT(*) AS n FROM 'file://data/trades.csv' WHERE symbol = 'AAPL' WINDOW TUMBLING(ts, INTERVAL '5' MINUTE) GROUP BY symbol EMIT CHANGES;
