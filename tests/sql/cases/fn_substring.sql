SELECT s, SUBSTRING(s, 2, 3) AS a, SUBSTRING(s FROM 3) AS b, SUBSTRING(s, 0, 2) AS c FROM 'file://data/strings.csv';
