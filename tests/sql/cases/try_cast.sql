SELECT s, TRY_CAST(s AS BIGINT) AS n FROM 'file://data/strings.csv';
