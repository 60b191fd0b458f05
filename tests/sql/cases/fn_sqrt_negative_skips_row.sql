SELECT x, SQRT(x) AS r FROM 'file://data/divide.csv';
