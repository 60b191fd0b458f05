SELECT e.meta.device, meta['tags'][0], CASE WHEN amount IS NULL THEN 'none' WHEN amount > 1e3 THEN 'big' ELSE 'some' END kind,
  CASE symbol WHEN 'A' THEN 1 WHEN 'B' THEN 2 END, COALESCE(amount, 0), NULLIF(symbol, 'x'), UPPER(symbol) || '!',
  EXTRACT(HOUR FROM ts), DATE_TRUNC('hour', ts), CAST(qty AS STRING), amount::DECIMAL(12,2), TRY_CAST(symbol AS BIGINT),
  TRIM(LEADING 'x' FROM symbol), POSITION('a' IN symbol), SUBSTRING(symbol FROM 2 FOR 3), -qty, NOT flag,
  d + 1, ts + INTERVAL '1 hour', DATE '2026-01-01', TIMESTAMP '2026-01-01T10:00:00Z', 12345678901, 0.001, .5,
  COUNT(DISTINCT symbol) FILTER (WHERE qty > 0), STRING_AGG(symbol, ',')
FROM 'file://events.jsonl' e
WHERE qty BETWEEN 1 AND 100 AND symbol NOT LIKE 'c%' AND symbol ILIKE 'a_' AND ts > '2026-01-01' OR qty NOT IN (1, 2, 3)
GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19
HAVING COUNT(*) > 1;
