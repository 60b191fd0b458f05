SELECT qty, NULLIF(qty, 250) AS n FROM 'file://data/trades.csv' LIMIT 8;
