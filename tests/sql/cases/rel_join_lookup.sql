-- A stream-table join against a file loaded whole first; LEFT keeps unmatched rows.
SELECT t.symbol, c.name, c.sector, SUM(t.qty) AS qty
FROM 'file://data/trades.csv' t LEFT JOIN 'file://data/sectors.csv' c ON t.symbol = c.symbol
GROUP BY t.symbol, c.name, c.sector ORDER BY t.symbol;
