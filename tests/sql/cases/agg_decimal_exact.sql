CREATE STREAM trades (ts TIMESTAMP, symbol STRING, price DECIMAL(10, 2), qty BIGINT, side STRING, venue STRING)
WITH ('trades.type' = 'file_source', 'trades.path' = 'data/trades.csv', 'trades.format' = 'csv');
SELECT SUM(price) AS total, AVG(price) AS mean, MIN(price) AS lo, MAX(price) AS hi, SUM(price * qty) AS notional FROM trades EMIT FINAL;
