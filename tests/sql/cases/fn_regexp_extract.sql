SELECT s, REGEXP_EXTRACT(s, '[0-9]+') AS num, REGEXP_EXTRACT(s, '([a-z]+)-([0-9]+)', 2) AS g2 FROM 'file://data/strings.csv';
