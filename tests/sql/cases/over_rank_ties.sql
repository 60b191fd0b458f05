-- RANK and DENSE_RANK by value (not event time, so the bounded input is
-- sorted at its end): equal values share a rank; RANK leaves a gap.
SELECT sensor, v, ts,
       RANK() OVER (PARTITION BY sensor ORDER BY v DESC) AS rk,
       DENSE_RANK() OVER (PARTITION BY sensor ORDER BY v DESC) AS drk
FROM 'file://data/over_readings.csv'
ORDER BY sensor, rk, ts;
