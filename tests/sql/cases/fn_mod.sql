SELECT MOD(17, 5) AS a, MOD(-17, 5) AS b, 17 % -5 AS c FROM 'file://data/one.csv';
