-- LEFT JOIN against a table keeps every stream row; the missing side is
-- NULL (unknown id 999, NULL id, id 104 not in the file).
SELECT o.order_id, o.customer_id, c.name, c.tier
FROM 'file://data/join_orders.csv' o LEFT JOIN 'file://data/join_customers.csv' c ON o.customer_id = c.id
ORDER BY o.order_id;
