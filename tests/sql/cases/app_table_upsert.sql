CREATE TABLE volume AS SELECT symbol, SUM(qty) AS volume FROM 'file://data/trades.csv' GROUP BY symbol;
SELECT symbol, volume FROM volume WHERE volume > 1000;
