SELECT ABS(-5) AS a, ABS(2.5) AS b, ABS(-0.75) AS c FROM 'file://data/one.csv';
