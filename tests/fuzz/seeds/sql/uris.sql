SELECT * FROM file:///data/t.csv;
SELECT * FROM 'file://data/trades.csv' AS t WITH ('t.format'='csv', 't.csv.delimiter'=';');
SELECT line FROM stdin LIMIT 3;
SELECT * FROM kafka://user@broker:9092/trades?group=g1;
INSERT INTO out SELECT * FROM stdin WITH ('out.type'='file_sink', 'out.path'='o.csv');
