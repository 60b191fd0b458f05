-- Nexmark q1: currency conversion (a projection with arithmetic).
CREATE STREAM out AS
SELECT auction, bidder, price * 0.908 AS price, ts
FROM bids
WITH ('bids.type' = 'file_source', 'bids.path' = '${INPUT}', 'bids.format' = '${FORMAT}',
      'out.type' = 'file_sink', 'out.path' = '${OUTPUT}', 'out.format' = 'csv');
