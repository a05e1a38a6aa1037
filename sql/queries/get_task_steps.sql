select s.n, s.sql, s.returns_rows, s.state, s.start_time, s.end_time, s.command_tag, s.rows_affected, s.error,
       s.capture, s.result_table, s.result_rows, s.result_stored
from bgtask.tbl_task_step s
where s.task_id = $1::bigint
order by s.n
