-- The demo table of `npm run try`: big enough that a task takes seconds.
create table if not exists orders (
  id bigint primary key,
  customer_id integer not null,
  ordered_at timestamptz not null,
  amount numeric(10, 2) not null,
  status text not null
);
insert into orders
select g, 1 + (g::bigint * 7919) % 50000, timestamptz '2024-01-01' + (g % 31536000) * interval '1 second',
       round(((g::bigint * 104729) % 100000) / 100.0, 2), (array['new', 'paid', 'shipped', 'returned'])[1 + g % 4]
from generate_series(1, 3000000) g
on conflict do nothing;
