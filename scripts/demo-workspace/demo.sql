-- PG Background Tasks demo. Select a statement (or put the cursor in it) and press Ctrl+Alt+B,
-- or right-click → "Run Selection as Background Task". Then close the tab, reload the window, come back:
-- the task kept running on the server. Watch it in the Task Explorer (the database icon on the left).

-- A report that takes a few seconds on 3,000,000 rows: its rows are collected for you.
select status, count(*) as orders, sum(amount) as revenue, avg(amount)::numeric(10, 2) as average
from orders
group by status
order by revenue desc;

-- A backfill: one autocommit step, rows_affected recorded.
update orders set status = 'archived' where ordered_at < timestamptz '2024-01-15' and status = 'shipped';

-- Maintenance that cannot run inside a transaction block: each is its own step.
create index concurrently if not exists orders_customer on orders (customer_id);
vacuum (analyze) orders;

-- A slow one to cancel from the Task Explorer or the palette ("PG Tasks: Cancel Task").
select pg_sleep(120);

-- A mistake: the task is recorded as failed, with SQLSTATE, message, hint and the position.
select customer_id, sum(amount) from orders group by custmer_id;
