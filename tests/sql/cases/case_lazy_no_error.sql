SELECT x, CASE WHEN x = 0 THEN 0 ELSE 100 / x END AS safe FROM 'file://data/divide.csv';
