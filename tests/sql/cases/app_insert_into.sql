CREATE STREAM big AS SELECT symbol, qty FROM 'file://data/trades.csv' WHERE qty = 250;
INSERT INTO big SELECT symbol, qty FROM 'file://data/trades.csv' WHERE qty = 1;
SELECT symbol, qty FROM big;
