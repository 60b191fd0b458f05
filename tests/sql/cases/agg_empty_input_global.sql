SELECT COUNT(*) AS n, SUM(qty) AS s, MAX(qty) AS m FROM 'file://data/trades.csv' WHERE qty < 0 EMIT FINAL;
