SELECT DISTINCT venue FROM 'file://data/trades.csv' WHERE venue LIKE 'X%' ORDER BY venue;
