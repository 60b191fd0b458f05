SELECT ROUND(2.5) AS r1, ROUND(3.5) AS r2, ROUND(-2.5) AS r3, ROUND(1.2345, 2) AS r4, ROUND(1.235, 2) AS r5 FROM 'file://data/one.csv';
