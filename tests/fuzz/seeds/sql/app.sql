CREATE STREAM trades (ts TIMESTAMP NOT NULL, symbol STRING, price DECIMAL(10,2), qty BIGINT)
WITH ('trades.type'='file_source', 'trades.path'='data/trades.csv', 'trades.format'='csv', 'trades.csv.header'='true');
CREATE STREAM big AS SELECT ts, symbol, price * qty AS notional FROM trades WHERE qty > 100;
CREATE TABLE totals AS SELECT symbol, SUM(notional) AS total, COUNT(*) n FROM big GROUP BY symbol
  WITH ('totals.type'='file_sink', 'totals.path'='totals.json');
INSERT INTO big SELECT ts, symbol, price FROM trades WHERE qty < 5;
SELECT symbol, COUNT(*) FROM big GROUP BY symbol WINDOW TUMBLING(5m) EMIT CHANGES;
