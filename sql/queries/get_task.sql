select t.id, t.owner, t.login_role,
       case when t.state = 'running' and bgtask._backend_alive(t.supervisor_pid, t.supervisor_start) is false
            then 'lost' else t.state end as state,
       t.info, t.sql, t.client_info, t.options, t.submitted_at, t.start_time, t.end_time, t.step_count,
       t.step_current, t.error, t.rows_affected, t.cancel_requested, t.exit_reason
from bgtask.tbl_task t
where t.id = $1::bigint
