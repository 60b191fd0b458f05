-- Velostream's sample pipeline: the volume-weighted average price (VWAP)
-- of each symbol in 5-minute tumbling windows of event time, over a CSV of
-- trades shipped in the repository. Run it with:  velo run examples/vwap.sql
--
-- The source is declared so prices are exact DECIMALs (an undeclared CSV
-- is inferred, and inference reads 189.50 as a DOUBLE).
CREATE STREAM trades (ts TIMESTAMP, symbol STRING, price DECIMAL(10, 2),
                      qty BIGINT, side STRING, venue STRING)
WITH ('trades.type' = 'file_source', 'trades.path' = 'examples/trades.csv',
      'trades.format' = 'csv');

-- @metric: vwap
-- @metric_type: gauge
-- @metric_field: vwap
-- @metric_labels: symbol
SELECT _window_start AS window_start,
       symbol,
       COUNT(*) AS trades,
       SUM(qty) AS volume,
       CAST(SUM(price * qty) / SUM(qty) AS DECIMAL(12, 4)) AS vwap,
       MIN(price) AS low,
       MAX(price) AS high
FROM trades
WINDOW TUMBLING(ts, INTERVAL '5' MINUTE)
GROUP BY symbol
EMIT FINAL
ORDER BY window_start, symbol;
