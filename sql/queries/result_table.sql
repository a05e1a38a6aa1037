select bgtask.result_table($1::bigint, $2::integer)::text as result_table
