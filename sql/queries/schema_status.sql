select (select extversion from pg_extension where extname = 'dblink') as dblink_installed,
       exists (select from pg_available_extensions where name = 'dblink') as dblink_available,
       to_regclass('bgtask.schema_version') is not null as has_schema,
       current_setting('server_version_num')::integer as server_version_num,
       pg_is_in_recovery() as in_recovery,
       current_user::text as current_user,
       session_user::text as session_user,
       coalesce((select rolsuper from pg_roles where rolname = current_user), false) as is_superuser,
       case when exists (select from pg_roles where rolname = 'bgtask_user')
            then pg_has_role(current_user, 'bgtask_user', 'MEMBER') else false end as is_bgtask_user
