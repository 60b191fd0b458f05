-- Nexmark q5 proper: bids per auction in hopping windows of 10 seconds
-- sliding every 2 seconds, and the hottest auction of each window (a
-- Top-1 per window start over the counts).
CREATE STREAM counts AS
SELECT _window_start AS ws, auction, COUNT(*) AS num
FROM bids
WINDOW HOPPING(ts, INTERVAL '10' SECOND, INTERVAL '2' SECOND)
GROUP BY auction
EMIT FINAL
WITH ('bids.type' = 'file_source', 'bids.path' = '${INPUT}', 'bids.format' = '${FORMAT}');

CREATE STREAM out AS
SELECT ws, auction, num FROM (
  SELECT ws, auction, num,
         ROW_NUMBER() OVER (PARTITION BY ws ORDER BY num DESC, auction) AS rn
  FROM counts
) hot WHERE rn <= 1
WITH ('out.type' = 'file_sink', 'out.path' = '${OUTPUT}', 'out.format' = 'csv');
