-- Without a header, columns are named c1, c2, ...
SELECT c1 AS name, c2 AS n FROM t
WITH ('t.type' = 'file_source', 't.path' = 'data/semicolon.txt', 't.format' = 'csv',
      't.csv.delimiter' = ';', 't.csv.header' = 'false');
