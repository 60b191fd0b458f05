-- @metric: trade_volume
-- @metric_type: counter
SELECT symbol, SUM(qty) AS volume, COUNT(*), AVG(price), TUMBLE_START() AS ws
FROM 'file://trades.csv'
WHERE price > 100 AND side IN ('BUY', 'SELL')
GROUP BY symbol
WINDOW TUMBLING(ts, INTERVAL '5' MINUTE)
EMIT FINAL;
