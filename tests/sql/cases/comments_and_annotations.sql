-- a comment
-- @metric: trade_count
/* block */ SELECT COUNT(*) AS n FROM 'file://data/trades.csv'; -- trailing
