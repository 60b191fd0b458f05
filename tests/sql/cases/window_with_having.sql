SELECT _window_start AS ws, symbol, SUM(qty) AS volume FROM 'file://data/trades.csv' WINDOW TUMBLING(ts, INTERVAL '5' MINUTE) GROUP BY symbol HAVING SUM(qty) > 200 EMIT FINAL ORDER BY ws, symbol;
