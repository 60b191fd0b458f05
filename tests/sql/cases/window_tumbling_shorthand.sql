SELECT _window_start AS ws, COUNT(*) AS n FROM 'file://data/trades.csv' WINDOW TUMBLING(ts, 3m) ORDER BY ws;
