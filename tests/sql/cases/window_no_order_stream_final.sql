SELECT _window_start AS ws, MAX(qty) AS biggest FROM 'file://data/trades.csv' WINDOW TUMBLING(ts, INTERVAL '4' MINUTE) EMIT FINAL;
