-- The verified result table of a step (bgtask.result_table() checks its owner), and whether it has row-level
-- security: an owner role shared by several logins lets any of them add a policy, whose functions would run in
-- the session of whoever reads the rows. Such a table is not read.
select r::text as result_table, c.relrowsecurity or c.relforcerowsecurity as row_security
from (select bgtask.result_table($1::bigint, $2::integer) as r) x
left join pg_catalog.pg_class c on c.oid = x.r
