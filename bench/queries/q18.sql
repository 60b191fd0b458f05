-- Nexmark q18: the last bid of each bidder on each auction
-- (deduplication: the latest row per key by event time).
CREATE STREAM out AS
SELECT auction, bidder, price, ts FROM (
  SELECT auction, bidder, price, ts,
         ROW_NUMBER() OVER (PARTITION BY bidder, auction ORDER BY ts DESC) AS rn
  FROM bids
) last_bid WHERE rn = 1
WITH ('bids.type' = 'file_source', 'bids.path' = '${INPUT}', 'bids.format' = '${FORMAT}',
      'bids.event.time.field' = 'ts',
      'out.type' = 'file_sink', 'out.path' = '${OUTPUT}', 'out.format' = 'csv');
