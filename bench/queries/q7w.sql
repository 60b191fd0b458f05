-- Nexmark q7: the bids that are the highest of their tumbling 10-second
-- window: the maximum per window joined back to the bids of the same
-- window (a window join).
CREATE STREAM maxes AS
SELECT MAX(price) AS max_price
FROM bids
WINDOW TUMBLING(ts, INTERVAL '10' SECOND)
EMIT FINAL
WITH ('bids.type' = 'file_source', 'bids.path' = '${INPUT}', 'bids.format' = '${FORMAT}',
      'bids.event.time.field' = 'ts');

CREATE STREAM out AS
SELECT b.auction, b.price, b.bidder, b.ts
FROM bids b JOIN maxes m ON b.price = m.max_price
WINDOW TUMBLING(INTERVAL '10' SECOND)
WITH ('out.type' = 'file_sink', 'out.path' = '${OUTPUT}', 'out.format' = 'csv');
