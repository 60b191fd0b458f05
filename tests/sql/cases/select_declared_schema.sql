CREATE STREAM trades (ts TIMESTAMP, symbol STRING, price DECIMAL(10, 2), qty BIGINT, side STRING, venue STRING)
WITH ('trades.type' = 'file_source', 'trades.path' = 'data/trades.csv', 'trades.format' = 'csv');
SELECT symbol, price, qty FROM trades LIMIT 5;
