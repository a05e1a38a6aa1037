select exists (select from pg_user_mappings where srvname = 'bgtask_loopback' and usename in (session_user, 'public')) as has_password
