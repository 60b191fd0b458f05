SELECT symbol, qty FROM t LIMIT 4
WITH ('t.type' = 'file_source', 't.path' = 'data/trades.csv', 't.format' = 'csv');
