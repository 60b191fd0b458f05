-- Nexmark q5 (the issue's simplified form): bids per auction in tumbling
-- 10-second windows with count, sum and average price.
CREATE STREAM out AS
SELECT _window_start AS window_start, auction,
       COUNT(*) AS bids, SUM(price) AS total, AVG(price) AS average
FROM bids
WINDOW TUMBLING(ts, INTERVAL '10' SECOND)
GROUP BY auction
EMIT FINAL
WITH ('bids.type' = 'file_source', 'bids.path' = '${INPUT}', 'bids.format' = '${FORMAT}',
      'out.type' = 'file_sink', 'out.path' = '${OUTPUT}', 'out.format' = 'csv');
