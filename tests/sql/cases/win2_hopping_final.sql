-- Hopping windows: 10 s long, one every 5 s; each trade is in two windows.
SELECT _window_start AS ws, _window_end AS we, sym, COUNT(*) AS n, SUM(qty) AS total
FROM 'file://data/win2_trades.csv'
WINDOW HOPPING(ts, INTERVAL '10' SECOND, INTERVAL '5' SECOND)
GROUP BY sym EMIT FINAL;
