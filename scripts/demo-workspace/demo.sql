-- PG Background Tasks demo: a table "orders" of 3,000,000 rows.
-- Put the cursor in a statement and press Ctrl+Alt+B, or click "Run in background" above it.
-- The task runs inside PostgreSQL: close this tab or reload the window, it keeps running.
-- Watch it in the Task Explorer (the database icon on the left); click a task to open it.
-- "Run file in background" at the top runs every statement below, in order, as one task.

-- A report: its rows are kept on the server; open the task to see them.
select status, count(*) as orders, sum(amount) as revenue, avg(amount)::numeric(10, 2) as average
from orders
group by status
order by revenue desc;

-- 50,000 rows: scroll the result grid, copy a cell, export CSV or JSON.
select customer_id, count(*) as orders, sum(amount) as revenue, max(ordered_at) as last_order
from orders
group by customer_id
order by revenue desc;

-- A backfill: one autocommit step; the rows it changed are counted.
update orders set status = 'archived'
where ordered_at < timestamptz '2024-01-15' and status = 'shipped';

-- Maintenance that cannot run inside a transaction block: each is its own step.
create index concurrently if not exists orders_customer on orders (customer_id);
vacuum (analyze) orders;

-- A slow one to cancel: right-click it in the Task Explorer, Cancel Task.
select pg_sleep(120);

-- A mistake: the task fails and keeps the SQLSTATE, message, hint and position (Go to Error).
select customer_id, sum(amount) from orders group by custmer_id;
