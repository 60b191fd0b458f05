SELECT symbol, side, COUNT(*) AS n FROM 'file://data/trades.csv' GROUP BY symbol, side EMIT FINAL ORDER BY symbol, side;
