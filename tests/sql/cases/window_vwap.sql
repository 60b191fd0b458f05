CREATE STREAM trades (ts TIMESTAMP, symbol STRING, price DECIMAL(10, 2), qty BIGINT, side STRING, venue STRING)
WITH ('trades.type' = 'file_source', 'trades.path' = 'data/trades.csv', 'trades.format' = 'csv');
SELECT _window_start AS ws, symbol, CAST(SUM(price * qty) / SUM(qty) AS DECIMAL(12, 4)) AS vwap FROM trades WINDOW TUMBLING(ts, INTERVAL '5' MINUTE) GROUP BY symbol EMIT FINAL ORDER BY ws, symbol;
