-- Nexmark q11: bids per bidder in session windows that close after 10
-- seconds without a bid from that bidder.
CREATE STREAM out AS
SELECT bidder, COUNT(*) AS bid_count, _window_start AS starttime, _window_end AS endtime
FROM bids
WINDOW SESSION(ts, INTERVAL '10' SECOND)
GROUP BY bidder
EMIT FINAL
WITH ('bids.type' = 'file_source', 'bids.path' = '${INPUT}', 'bids.format' = '${FORMAT}',
      'out.type' = 'file_sink', 'out.path' = '${OUTPUT}', 'out.format' = 'csv');
