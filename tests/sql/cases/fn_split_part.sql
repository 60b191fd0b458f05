SELECT SPLIT_PART('a,b,c', ',', 2) AS p2, SPLIT_PART('a,b,c', ',', 4) AS p4, SPLIT_PART('k=v', '=', 1) AS k FROM 'file://data/one.csv';
