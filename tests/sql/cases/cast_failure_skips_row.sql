SELECT s, CAST(s AS BIGINT) AS n FROM 'file://data/strings.csv';
