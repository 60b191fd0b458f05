SELECT SUM(qty) AS total, AVG(qty) AS mean, MIN(qty) AS lo, MAX(qty) AS hi FROM 'file://data/trades.csv' EMIT FINAL;
