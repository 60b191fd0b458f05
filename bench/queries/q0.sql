-- Nexmark q0: pass-through.
CREATE STREAM out AS
SELECT auction, bidder, price, channel, url, ts
FROM bids
WITH ('bids.type' = 'file_source', 'bids.path' = '${INPUT}', 'bids.format' = '${FORMAT}',
      'out.type' = 'file_sink', 'out.path' = '${OUTPUT}', 'out.format' = 'csv');
