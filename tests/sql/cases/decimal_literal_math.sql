SELECT 0.1 + 0.2 AS s, 1.10 * 3 AS m, 10.00 / 4 AS d, 2.5 - 3.75 AS n FROM 'file://data/one.csv';
