-- Nexmark q8: people who put up an auction in the same tumbling
-- 10-second window in which they registered (a window join of persons
-- and auctions on the seller).
CREATE STREAM out AS
SELECT p.id, p.name, a.id AS auction, _window_start AS starttime
FROM persons p JOIN auctions a ON p.id = a.seller
WINDOW TUMBLING(INTERVAL '10' SECOND)
WITH ('persons.type' = 'file_source', 'persons.path' = '${PERSONS}', 'persons.format' = '${FORMAT}',
      'persons.event.time.field' = 'ts',
      'auctions.type' = 'file_source', 'auctions.path' = '${AUCTIONS}', 'auctions.format' = '${FORMAT}',
      'auctions.event.time.field' = 'ts',
      'out.type' = 'file_sink', 'out.path' = '${OUTPUT}', 'out.format' = 'csv');
