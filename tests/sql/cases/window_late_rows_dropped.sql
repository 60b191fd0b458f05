SELECT _window_start AS ws, COUNT(*) AS n FROM 'file://data/late.csv' WINDOW TUMBLING(ts, INTERVAL '1' MINUTE) EMIT FINAL;
