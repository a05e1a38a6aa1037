-- bgtask 000003: a task starts sooner, a burst of submits no longer queues behind one lock, and a task runs only
-- under the login that submitted it.
--
-- Apply as a superuser (or the managed service's admin role) with plain psql, after 000002:
--   psql -v ON_ERROR_STOP=1 -d yourdb -f sql/000003_fast_start.sql
-- Applying it twice is harmless, and it refuses to run over a newer schema. Nothing in the tables changes; a
-- supervisor running while it is applied finishes with the procedure it started with, calling the new functions
-- (version 2's _claim(id, token) is kept for it).
--
-- What `npm run bench` measured on version 2, and what this file changes (README, "Performance"):
--   - From submit to the worker executing the SQL took 5.2× the recipe's time. The supervisor claimed its slot
--     and committed, then logged the worker in, asked it for its settings and then for its pid in two round trips,
--     committed, and committed once more when the first step started. Now the settings and the pid are one query
--     and the worker's pid is committed with the first step's start.
--   - 50 submits from 10 sessions took 6.7× the recipe's time: every submit of a role held the role's lock
--     across a dblink login (the supervisor's), so the logins ran one at a time. Now a submit decides under the
--     lock, takes a reservation that the others count (an advisory lock until it commits, seen in pg_locks), and
--     logs in outside it; the commit-time check skips tasks launched at submit.
--   - A connection is opened first and the reasons it could fail are looked up only when it has failed; the
--     free-slot count reads the server's backend list once instead of once per running task, and is planned once
--     per session; an ending supervisor with no queued task to start no longer counts at all.
-- Now that a submit launches outside the lock, the free-slot count reads the reservations, the backends and the
-- rows in that order, the order a task passes through them, and counts each task once; it no longer reads
-- backends' query text, which a NOLOGIN owner may not see (_free_slots, below).
-- A task that had just ended could be shown as lost for a moment (_backend_alive, below).
-- A task runs only under the login that submitted it. Members of a shared NOLOGIN owner role (SET ROLE) used to
-- run each other's queued tasks with their own login (a finishing supervisor started the role's next task,
-- whoever submitted it), and could edit the SQL of each other's queued tasks, as an admin could anyone's: a task's
-- SQL may RESET ROLE, so that ran with another login's rights. Now _claim refuses another login's task,
-- _start_queued starts only its own login's, reap() starts the caller's queued tasks of every role it acts as,
-- and what a task runs (SQL, steps, settings, options, who submitted it) can no longer be changed once submitted,
-- nor its steps deleted, nor a task that has run queued again (column privileges and a trigger; no table is
-- altered, so applying this file never waits for running supervisors' locks in an order that could deadlock).
-- The text shown for a task is made from its steps. A user mapping that logs in as another role (one for PUBLIC)
-- is refused at launch and at the worker's login.
-- The free-slot count also counts the other logins of a shared owner role, and a lock anyone takes in a role's
-- reservation class no longer makes its submits fail; an ending supervisor takes the role's lock before it looks
-- for queued tasks, so a task whose commit-time check ran just before cannot be left queued; a submit in a
-- REPEATABLE READ or SERIALIZABLE transaction, whose rows are older than the backend list, counts every
-- supervisor there as taking a slot.
-- A login the server refuses (a role's or the database's connection limit, max_connections, pg_hba.conf, NOLOGIN)
-- is reported as that, with what to do, instead of as an unreachable loopback server; a task whose worker could
-- not log in marks its steps skipped instead of leaving them pending.
-- It also fixes the recorded backend_start of tasks run as another role (SET ROLE to a NOLOGIN owner): the
-- owner may not see its login role's backends, so supervisor_start and worker_start were stored as NULL, and
-- such a task could not be told from an unrelated backend that later got the same pid.

BEGIN;
-- One installer at a time; the same key as 000001 and the TypeScript installer.
DO $$ BEGIN PERFORM pg_catalog.pg_advisory_xact_lock(1650947169, 0); END $$;
SET LOCAL search_path = pg_catalog, pg_temp;
SET LOCAL client_min_messages = warning;

DO $$
DECLARE v integer;
BEGIN
  IF pg_catalog.to_regclass('bgtask.schema_version') IS NULL THEN
    RAISE EXCEPTION 'the bgtask schema is not installed in database %', pg_catalog.current_database()
      USING HINT = 'Apply the files in sql/ in order: 000001_init.sql first, then the others.';
  END IF;
  v := (SELECT max(version) FROM bgtask.schema_version);
  IF v > 3 THEN
    RAISE EXCEPTION 'the bgtask schema is already at version %, newer than 000003_fast_start.sql', v
      USING HINT = 'Apply only the files in sql/ numbered above the installed version.';
  END IF;
  IF v IS NULL OR v < 2 THEN
    RAISE EXCEPTION 'the bgtask schema in database % is at version %, and this file needs version 2', pg_catalog.current_database(), coalesce(v, 0)
      USING HINT = 'Apply the files in sql/ in order: 000002_scram_passthrough.sql first, then this one.';
  END IF;
END
$$;
INSERT INTO bgtask.schema_version (version, name) VALUES (3, '000003_fast_start') ON CONFLICT (version) DO NOTHING;
-- Re-applying the newest file repairs a database whose dblink or loopback server was dropped (see 000002).
DO $$ BEGIN PERFORM bgtask.repair(); END $$;

-- Why a loopback connection could not be opened, as an error that says what to run. Called by _connect only
-- after the connection failed (it used to look all of this up before every connection, in both the submitter
-- and the supervisor). The checks run in the order that finds the cause: dblink, the server, the role's user
-- mapping, then what libpq said. Always raises.
CREATE OR REPLACE FUNCTION bgtask._connect_failed(p_state text, p_message text, p_detail text, p_hint text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_options text[];
  v_has_password boolean;
  v_passthrough boolean;
  v_detail text := coalesce(p_detail, '');
BEGIN
  IF NOT EXISTS (SELECT FROM pg_extension WHERE extname = 'dblink') THEN
    RAISE EXCEPTION 'the dblink extension is not installed in database %', current_database()
      USING ERRCODE = 'undefined_function',
            HINT = 'A superuser (or the service''s admin role) should run: select bgtask.repair(); — it runs CREATE EXTENSION dblink and re-creates the loopback server.';
  END IF;
  IF NOT EXISTS (SELECT FROM pg_foreign_server WHERE srvname = 'bgtask_loopback') THEN
    RAISE EXCEPTION 'the foreign server bgtask_loopback is missing'
      USING ERRCODE = 'undefined_object',
            HINT = 'A superuser (or the service''s admin role) should run: select bgtask.repair();';
  END IF;
  -- The role's own mapping wins over a PUBLIC one, as in dblink. Its options are visible to the role itself.
  SELECT m.umoptions INTO v_options
  FROM pg_user_mappings m
  WHERE m.srvname = 'bgtask_loopback' AND m.usename IN (session_user, 'public')
  ORDER BY m.usename = 'public'
  LIMIT 1;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'role % has no password stored for background tasks in database %', session_user, current_database()
      USING ERRCODE = 'invalid_authorization_specification',
            HINT = format('Connected as %s, run: select bgtask.set_password(''…'') — or use "Set Password" in VS Code. '
                          'In psql, keep the password out of your history: \prompt ''Password: '' pw  then  select bgtask.set_password(:''pw'');', session_user)
                   || CASE WHEN current_setting('server_version_num')::int >= 180000
                           THEN ' Or, from a session that logged in with a password (scram-sha-256), store none at all: select bgtask.use_scram_passthrough();'
                           ELSE '' END;
  END IF;
  v_has_password := bgtask._option(v_options, 'password') IS NOT NULL;
  v_passthrough := bgtask._passthrough(v_options);
  IF v_passthrough AND NOT v_has_password AND v_detail NOT ILIKE '%not request a password%'
     AND (p_message ILIKE '%password or GSSAPI delegated credentials required%' OR v_detail ILIKE '%no password supplied%') THEN
    RAISE EXCEPTION 'role % has no password stored for background tasks, and this session did not authenticate with SCRAM, which SCRAM pass-through needs', session_user
      USING ERRCODE = 'invalid_authorization_specification',
            DETAIL = format('The user mapping of role %s on bgtask_loopback passes on the keys of a scram-sha-256 login (use_scram_passthrough) instead of a password; this session logged in with %s.',
                            session_user, coalesce(bgtask._login_method(), 'another method')),
            HINT = 'Log in with a password (scram-sha-256; not peer, trust, cert, GSS or through a pooler) and submit from there, or store a password: select bgtask.set_password(''…'');';
  ELSIF v_detail ILIKE '%password authentication failed%' THEN
    IF v_passthrough AND (NOT v_has_password OR bgtask._login_method() = 'scram-sha-256') THEN
      RAISE EXCEPTION 'the server refused the SCRAM pass-through login of role %: its password changed after this session logged in', session_user
        USING ERRCODE = 'invalid_password', DETAIL = v_detail,
              HINT = 'Connect again with the current password and submit from the new session; the keys passed on are those of this session''s login.';
    END IF;
    RAISE EXCEPTION 'the password stored for role % was refused by the server', session_user
      USING ERRCODE = 'invalid_password', DETAIL = v_detail,
            HINT = 'The role''s password changed since it was stored: run select bgtask.set_password(''…'') again.';
  ELSIF p_message ILIKE '%password is required%' OR v_detail ILIKE '%password is required%'
        OR p_message ILIKE '%password%not%request%' OR v_detail ILIKE '%not request a password%' THEN
    RAISE EXCEPTION 'the server let the loopback connection in without asking for a password, which dblink refuses for ordinary roles'
      USING ERRCODE = 'insufficient_privilege', DETAIL = coalesce(p_detail, p_message),
            HINT = 'Make pg_hba.conf require scram-sha-256 (or md5) for host 127.0.0.1 and this database, then reload.';
  END IF;
  -- The server refused the login itself (libpq's FATAL is in the detail): say which limit or rule, and what to do.
  IF v_detail ILIKE '%too many connections for role%' THEN
    RAISE EXCEPTION 'role % has reached its connection limit (%), and a task needs two connections of its own', session_user,
                    (SELECT r.rolconnlimit FROM pg_roles r WHERE r.rolname = session_user)
      USING ERRCODE = 'too_many_connections', DETAIL = v_detail,
            HINT = format('Each running task holds two connections of role %s (its supervisor and its worker). Raise the limit (ALTER ROLE %I CONNECTION LIMIT …), '
                          'or let fewer tasks run at once: insert into bgtask.role_settings values (''<the tasks'' owner role>'', 1).', session_user, session_user);
  ELSIF v_detail ILIKE '%too many connections for database%' THEN
    RAISE EXCEPTION 'database % has reached its connection limit, and a task needs two connections of its own', current_database()
      USING ERRCODE = 'too_many_connections', DETAIL = v_detail,
            HINT = format('Each running task holds two connections. Raise the limit (ALTER DATABASE %I CONNECTION LIMIT …), or lower bgtask''s max_running_per_role.', current_database());
  ELSIF v_detail ILIKE '%too many clients already%' OR v_detail ILIKE '%remaining connection slots are reserved%' THEN
    RAISE EXCEPTION 'the server has no connection slot left for a task (max_connections)'
      USING ERRCODE = 'too_many_connections', DETAIL = v_detail,
            HINT = 'Each running task holds two connections. Raise max_connections (a restart), or lower bgtask''s max_running_per_role; a queued task starts when a slot frees up.';
  ELSIF v_detail ILIKE '%pg_hba.conf rejects connection%' THEN
    RAISE EXCEPTION 'pg_hba.conf rejects the loopback connection of role % (host 127.0.0.1, database %)', session_user, current_database()
      USING ERRCODE = 'invalid_authorization_specification', DETAIL = v_detail,
            HINT = 'Allow it with a line such as: host  <this database>  <the role or all>  127.0.0.1/32  scram-sha-256, above the reject line — then reload (select pg_reload_conf()).';
  ELSIF v_detail ILIKE '%permission denied for database%' THEN
    RAISE EXCEPTION 'role % may not connect to database %, and a task connects to it again', session_user, current_database()
      USING ERRCODE = 'insufficient_privilege', DETAIL = v_detail,
            HINT = format('GRANT CONNECT ON DATABASE %I TO %I (or to a role it is a member of).', current_database(), session_user);
  ELSIF v_detail ILIKE '%not currently accepting connections%' THEN
    RAISE EXCEPTION 'database % is not accepting connections (ALTER DATABASE … ALLOW_CONNECTIONS false), and a task connects to it again', current_database()
      USING ERRCODE = 'object_not_in_prerequisite_state', DETAIL = v_detail,
            HINT = 'Submit when the database accepts connections again; a task needs two of its own.';
  ELSIF v_detail ILIKE '%no pg_hba.conf entry%' THEN
    RAISE EXCEPTION 'pg_hba.conf has no entry for the loopback connection of role % (host 127.0.0.1, database %)', session_user, current_database()
      USING ERRCODE = 'invalid_authorization_specification', DETAIL = v_detail,
            HINT = 'Add a line such as: host  <this database>  <the role or all>  127.0.0.1/32  scram-sha-256 — then reload (select pg_reload_conf()).';
  ELSIF v_detail ILIKE '%is not permitted to log in%' THEN
    RAISE EXCEPTION 'role % may not log in, and a task logs in as the role that submits it', session_user
      USING ERRCODE = 'invalid_authorization_specification', DETAIL = v_detail,
            HINT = 'Submit from a role with LOGIN (SET ROLE to a NOLOGIN owner is fine: the task runs as that owner).';
  END IF;
  IF p_state IN ('08001', '28000', '28P01', '42501', 'HV000', '42710', '2F003') THEN
    RAISE EXCEPTION 'could not open the loopback connection for background tasks: %', p_message
      USING ERRCODE = 'sqlclient_unable_to_establish_sqlconnection', DETAIL = v_detail,
            HINT = 'Check that the server accepts connections on 127.0.0.1 (listen_addresses), port and database of server bgtask_loopback (select bgtask.repair_loopback() re-points it).';
  END IF;
  -- Anything else (out of memory, too many connections reported by this server…) as it was.
  RAISE EXCEPTION USING ERRCODE = p_state, MESSAGE = p_message, DETAIL = v_detail, HINT = coalesce(p_hint, '');
END
$$;

-- Opens a loopback dblink connection named p_link with the session user's user mapping, whatever role is
-- current (DESIGN.md §3, identity), and puts the caller's role back before returning (see 000001). The same as
-- 000002's, but it connects first and looks up why only when that failed (_connect_failed).
CREATE OR REPLACE FUNCTION bgtask._connect(p_link text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_role text := current_setting('role');
  e_state text; e_msg text; e_detail text; e_hint text;
BEGIN
  IF current_user <> session_user THEN
    PERFORM set_config('role', 'none', true);
  END IF;
  BEGIN
    PERFORM bgtask._dblink_connect(p_link, 'bgtask_loopback');
  EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS e_state = RETURNED_SQLSTATE, e_msg = MESSAGE_TEXT, e_detail = PG_EXCEPTION_DETAIL,
                            e_hint = PG_EXCEPTION_HINT;
    PERFORM bgtask._connect_failed(e_state, e_msg, e_detail, e_hint);
  END;
  IF v_role <> 'none' AND current_setting('role') IS DISTINCT FROM v_role THEN
    PERFORM set_config('role', v_role, true);
  END IF;
END
$$;

-- A loopback connection logs in with a user mapping of bgtask_loopback: the session user's own, or a PUBLIC one.
-- One that logs in as another role would run tasks with that role's rights (a task's SQL may RESET ROLE), so the
-- supervisor's login and the worker's are compared with the session user's, and a mismatch is refused with this.
CREATE OR REPLACE FUNCTION bgtask._wrong_login(p_login text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  RAISE EXCEPTION 'the loopback connection of role % logged in as %, and a task must run with the rights of the role that submits it', session_user, coalesce(p_login, 'nobody')
    USING ERRCODE = 'invalid_authorization_specification',
          DETAIL = 'Server bgtask_loopback has no user mapping of this role''s own, and the one it used (for PUBLIC, most likely) names another user.',
          HINT = format('Connected as %s, run select bgtask.set_password(''…''): the role''s own mapping takes precedence. '
                        'A superuser should also drop the other mapping (DROP USER MAPPING FOR PUBLIC SERVER bgtask_loopback).', session_user);
END
$$;

-- Starts a supervisor backend for a task (see 000001), and refuses a link that logged in as another role.
CREATE OR REPLACE FUNCTION bgtask._launch(p_id bigint, p_token text, p_owner name) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_link text := format('bgtask_launch_%s_%s', p_id, pg_backend_pid());
  v_role text := current_setting('role');
  r jsonb;
BEGIN
  PERFORM bgtask._connect(v_link);
  -- The caller's role, whatever _connect (or a later migration's version of it) did to log in: see _connect.
  IF v_role <> 'none' AND current_setting('role') IS DISTINCT FROM v_role THEN
    PERFORM set_config('role', v_role, true);
  END IF;
  BEGIN
    -- Every name is qualified (the new session has the role's own search_path), and the same query names the
    -- backend, so that _free_slots sees this task's supervisor is there.
    r := bgtask._dblink_value(v_link, format(
      'select pg_catalog.json_build_object(''db'', pg_catalog.current_database(), ''port'', pg_catalog.current_setting(''port''),
                                           ''started'', pg_catalog.pg_postmaster_start_time(), ''login'', session_user,
                                           ''name'', pg_catalog.set_config(''application_name'', %L, false),
                                           ''owner'', %L)',
      format('bgtask supervisor %s', p_id), p_owner))::jsonb;
    IF r ->> 'db' IS DISTINCT FROM current_database() OR r ->> 'port' IS DISTINCT FROM current_setting('port')
       OR (r ->> 'started')::timestamptz IS DISTINCT FROM pg_postmaster_start_time() THEN
      RAISE EXCEPTION 'the loopback server bgtask_loopback reaches database % on port %, not this database % on port %',
                      r ->> 'db', r ->> 'port', current_database(), current_setting('port')
        USING ERRCODE = 'object_not_in_prerequisite_state',
              DETAIL = 'This database was probably cloned from a template, renamed or restored under another name, or the port changed.',
              HINT = 'The owner of server bgtask_loopback (a superuser) should run: select bgtask.repair_loopback();';
    END IF;
    IF r ->> 'login' IS DISTINCT FROM session_user THEN
      PERFORM bgtask._wrong_login(r ->> 'login');
    END IF;
    PERFORM bgtask._dblink_send_query(v_link, format('CALL bgtask.supervise(%s, %L, %L)', p_id, p_token, p_owner));
    PERFORM bgtask._dblink_disconnect(v_link);
  EXCEPTION WHEN query_canceled OR OTHERS THEN
    -- A named dblink connection survives ROLLBACK: close it on every failure path.
    PERFORM bgtask._disconnect(v_link);
    RAISE;
  END;
END
$$;

-- The advisory lock that reserves a slot for a task from a submit's decision to the end of its transaction
-- (_submit), which _free_slots counts. Two keys: the first names the owner, so that _free_slots finds a role's
-- reservations in pg_locks (classid, with objsubid = 2), the second is the task (objid).
CREATE OR REPLACE FUNCTION bgtask._reservation_class(p_owner name) RETURNS integer
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$ SELECT hashtext('bgtask slot ' || p_owner) $$;

-- How many more tasks of a role may start now (see 000001): its limit, less the tasks that hold a slot or are
-- on their way to one. A task launched at submit passes through three places where it is seen:
--   1. the reservation, an advisory lock its submit holds from the decision until it commits or rolls back
--      (_submit), whether or not its supervisor is there yet;
--   2. its row, once committed: queued, with its supervisor there (named `bgtask supervisor <id>`) — `pending`;
--   3. its row running, with the supervisor that claimed it still alive (_backend_alive's test).
-- A task launched by _start_queued or _launch_at_commit starts at 2: its launcher holds the role's lock until
-- its row and its named supervisor are both visible. Each task counts once, by its key, whichever places it
-- is seen in. The caller holds the role's lock, so no other decision is taken meanwhile, but a launch decided
-- earlier goes on, so the three places are read in the order a task passes through them: the locks, then the
-- backends, then the rows (a statement of its own, whose snapshot is taken after the backend list). A task that
-- moves on between two reads is then seen in the earlier place or the later one. Read in one statement, the rows
-- came first and the locks last, and a submit that named its supervisor and committed in between was seen
-- nowhere: a burst of 50 submits launched a fifth supervisor for 4 slots now and then (CI saw it; a 10 ms pause
-- before the lock read made it happen every run). Supervisors of uncommitted submits used to be recognised by
-- their query text instead of the reservation, which a NOLOGIN owner (SET ROLE) may not read.
-- Only backends and locks of this session user and of the owner role's members count as ours (the logins that
-- share a NOLOGIN owner take its slots too), so a role outside it cannot hold up the queue by naming its sessions
-- like ours or by taking the same advisory locks; keys stay bigint, since anyone may take a lock in the
-- reservation class with a key beyond the integers (it used to make every submit of the role fail). Each query is planned once per session
-- (force_generic_plan): planned afresh on each call, as PostgreSQL does by default for the first five calls with
-- parameters, the count cost 0.9 ms a call instead of 0.35 ms.
CREATE OR REPLACE FUNCTION bgtask._free_slots(p_owner name, OUT free integer, OUT pending bigint[])
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp SET plan_cache_mode = force_generic_plan AS $$
DECLARE
  v_db oid := (SELECT oid FROM pg_database WHERE datname = current_database());
  v_me oid := (SELECT r.oid FROM pg_roles r WHERE r.rolname = session_user);   -- not to_regrole(), which folds case
  v_owner oid := (SELECT r.oid FROM pg_roles r WHERE r.rolname = p_owner);
  v_lock_pids integer[];      -- reservations: the submits' pids and their tasks' keys
  v_lock_keys bigint[];       -- bigint: anyone may take a lock in this class with any key (objid is unsigned)
  v_reserved bigint[];        -- the keys of those held by members' backends
  v_pids integer[];           -- every backend, and its start
  v_starts timestamptz[];
  v_mine integer[];           -- backends in this database of this session user or of the owner role's members
  v_named bigint[];           -- tasks whose supervisor is there (ours)
  v_taken integer;
BEGIN
  -- 1. Reservations.
  SELECT coalesce(array_agg(l.pid), '{}'), coalesce(array_agg(l.objid::bigint), '{}') INTO v_lock_pids, v_lock_keys
  FROM pg_locks l
  WHERE l.locktype = 'advisory' AND l.database = v_db AND l.objsubid = 2 AND l.granted
    AND l.classid = bgtask._reservation_class(p_owner)::oid;
  -- 2. The backends. pg_stat_activity is read once per transaction and then cached: the commit-time check would
  -- otherwise see the backends as they were before this very transaction launched one.
  PERFORM pg_stat_clear_snapshot();
  SELECT coalesce(array_agg(b.pid), '{}'), coalesce(array_agg(b.backend_start), '{}'),
         coalesce(array_agg(b.pid) FILTER (WHERE b.mine), '{}'),
         coalesce(array_agg(b.task) FILTER (WHERE b.mine AND b.task IS NOT NULL), '{}')
  INTO v_pids, v_starts, v_mine, v_named
  FROM (SELECT a.pid, a.backend_start, a.datid = v_db AND (a.usesysid = v_me OR pg_has_role(a.usesysid, v_owner, 'MEMBER')) AS mine,
               CASE WHEN a.application_name ~ '^bgtask supervisor \d+$' THEN substring(a.application_name from '\d+$')::bigint END AS task
        FROM pg_stat_get_activity(NULL) AS a
        WHERE a.pid IS NOT NULL) AS b;
  SELECT coalesce(array_agg(l.key), '{}') INTO v_reserved
  FROM unnest(v_lock_pids, v_lock_keys) AS l(pid, key) WHERE l.pid = ANY (v_mine);
  -- 3. The rows, in a snapshot taken after the backend list.
  SELECT
    -- Queued tasks whose supervisor is there, or whose submit reserved a slot for them.
    (SELECT coalesce(array_agg(t.id), '{}') FROM bgtask.tbl_task t
     WHERE t.owner = p_owner AND t.state = 'queued' AND (t.id = ANY (v_named) OR bgtask._task_key(t.id)::bigint = ANY (v_reserved))),
    (SELECT count(DISTINCT k) FROM (
       SELECT unnest(v_reserved) AS k
       UNION ALL
       -- Under REPEATABLE READ or SERIALIZABLE (a submit in such a transaction) every statement sees the
       -- transaction's first snapshot, older than the backend list: every supervisor there takes a slot.
       SELECT bgtask._task_key(n.task)::bigint FROM unnest(v_named) AS n(task)
       WHERE current_setting('transaction_isolation') <> 'read committed'
       UNION ALL
       SELECT bgtask._task_key(t.id)::bigint FROM bgtask.tbl_task t
       WHERE t.owner = p_owner AND t.state = 'queued' AND t.id = ANY (v_named)
       UNION ALL
       -- Running, unless provably lost: the recorded backend is gone or another one has its pid (_backend_alive).
       SELECT bgtask._task_key(t.id)::bigint FROM bgtask.tbl_task t JOIN unnest(v_pids, v_starts) AS b(pid, backend_start) ON b.pid = t.supervisor_pid
       WHERE t.owner = p_owner AND t.state = 'running' AND (b.backend_start = t.supervisor_start) IS NOT false) AS x)
  INTO pending, v_taken;
  free := bgtask._max_running(p_owner) - v_taken;
END
$$;

-- As 000001, apart from how it launches (the end).
CREATE OR REPLACE FUNCTION bgtask._submit(p_steps text[], p_info text, p_options jsonb, p_sql text, p_settings jsonb)
RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_id bigint;
  v_token text := gen_random_uuid()::text;
  v_options jsonb := coalesce(p_options, '{}');
  v_flags jsonb;
  v_owner name := current_user;
  v_key integer;
  v_launch boolean;
  i integer;
BEGIN
  IF p_steps IS NULL OR cardinality(p_steps) = 0 THEN
    RAISE EXCEPTION 'no SQL to run: the task is empty'
      USING ERRCODE = 'invalid_parameter_value', HINT = 'Pass the SQL text, or an array of statements.';
  END IF;
  FOR i IN 1 .. cardinality(p_steps) LOOP
    IF p_steps[i] IS NULL OR bgtask._is_blank(p_steps[i]) THEN
      RAISE EXCEPTION '%', CASE WHEN cardinality(p_steps) = 1 THEN 'no SQL to run: the text is empty or only comments'
                                ELSE format('no SQL to run in step %s: it is empty or only comments', i) END
        USING ERRCODE = 'invalid_parameter_value', HINT = 'Select the statements to run and submit again.';
    END IF;
  END LOOP;
  IF jsonb_typeof(v_options) <> 'object' THEN
    RAISE EXCEPTION 'options must be a JSON object, not %', jsonb_typeof(v_options)
      USING ERRCODE = 'invalid_parameter_value', HINT = 'For example: ''{"stop_on_error": false, "max_rows": 1000}''';
  END IF;
  v_flags := v_options -> 'returns_rows';
  IF v_flags IS NOT NULL AND (jsonb_typeof(v_flags) <> 'array' OR jsonb_array_length(v_flags) <> cardinality(p_steps)) THEN
    RAISE EXCEPTION 'options.returns_rows must be an array with one true/false/null per step'
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF pg_is_in_recovery() THEN
    RAISE EXCEPTION 'cannot submit a background task on a standby server'
      USING ERRCODE = 'read_only_sql_transaction', HINT = 'Connect to the primary server and submit there.';
  END IF;
  IF current_setting('transaction_read_only')::boolean THEN
    RAISE EXCEPTION 'cannot submit a background task in a read-only transaction'
      USING ERRCODE = 'read_only_sql_transaction',
            HINT = 'Submit outside the read-only transaction (SET TRANSACTION READ WRITE, or check default_transaction_read_only).';
  END IF;

  -- The text shown for a task is made from the steps that run (run_task's own rule), whatever a direct caller of
  -- _submit passed as p_sql: what another role lists, reads or re-runs is what ran. login_role takes its
  -- default, session_user (no role may write it: see the grants below).
  INSERT INTO bgtask.tbl_task (owner, info, sql, client_info, settings, options, step_count, token)
  VALUES (current_user, p_info, CASE WHEN cardinality(p_steps) = 1 THEN p_steps[1] ELSE array_to_string(p_steps, E';\n') END,
          jsonb_build_object('usename', session_user, 'current_user', current_user, 'datname', current_database(),
                             'search_path', p_settings ->> 'search_path',
                             'application_name', current_setting('application_name'),
                             'client_addr', inet_client_addr(), 'client_port', inet_client_port(),
                             'backend_pid', pg_backend_pid()),
          coalesce(p_settings, '{}'), v_options, cardinality(p_steps), v_token)
  RETURNING id INTO v_id;
  INSERT INTO bgtask.tbl_task_step (task_id, n, owner, sql, returns_rows)
  SELECT v_id, s.n, current_user, s.step, (v_flags ->> (s.n::int - 1))::boolean
  FROM unnest(p_steps) WITH ORDINALITY AS s(step, n);

  -- The supervisor takes this lock first, so it runs only after this transaction commits and never after a
  -- rollback (the link cannot see the uncommitted row; DESIGN.md §2).
  PERFORM pg_advisory_xact_lock(1650947169, bgtask._task_key(v_id));
  -- Launch now only if the role has a free slot (see 000001: a task that waits is started by the supervisor of
  -- the role that ends next, or by the commit-time check). When it launches now, the connection is tried here,
  -- so a missing password or a cloned database fails this call with what to run.
  -- The decision is taken under the role's lock, as _claim, _start_queued and _launch_at_commit take theirs, but
  -- the login is not: holding the lock across it made every submit of the role wait for the others' logins (50
  -- submits from 10 sessions took 6.7× as long as 50 bare dblink logins). Until this transaction
  -- ends, the slot is held by a reservation, an advisory lock that _free_slots counts (pg_locks); after it, by
  -- the committed row and its supervisor.
  v_key := hashtext(current_user);
  PERFORM pg_advisory_lock(1650947170, v_key);
  BEGIN
    v_launch := (bgtask._free_slots(v_owner)).free > 0;
    IF v_launch THEN
      PERFORM pg_advisory_xact_lock(bgtask._reservation_class(v_owner), bgtask._task_key(v_id));
    END IF;
  EXCEPTION WHEN query_canceled OR OTHERS THEN
    PERFORM pg_advisory_unlock(1650947170, v_key);
    RAISE;
  END;
  PERFORM pg_advisory_unlock(1650947170, v_key);
  IF v_launch THEN
    PERFORM bgtask._launch(v_id, v_token, v_owner);
    -- For the commit-time check, which has nothing left to do for this task.
    PERFORM set_config('bgtask.launched', concat_ws(',', nullif(current_setting('bgtask.launched', true), ''), v_id), true);
  END IF;
  RETURN v_id;
END
$$;

-- The commit-time half of a submit that found no free slot (see 000001). It now returns at once for a task
-- launched at submit: it used to take the role's lock and count again for every task, which serialised the
-- commits of a burst of submits.
CREATE OR REPLACE FUNCTION bgtask._launch_at_commit() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  t bgtask.tbl_task;
  v_slots record;
BEGIN
  IF NEW.id::text = ANY (string_to_array(current_setting('bgtask.launched', true), ',')) THEN
    RETURN NULL;
  END IF;
  SELECT * INTO t FROM bgtask.tbl_task WHERE id = NEW.id;
  IF NOT FOUND OR t.state <> 'queued' OR t.cancel_requested THEN
    RETURN NULL;
  END IF;
  PERFORM pg_advisory_xact_lock(1650947170, hashtext(t.owner));
  v_slots := bgtask._free_slots(t.owner);
  IF t.id = ANY (v_slots.pending) OR v_slots.free <= 0 THEN
    RETURN NULL;   -- launched at submit, or a slot will free up and its supervisor starts this task
  END IF;
  BEGIN
    PERFORM bgtask._launch(t.id, t.token, t.owner);
  EXCEPTION WHEN query_canceled OR OTHERS THEN
    RAISE WARNING 'bgtask: task % stays queued: %', t.id, SQLERRM
      USING HINT = 'It starts when another task of its role submitted from this login ends, or at select bgtask.reap().';
  END;
  RETURN NULL;
END
$$;

-- Takes the slot for a task if its role has one free (see 000001). p_start is the supervisor's backend_start,
-- read by supervise before it switched to the owner role, which may not see it: it used to be read here, as
-- the owner, and was NULL for tasks of a NOLOGIN owner. The backend list is read once, not once per task.
CREATE OR REPLACE FUNCTION bgtask._claim(p_id bigint, p_token text, p_start timestamptz) RETURNS text
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  t bgtask.tbl_task;
  v_running integer;
BEGIN
  PERFORM pg_advisory_xact_lock(1650947170, hashtext(current_user));
  SELECT * INTO t FROM bgtask.tbl_task WHERE id = p_id AND token = p_token FOR UPDATE;
  IF NOT FOUND OR t.state <> 'queued' THEN
    PERFORM set_config('application_name', format('bgtask supervisor %s: not queued, leaving', p_id), false);
    RETURN 'gone';
  END IF;
  IF t.cancel_requested THEN
    UPDATE bgtask.tbl_task SET state = 'cancelled', end_time = clock_timestamp(), exit_reason = 'cancelled before it started'
    WHERE id = p_id;
    PERFORM set_config('application_name', format('bgtask supervisor %s: cancelled, leaving', p_id), false);
    RETURN 'cancelled';
  END IF;
  -- A task runs only under the login that submitted it: members of a shared owner role may not run each other's
  -- SQL with their own login's rights. (_start_queued launches only its own login's tasks; this is the guard.)
  IF t.login_role <> session_user THEN
    PERFORM set_config('application_name', format('bgtask supervisor %s: submitted by another login, leaving', p_id), false);
    RETURN 'queued';
  END IF;
  PERFORM pg_stat_clear_snapshot();
  SELECT count(*) INTO v_running
  FROM bgtask.tbl_task x
  JOIN pg_stat_get_activity(NULL) AS a ON a.pid = x.supervisor_pid
  WHERE x.owner = t.owner AND x.state = 'running' AND x.id <> p_id
    AND (a.backend_start = x.supervisor_start) IS NOT false;
  IF v_running >= bgtask._max_running(t.owner) THEN
    PERFORM set_config('application_name', format('bgtask supervisor %s: no free slot, leaving', p_id), false);
    RETURN 'queued';
  END IF;
  UPDATE bgtask.tbl_task
  SET state = 'running', start_time = clock_timestamp(), supervisor_pid = pg_backend_pid(), supervisor_start = p_start
  WHERE id = p_id;
  RETURN 'run';
END
$$;

-- Version 2's signature, for supervisors that were started before this file was applied.
CREATE OR REPLACE FUNCTION bgtask._claim(p_id bigint, p_token text) RETURNS text
LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$
  SELECT bgtask._claim(p_id, p_token, (SELECT a.backend_start FROM pg_stat_get_activity(pg_backend_pid()) AS a))
$$;

-- The query that prepares a fresh worker, and answers with its pid and backend_start as json: one round trip
-- (there were two). The pid and backend_start are read first — json_build_object evaluates its arguments in
-- order — because after `role` is set the owner role may not see them. The rest as in 000001: run as the owner,
-- under a name a DBA can find, silent, with the caller's settings and the task's own timeouts.
CREATE OR REPLACE FUNCTION bgtask._worker_setup_sql(p_task bgtask.tbl_task) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
  -- The worker logs in with the role's own search_path (ALTER ROLE … SET): every name is qualified.
  SELECT 'SELECT pg_catalog.json_build_object(''pid'', pg_catalog.pg_backend_pid(), ''login'', session_user, ''started'', '
         || '(SELECT a.backend_start FROM pg_catalog.pg_stat_get_activity(pg_catalog.pg_backend_pid()) AS a), '
         || '''settings'', (SELECT pg_catalog.count(*) FROM (SELECT '
         || string_agg(format('pg_catalog.set_config(%L, %L, false)', k, v), ', ' ORDER BY ord) || ') AS s))'
  FROM (
    SELECT 1 AS ord, 'role' AS k, p_task.owner::text AS v WHERE p_task.owner <> session_user
    UNION ALL SELECT 2, 'application_name', format('bgtask worker %s', p_task.id)
    UNION ALL SELECT 3, 'client_min_messages', 'error'
    UNION ALL SELECT 4, key, value FROM jsonb_each_text(p_task.settings)
    UNION ALL SELECT 5, 'statement_timeout', coalesce(p_task.options ->> 'statement_timeout', '0')
    UNION ALL SELECT 6, 'lock_timeout', coalesce(p_task.options ->> 'lock_timeout', '0')
  ) AS s
$$;

-- A supervisor leaving hands its slot on: it starts the role's queued tasks that now fit (_start_queued). A
-- failure (the role's connection limit, say) is only a warning: what is not started here, the next finishing
-- supervisor or reap() starts.
CREATE OR REPLACE FUNCTION bgtask._hand_on(p_id bigint, p_owner name) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  PERFORM bgtask._start_queued(p_owner);
EXCEPTION WHEN query_canceled OR OTHERS THEN
  RAISE WARNING 'bgtask: the supervisor of task % could not start the queued tasks of role %: %', p_id, p_owner, SQLERRM;
END
$$;

-- The supervisor (see 000001), with fewer round trips and commits before the user's SQL starts: the worker's
-- setup, pid and backend_start are one query (they were two), and the worker's pid is committed with the first
-- step's start (they were two commits). The claim still commits at once, before the worker logs in: it holds the
-- role's lock, which every other submit and supervisor of the role waits for, and a task that waits for a slot
-- must hold no worker (both were measured in the other orders: a burst of 50 submits queued on the lock, and a
-- hand-over held 9 backends for a limit of 4).
CREATE OR REPLACE PROCEDURE bgtask.supervise(p_id bigint, p_token text, p_owner name)
LANGUAGE plpgsql AS $$
DECLARE
  t bgtask.tbl_task;
  v_link text := pg_catalog.format('bgtask_worker_%s', p_id);
  v_start timestamptz;
  v_claim text;
  v_state text := 'done';
  v_error jsonb;
  v_reason text;
  v_res jsonb;
  v_rows bigint;
  v_open boolean;
  v_out jsonb;
  i integer;
  v_worker jsonb;
  e_state text; e_msg text; e_detail text; e_hint text; e_ctx text;
BEGIN
  PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', false);
  PERFORM set_config('client_min_messages', 'error', false);
  PERFORM set_config('client_connection_check_interval', '0', false);
  PERFORM set_config('application_name', format('bgtask supervisor %s', p_id), false);
  -- Before any SET ROLE: a NOLOGIN owner role may not see its login role's backend_start.
  v_start := (SELECT a.backend_start FROM pg_stat_get_activity(pg_backend_pid()) AS a);
  IF p_owner <> session_user THEN
    PERFORM set_config('role', p_owner, false);
  END IF;
  -- Wait for the submitting transaction: it holds this lock until it commits or rolls back.
  PERFORM pg_advisory_lock(1650947169, bgtask._task_key(p_id));
  PERFORM pg_advisory_unlock(1650947169, bgtask._task_key(p_id));
  v_claim := bgtask._claim(p_id, p_token, v_start);
  COMMIT;
  IF v_claim IN ('gone', 'cancelled') THEN
    -- Its submit rolled back, or it was cancelled while queued: while this supervisor was on its way, other
    -- submits of the role counted it as taking a slot and left their tasks queued. Hand the slot on.
    PERFORM bgtask._hand_on(p_id, p_owner);
    COMMIT;
  END IF;
  IF v_claim <> 'run' THEN
    RETURN;
  END IF;
  SELECT * INTO t FROM bgtask.tbl_task WHERE id = p_id;

  BEGIN
    PERFORM bgtask._connect(v_link);
    -- Back to the owner (see _connect): the row updates below go through the owner's row-level security.
    IF p_owner <> session_user AND current_user <> p_owner THEN
      PERFORM set_config('role', p_owner, false);
    END IF;
    v_worker := bgtask._dblink_value(v_link, bgtask._worker_setup_sql(t))::jsonb;
    IF v_worker ->> 'login' IS DISTINCT FROM session_user THEN
      PERFORM bgtask._wrong_login(v_worker ->> 'login');
    END IF;
    UPDATE bgtask.tbl_task SET worker_pid = (v_worker ->> 'pid')::integer, worker_start = (v_worker ->> 'started')::timestamptz
    WHERE id = p_id;
  EXCEPTION WHEN query_canceled OR OTHERS THEN
    GET STACKED DIAGNOSTICS e_state = RETURNED_SQLSTATE, e_msg = MESSAGE_TEXT, e_detail = PG_EXCEPTION_DETAIL,
                            e_hint = PG_EXCEPTION_HINT, e_ctx = PG_EXCEPTION_CONTEXT;
    v_state := CASE WHEN e_state = '57014' THEN 'cancelled' ELSE 'failed' END;
    v_error := bgtask._error_json(e_state, e_msg, e_detail, e_hint, e_ctx, NULL, NULL);
    v_reason := 'could not start the worker connection';
    -- None of its steps ran: say so, rather than leave them pending for good.
    UPDATE bgtask.tbl_task_step SET state = 'skipped' WHERE task_id = p_id AND state = 'pending';
  END;
  -- No COMMIT here: the first step commits its start, and with it the worker's pid.

  IF v_state = 'done' THEN
    FOR i IN 1 .. t.step_count LOOP
      CALL bgtask._run_step(t, i, v_link, v_res);
      v_rows := coalesce(v_rows, 0) + coalesce((v_res ->> 'rows')::bigint, 0);
      CONTINUE WHEN v_res ->> 'state' = 'done';
      IF v_state = 'done' THEN
        v_state := v_res ->> 'state';
        v_error := v_res -> 'error';
      END IF;
      IF v_state = 'cancelled' OR coalesce((t.options ->> 'stop_on_error')::boolean, true)
         OR v_error ->> 'sqlstate' LIKE '08%' OR v_error ->> 'sqlstate' LIKE '57P%' THEN
        UPDATE bgtask.tbl_task_step SET state = 'skipped' WHERE task_id = p_id AND n > i;
        EXIT;
      END IF;
    END LOOP;

    -- A transaction the steps opened and did not close is rolled back, and the task has failed.
    BEGIN
      v_open := bgtask._dblink_value(v_link, 'select pg_catalog.now() OPERATOR(pg_catalog.<>) pg_catalog.statement_timestamp()')::boolean;
    EXCEPTION WHEN in_failed_sql_transaction THEN
      v_open := true;
    WHEN OTHERS THEN
      v_open := false;   -- the worker is gone; nothing is open any more
    END;
    IF v_open THEN
      CALL bgtask._worker_exec(p_id, v_link, 'ROLLBACK', v_out);
      IF v_state = 'done' THEN
        v_state := 'failed';
        v_error := jsonb_build_object('sqlstate', '25001',
          'message', 'the task left a transaction open (BEGIN without COMMIT); it was rolled back',
          'hint', 'End the script with COMMIT, or run each statement as its own step.',
          'step', t.step_count);
      END IF;
    END IF;
  END IF;

  PERFORM bgtask._disconnect(v_link);
  -- A cancel keeps the reason cancel_task wrote (who asked for it).
  UPDATE bgtask.tbl_task AS x
  SET state = v_state, end_time = clock_timestamp(), error = v_error, rows_affected = v_rows,
      exit_reason = coalesce(v_reason, CASE v_state WHEN 'done' THEN 'finished'
                                                    WHEN 'cancelled' THEN coalesce(x.exit_reason, 'cancelled')
                                                    ELSE 'a step failed' END)
  WHERE x.id = p_id;
  COMMIT;
  -- The outcome is committed first: failing to start the role's next task (its connection limit, say) must not
  -- undo it. Whatever is not started here, the next finishing supervisor or reap() starts.
  PERFORM bgtask._hand_on(p_id, p_owner);
  COMMIT;
END
$$;

-- Starts the role's oldest queued tasks while it has free slots (see 000001), those submitted by this login only:
-- a task logs in with its submitter's credentials, which no other login has (members of a shared NOLOGIN owner
-- role each start their own; reap() starts them for the roles a login may act as). It returns at once when the
-- role has no task waiting, which is what nearly every ending supervisor finds: counting the free slots first
-- cost a fresh supervisor backend about 4 ms of CPU (the first call plans the count against pg_stat_activity
-- and pg_locks), a sixth of all it spent on a short task.
CREATE OR REPLACE FUNCTION bgtask._start_queued(p_owner name) RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_slots record;
  v_started integer := 0;
  q record;
BEGIN
  IF p_owner <> current_user THEN
    RETURN 0;
  END IF;
  -- The lock first: a submit whose commit-time check found no slot holds it until its commit is visible, and its
  -- task must be seen here (checked before the lock, such a task could stay queued with nobody to start it).
  PERFORM pg_advisory_xact_lock(1650947170, hashtext(current_user));
  IF NOT EXISTS (SELECT FROM bgtask.tbl_task
                 WHERE owner = p_owner AND state = 'queued' AND NOT cancel_requested AND login_role = session_user) THEN
    RETURN 0;
  END IF;
  v_slots := bgtask._free_slots(p_owner);
  FOR q IN SELECT id, token FROM bgtask.tbl_task
           WHERE owner = p_owner AND state = 'queued' AND NOT cancel_requested AND login_role = session_user
             AND id <> ALL (v_slots.pending)
           ORDER BY id LIMIT greatest(v_slots.free, 0) LOOP
    PERFORM bgtask._launch(q.id, q.token, p_owner);
    v_started := v_started + 1;
  END LOOP;
  RETURN v_started;
END
$$;

-- Is this backend still the one that was recorded? (see 000001: true, false = gone or another backend has the
-- pid now, NULL = unknown.) A reader's row and the backend list are read at different moments: a listing could
-- see a task still running and then find its supervisor gone, because in between it recorded the outcome and
-- exited — and showed the task as lost (seen on 15 once the supervisor left sooner). Before answering false,
-- the row is read again (this function is VOLATILE, so that read sees what has been committed since): if no
-- task records that backend as running any more, it ended properly, and the answer is NULL.
CREATE OR REPLACE FUNCTION bgtask._backend_alive(p_pid integer, p_start timestamptz) RETURNS boolean
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_found boolean := false;
  v_start timestamptz;
BEGIN
  IF p_pid IS NULL THEN
    RETURN false;
  END IF;
  SELECT true, a.backend_start INTO v_found, v_start FROM pg_stat_get_activity(p_pid) AS a;
  IF v_found AND v_start IS NULL THEN
    RETURN NULL;
  ELSIF v_found AND v_start = p_start THEN
    RETURN true;
  END IF;
  IF NOT EXISTS (SELECT FROM bgtask.tbl_task
                 WHERE state = 'running' AND supervisor_pid = p_pid AND supervisor_start IS NOT DISTINCT FROM p_start) THEN
    RETURN NULL;
  END IF;
  RETURN false;
END
$$;

-- Marks running tasks whose supervisor is gone as lost and stops their orphaned workers (see 000001); then starts
-- the queued tasks this login submitted, for the current role and for every other role it may act as (SET ROLE
-- to a NOLOGIN owner): only this login can start them, and the extension calls reap() once a minute, so a task
-- of a shared owner role that waited behind another login's tasks starts within a minute of a free slot.
CREATE OR REPLACE FUNCTION bgtask.reap() RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  t bgtask.tbl_task;
  v_lost integer := 0;
  v_role text := current_setting('role');
  r record;
BEGIN
  FOR t IN SELECT * FROM bgtask.tbl_task WHERE state = 'running' ORDER BY id FOR UPDATE SKIP LOCKED LOOP
    CONTINUE WHEN bgtask._backend_alive(t.supervisor_pid, t.supervisor_start) IS NOT false;
    PERFORM bgtask._signal_backend(t, 'worker', true);
    UPDATE bgtask.tbl_task
    SET state = 'lost', end_time = clock_timestamp(),
        exit_reason = format('the supervisor backend (pid %s) is gone: terminated, crashed or the server restarted', t.supervisor_pid)
    WHERE id = t.id;
    UPDATE bgtask.tbl_task_step SET state = CASE WHEN state = 'running' THEN 'failed' ELSE 'skipped' END
    WHERE task_id = t.id AND state IN ('pending', 'running');
    v_lost := v_lost + 1;
  END LOOP;
  IF pg_is_in_recovery() OR current_setting('transaction_read_only')::boolean THEN
    RETURN v_lost;
  END IF;
  -- A start that fails (the role's connection limit, say) is a warning: the lost tasks are recorded all the same.
  BEGIN
    PERFORM bgtask._start_queued(current_user);
  EXCEPTION WHEN OTHERS THEN
    RAISE WARNING 'bgtask: could not start the queued tasks of role %: %', current_user, SQLERRM;
  END;
  FOR r IN SELECT g.rolname FROM pg_roles g
           WHERE g.rolname <> current_user
             AND pg_has_role(session_user, g.oid, 'MEMBER') AND pg_has_role(g.oid, 'bgtask_user', 'MEMBER')
           ORDER BY g.rolname LOOP
    BEGIN
      PERFORM set_config('role', r.rolname, true);
      IF EXISTS (SELECT FROM bgtask.tbl_task WHERE owner = current_user AND state = 'queued' AND login_role = session_user) THEN
        PERFORM bgtask._start_queued(current_user);
      END IF;
    EXCEPTION WHEN query_canceled THEN
      RAISE;
    WHEN OTHERS THEN
      NULL;   -- a role it is a member of but may not SET (PostgreSQL 16+: WITH SET FALSE), or one that cannot start now
    END;
  END LOOP;
  PERFORM set_config('role', v_role, true);
  RETURN v_lost;
END
$$;

-- Who may write what. 000001 granted bgtask_user every column; a role writes only its own rows (row-level
-- security), but the members of a shared NOLOGIN owner role all write that role's rows, and bgtask_admin every
-- row. A task runs under the login that submitted it (_claim), so what it runs is fixed once submitted: its SQL,
-- steps, settings, options and login cannot be changed, its steps not deleted (purge's cascade runs as the
-- tables' owner), and a task that has left the queue cannot be put back in it — otherwise another member of
-- the owner role, or an admin, could make a login run SQL it did not submit, run a task again, or run it without
-- one of its steps. The engine itself writes only the columns granted here. No policy or constraint is added to
-- the tables (ALTER TABLE would lock them against running supervisors): column privileges, and one trigger,
-- created only if missing.
REVOKE INSERT, UPDATE ON bgtask.tbl_task, bgtask.tbl_task_step FROM bgtask_user;
REVOKE DELETE ON bgtask.tbl_task_step FROM bgtask_user;
-- login_role takes its default, session_user.
GRANT INSERT (owner, info, sql, client_info, settings, options, step_count, token) ON bgtask.tbl_task TO bgtask_user;
-- login_role only to the value it has (the trigger): version 1's _claim, in a supervisor that was inside it while
-- this file was applied, still writes it.
GRANT UPDATE (state, start_time, end_time, step_current, supervisor_pid, supervisor_start, worker_pid, worker_start,
              error, rows_affected, cancel_requested, exit_reason, login_role) ON bgtask.tbl_task TO bgtask_user;
GRANT INSERT (task_id, n, owner, sql, returns_rows) ON bgtask.tbl_task_step TO bgtask_user;
GRANT UPDATE (state, start_time, end_time, command_tag, rows_affected, error, capture, result_table, result_rows,
              result_stored) ON bgtask.tbl_task_step TO bgtask_user;

CREATE OR REPLACE FUNCTION bgtask._guard_task() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF NEW.login_role IS DISTINCT FROM OLD.login_role THEN
    RAISE EXCEPTION 'the login that submitted task % cannot be changed', OLD.id
      USING ERRCODE = 'insufficient_privilege', HINT = 'A task runs only under the login that submitted it.';
  END IF;
  RAISE EXCEPTION 'task % has left the queue (%) and cannot be queued again', OLD.id, OLD.state
    USING ERRCODE = 'insufficient_privilege', HINT = 'Submit its SQL again (Re-run in VS Code): that is a new task.';
END
$$;
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_trigger WHERE tgrelid = 'bgtask.tbl_task'::regclass AND tgname = 'tbl_task_guard') THEN
    CREATE TRIGGER tbl_task_guard BEFORE UPDATE OF state, login_role ON bgtask.tbl_task
      FOR EACH ROW WHEN (NEW.login_role IS DISTINCT FROM OLD.login_role OR (NEW.state = 'queued' AND OLD.state <> 'queued'))
      EXECUTE FUNCTION bgtask._guard_task();
  END IF;
END
$$;

-- As 000001: nothing here is PUBLIC but version(); members of bgtask_user may call everything.
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA bgtask FROM PUBLIC;
REVOKE ALL ON ALL PROCEDURES IN SCHEMA bgtask FROM PUBLIC;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA bgtask TO bgtask_user;
GRANT EXECUTE ON ALL PROCEDURES IN SCHEMA bgtask TO bgtask_user;
GRANT EXECUTE ON FUNCTION bgtask.version() TO PUBLIC;

COMMIT;
