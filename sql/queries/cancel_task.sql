select bgtask.cancel_task($1::bigint) as cancelled
