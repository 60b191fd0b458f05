SELECT s, LENGTH(s) AS n FROM 'file://data/strings.csv';
