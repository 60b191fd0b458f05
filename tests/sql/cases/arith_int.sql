SELECT qty, qty + 1 AS p, qty - 1 AS m, qty * 3 AS t, qty / 3 AS d, qty % 7 AS r FROM 'file://data/trades.csv' LIMIT 6;
