SELECT DISTINCT venue FROM 'file://data/trades.csv' WHERE venue LIKE 'X_Y_' ORDER BY venue;
