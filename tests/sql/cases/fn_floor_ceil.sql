SELECT FLOOR(2.7) AS f1, FLOOR(-2.7) AS f2, CEIL(2.1) AS c1, CEIL(-2.1) AS c2 FROM 'file://data/one.csv';
