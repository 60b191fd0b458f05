SELECT 2 + 3 * 4 AS a, (2 + 3) * 4 AS b, -2 * 3 AS c, 10 - 4 - 3 AS d, 2 * 3 % 4 AS e FROM 'file://data/one.csv';
