-- A further ON condition is part of the match: a LEFT row whose customer
-- is not gold keeps NULLs on the right (a NULL tier is not 'gold' either).
SELECT o.order_id, c.name, c.tier
FROM 'file://data/join_orders.csv' o LEFT JOIN 'file://data/join_customers.csv' c
  ON o.customer_id = c.id AND c.tier = 'gold'
ORDER BY o.order_id;
