-- Two WITH queries, the second reading the first.
WITH t AS (SELECT symbol, qty, side FROM 'file://data/trades.csv'),
     buys AS (SELECT symbol, qty FROM t WHERE side = 'BUY')
SELECT symbol, SUM(qty) AS bought FROM buys GROUP BY symbol ORDER BY bought DESC, symbol;
