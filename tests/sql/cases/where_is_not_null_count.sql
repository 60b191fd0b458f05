SELECT COUNT(*) AS n FROM 'file://data/trades.csv' WHERE venue IS NOT NULL;
