SELECT GREATEST(3, 7, 5) AS g, LEAST(3, 7, 5) AS l, GREATEST(1.5, 2) AS gm, GREATEST('b', 'a', 'c') AS gs FROM 'file://data/one.csv';
