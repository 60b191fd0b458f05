-- A stream-table join: each order looks up its customer in a bounded file
-- loaded whole before the stream is read; orders without a customer (an
-- unknown id, a NULL id) drop out.
SELECT o.order_id, o.customer_id, c.name, o.amount
FROM 'file://data/join_orders.csv' o JOIN 'file://data/join_customers.csv' c ON o.customer_id = c.id
ORDER BY o.order_id;
