-- Nexmark q2: selection.
CREATE STREAM out AS
SELECT auction, price
FROM bids
WHERE auction % 123 = 0
WITH ('bids.type' = 'file_source', 'bids.path' = '${INPUT}', 'bids.format' = '${FORMAT}',
      'out.type' = 'file_sink', 'out.path' = '${OUTPUT}', 'out.format' = 'csv');
