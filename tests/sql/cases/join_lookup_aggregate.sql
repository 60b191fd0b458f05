-- Joined rows feed an aggregate: revenue per customer tier.
SELECT c.tier, COUNT(*) AS orders, SUM(o.amount) AS revenue
FROM 'file://data/join_orders.csv' o JOIN 'file://data/join_customers.csv' c ON o.customer_id = c.id
GROUP BY c.tier
ORDER BY c.tier;
