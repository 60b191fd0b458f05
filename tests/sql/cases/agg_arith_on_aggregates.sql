SELECT symbol, SUM(qty) * 2 AS double_volume, MAX(qty) - MIN(qty) AS spread FROM 'file://data/trades.csv' GROUP BY symbol EMIT FINAL ORDER BY symbol;
