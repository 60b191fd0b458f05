SELECT 1 AS one, 'x' AS s, TRUE AS t, NULL AS n, 2.50 AS d, 1e3 AS f FROM 'file://data/trades.csv' LIMIT 2;
