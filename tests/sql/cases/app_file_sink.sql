CREATE STREAM out AS SELECT symbol, qty FROM 'file://data/trades.csv' WHERE qty = 250
WITH ('out.type' = 'file_sink', 'out.path' = '/tmp/velo-golden-sink.csv', 'out.format' = 'csv');
SELECT COUNT(*) AS written FROM out EMIT FINAL;
