SELECT x, CAST(x AS DECIMAL(4, 2)) AS d FROM 'file://data/divide.csv';
