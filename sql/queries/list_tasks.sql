select * from bgtask.list_tasks($1::bigint, $2::integer, $3::text[])
