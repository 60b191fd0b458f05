SELECT symbol, FIRST_VALUE(price) AS first_price, LAST_VALUE(price) AS last_price FROM 'file://data/trades.csv' GROUP BY symbol EMIT FINAL ORDER BY symbol;
