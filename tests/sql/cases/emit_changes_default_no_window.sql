SELECT side, COUNT(*) AS n FROM 'file://data/trades.csv' WHERE qty = 250 GROUP BY side;
