-- Nexmark q7 (the issue's simplified form): the highest bid in each
-- tumbling 10-second window.
CREATE STREAM out AS
SELECT _window_start AS window_start, MAX(price) AS max_price
FROM bids
WINDOW TUMBLING(ts, INTERVAL '10' SECOND)
EMIT FINAL
WITH ('bids.type' = 'file_source', 'bids.path' = '${INPUT}', 'bids.format' = '${FORMAT}',
      'out.type' = 'file_sink', 'out.path' = '${OUTPUT}', 'out.format' = 'csv');
