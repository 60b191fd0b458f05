-- The right side is a CREATE TABLE: the latest row per key of a bounded
-- changelog (tier changes, id 101 and 102 changed twice), complete before
-- the orders are read.
CREATE TABLE tiers AS SELECT id, LAST_VALUE(tier) AS tier, COUNT(*) AS changes
FROM 'file://data/join_tier_changes.csv' GROUP BY id;
SELECT o.order_id, o.customer_id, t.tier, t.changes
FROM 'file://data/join_orders.csv' o LEFT JOIN tiers t ON o.customer_id = t.id
ORDER BY o.order_id;
