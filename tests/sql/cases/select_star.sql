SELECT * FROM 'file://data/trades.csv';
