SELECT SQRT(16) AS s, POWER(2, 10) AS p, POWER(2.0, 0.5) AS r FROM 'file://data/one.csv';
