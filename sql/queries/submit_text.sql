select bgtask.run_task($1::text, $2::text, $3::jsonb) as id
