SELECT _window_start AS ws, COUNT(*) AS n FROM 'file://data/trades.csv' WINDOW TUMBLING(ts, INTERVAL '2' MINUTE) ORDER BY ws;
