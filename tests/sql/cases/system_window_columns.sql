SELECT symbol, _window_start, _window_end, COUNT(*) AS n FROM 'file://data/trades.csv' WHERE symbol = 'MSFT' WINDOW TUMBLING(ts, INTERVAL '10' MINUTE) GROUP BY symbol ORDER BY _window_start;
