SELECT s, UPPER(s) AS u, LENGTH(s) AS n, SUBSTRING(s, 2, 2) AS sub FROM 'file://data/utf8.csv';
