SELECT x, x * 1000000000000 AS big FROM 'file://data/divide.csv';
