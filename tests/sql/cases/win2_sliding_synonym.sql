-- SLIDING is HOPPING by another name; size 10 s, advance 4 s (not a divisor).
SELECT _window_start AS ws, COUNT(*) AS n, SUM(qty) AS total
FROM 'file://data/win2_trades.csv'
WINDOW SLIDING(ts, INTERVAL '10' SECOND, INTERVAL '4' SECOND);
