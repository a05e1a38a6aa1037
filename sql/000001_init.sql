-- bgtask 000001: background tasks run by a supervisor backend that drives a worker backend over dblink.
--
-- Apply as a superuser (or the managed service's admin role) with plain psql:
--   psql -v ON_ERROR_STOP=1 -d yourdb -f sql/000001_init.sql
-- Applying it twice is harmless: every statement is idempotent, and the file refuses to run over a newer schema.
-- Architecture, rules and verified facts: DESIGN.md (sections 2, 3 and 8). The short version:
--   run_task() inserts the task row in the caller's transaction and, when the role has a free slot, sends
--   `CALL bgtask.supervise(...)` on a new loopback dblink connection, then drops that link (a task that must wait
--   is started by the role's next ending supervisor, or at COMMIT if a slot freed up meanwhile). The supervisor
--   backend waits for the caller's commit (an advisory lock), runs each step on a second backend (the worker)
--   with dblink_send_query, polls it with naps and COMMITs between naps, and records every state change in
--   committed rows. A task's outcome is therefore
--   recorded whatever its SQL does; only the death of the supervisor itself leaves a row `running`, and reap()
--   detects that by comparing (pid, backend_start) with pg_stat_activity.

BEGIN;
-- One installer at a time; the key is the text 'bgtask' read as an integer, shared with the TypeScript installer.
DO $$ BEGIN PERFORM pg_catalog.pg_advisory_xact_lock(1650947169, 0); END $$;
SET LOCAL search_path = pg_catalog, pg_temp;
SET LOCAL client_min_messages = warning;

DO $$
BEGIN
  IF pg_catalog.current_setting('server_version_num')::int < 140000 THEN
    RAISE EXCEPTION 'bgtask needs PostgreSQL 14 or newer (this server is %)', pg_catalog.current_setting('server_version');
  END IF;
  IF NOT EXISTS (SELECT FROM pg_catalog.pg_extension WHERE extname = 'dblink') THEN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_available_extensions WHERE name = 'dblink') THEN
      RAISE EXCEPTION 'the dblink extension is not available on this server'
        USING HINT = 'Install the PostgreSQL contrib package (Debian: postgresql-contrib); managed services (RDS, Cloud SQL, Azure) ship dblink but may need it allow-listed (Azure: azure.extensions).';
    END IF;
    CREATE EXTENSION dblink SCHEMA public;
  END IF;
END
$$;

CREATE SCHEMA IF NOT EXISTS bgtask;
COMMENT ON SCHEMA bgtask IS 'PG Background Tasks: run long SQL as background tasks (see bgtask.run_task)';
CREATE SCHEMA IF NOT EXISTS bgtask_result;
COMMENT ON SCHEMA bgtask_result IS 'PG Background Tasks: rows collected from tasks, one table per step that returned rows';

-- The dblink calls of the engine, schema-qualified. dblink may live in any schema (often public, which any role
-- may create in on PostgreSQL 14 and wherever a DBA granted it), so its schema must never be on a pinned
-- search_path: a role that can create there plants an overload that wins against a pg_catalog function needing
-- a cast (public.cardinality(bigint[]) beats pg_catalog.cardinality(anyarray)) and it runs with the rights of
-- whoever calls bgtask — verified: as the superuser, during purge(). Every other function pins
-- search_path = pg_catalog, pg_temp and calls dblink only through these, which name dblink's schema, as found
-- now. Re-applying this file re-creates them (after dblink was dropped and created in another schema too).
-- Record-returning dblink functions need a column list, so the wrappers return text: a step's command status
-- (_dblink_get_result) or the one value of a one-row query (_dblink_value; several values travel as json).
DO $$
DECLARE
  s name := (SELECT n.nspname FROM pg_catalog.pg_extension e JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) e.extnamespace
             WHERE e.extname OPERATOR(pg_catalog.=) 'dblink');
  w text[];
BEGIN
  FOREACH w SLICE 1 IN ARRAY ARRAY[
    ['_dblink_connect(p_link text, p_server text)', 'text', 'SELECT %I.dblink_connect($1, $2)'],
    ['_dblink_disconnect(p_link text)', 'text', 'SELECT %I.dblink_disconnect($1)'],
    ['_dblink_get_connections()', 'text[]', 'SELECT %I.dblink_get_connections()'],
    ['_dblink_send_query(p_link text, p_sql text)', 'integer', 'SELECT %I.dblink_send_query($1, $2)'],
    ['_dblink_is_busy(p_link text)', 'integer', 'SELECT %I.dblink_is_busy($1)'],
    ['_dblink_cancel_query(p_link text)', 'text', 'SELECT %I.dblink_cancel_query($1)'],
    ['_dblink_error_message(p_link text)', 'text', 'SELECT %I.dblink_error_message($1)'],
    ['_dblink_get_result(p_link text, p_fail boolean)', 'SETOF text', 'SELECT status FROM %I.dblink_get_result($1, $2) AS t(status text)'],
    ['_dblink_value(p_link text, p_sql text)', 'text', 'SELECT v FROM %I.dblink($1, $2) AS t(v text)']] LOOP
    EXECUTE pg_catalog.format('CREATE OR REPLACE FUNCTION bgtask.%s RETURNS %s LANGUAGE sql SET search_path = pg_catalog, pg_temp AS %L',
                              w[1], w[2], pg_catalog.format(w[3], s));
  END LOOP;
END
$$;

CREATE TABLE IF NOT EXISTS bgtask.schema_version (
  version    integer PRIMARY KEY,
  name       text NOT NULL,
  applied_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
  applied_by name NOT NULL DEFAULT current_user
);

DO $$
DECLARE v integer := (SELECT max(version) FROM bgtask.schema_version);
BEGIN
  IF v > 1 THEN
    RAISE EXCEPTION 'the bgtask schema is already at version %, newer than 000001_init.sql', v
      USING HINT = 'Apply only the files in sql/ numbered above the installed version.';
  END IF;
END
$$;
INSERT INTO bgtask.schema_version (version, name) VALUES (1, '000001_init') ON CONFLICT (version) DO NOTHING;

-- Roles: members of bgtask_user may submit; bgtask_admin sees and cancels every role's tasks.
DO $$
BEGIN
  -- Roles are cluster-wide, but this file's lock is per database: a first install into two databases at once
  -- may both find no role, and one CREATE ROLE then fails (unique_violation on pg_authid): the role exists, go on.
  IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'bgtask_user') THEN
    BEGIN
      CREATE ROLE bgtask_user NOLOGIN;
    EXCEPTION WHEN duplicate_object OR unique_violation THEN
      NULL;
    END;
  END IF;
  IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'bgtask_admin') THEN
    BEGIN
      CREATE ROLE bgtask_admin NOLOGIN;
    EXCEPTION WHEN duplicate_object OR unique_violation THEN
      NULL;
    END;
  END IF;
  -- To see other roles' backend_start and to stop their orphaned workers, an admin needs these two; both are
  -- powerful (README, "Roles"). A managed service's admin role may not be allowed to grant them: say so, go on.
  BEGIN
    GRANT pg_read_all_stats, pg_signal_backend TO bgtask_admin;
  EXCEPTION WHEN insufficient_privilege THEN
    RAISE WARNING 'could not grant pg_read_all_stats and pg_signal_backend to bgtask_admin: %', SQLERRM;
  END;
END
$$;
GRANT bgtask_user TO bgtask_admin;

CREATE TABLE IF NOT EXISTS bgtask.settings (
  setting     text PRIMARY KEY,
  value       text NOT NULL,
  description text
);
INSERT INTO bgtask.settings (setting, value, description) VALUES
  ('max_running_per_role', '4', 'tasks of one role that run at once; each holds two backends, the rest wait as queued'),
  ('retention', '30 days', 'default age for bgtask.purge() when called without an argument')
ON CONFLICT (setting) DO NOTHING;

CREATE TABLE IF NOT EXISTS bgtask.role_settings (
  role_name   name PRIMARY KEY,
  max_running integer NOT NULL CHECK (max_running >= 1)
);
COMMENT ON TABLE bgtask.role_settings IS 'per-role override of the max_running_per_role setting';

CREATE TABLE IF NOT EXISTS bgtask.tbl_task (
  id               bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
  owner            name NOT NULL DEFAULT current_user,
  login_role       name NOT NULL DEFAULT session_user,
  info             text,
  sql              text NOT NULL,
  client_info      jsonb NOT NULL DEFAULT '{}',
  settings         jsonb NOT NULL DEFAULT '{}',
  options          jsonb NOT NULL DEFAULT '{}',
  state            text NOT NULL DEFAULT 'queued'
                   CHECK (state IN ('queued', 'running', 'done', 'failed', 'cancelled', 'lost')),
  submitted_at     timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
  start_time       timestamptz,
  end_time         timestamptz,
  step_count       integer NOT NULL CHECK (step_count >= 1),
  step_current     integer,
  supervisor_pid   integer,
  supervisor_start timestamptz,
  worker_pid       integer,
  worker_start     timestamptz,
  error            jsonb,
  rows_affected    bigint,
  cancel_requested boolean NOT NULL DEFAULT false,
  exit_reason      text,
  token            text NOT NULL
);
COMMENT ON TABLE bgtask.tbl_task IS 'one row per background task; written by bgtask.run_task and the task''s supervisor';
COMMENT ON COLUMN bgtask.tbl_task.token IS 'random; the supervisor runs only the row that carries it, so a clone of the database never runs another task with the same id';
CREATE INDEX IF NOT EXISTS tbl_task_owner_id ON bgtask.tbl_task (owner, id DESC);
CREATE INDEX IF NOT EXISTS tbl_task_active ON bgtask.tbl_task (owner, id) WHERE state IN ('queued', 'running');

CREATE TABLE IF NOT EXISTS bgtask.tbl_task_step (
  task_id        bigint NOT NULL REFERENCES bgtask.tbl_task (id) ON DELETE CASCADE,
  n              integer NOT NULL,
  owner          name NOT NULL DEFAULT current_user,
  sql            text NOT NULL,
  returns_rows   boolean,
  state          text NOT NULL DEFAULT 'pending'
                 CHECK (state IN ('pending', 'running', 'done', 'failed', 'cancelled', 'skipped')),
  start_time     timestamptz,
  end_time       timestamptz,
  command_tag    text,
  rows_affected  bigint,
  error          jsonb,
  capture        text,
  result_table   text,
  result_rows    bigint,
  result_stored  bigint,
  PRIMARY KEY (task_id, n)
);
COMMENT ON COLUMN bgtask.tbl_task_step.returns_rows IS 'from the client''s parser when it knows; NULL lets the worker find out';
COMMENT ON COLUMN bgtask.tbl_task_step.capture IS 'how rows were collected: table, explain, none, or why not';
COMMENT ON COLUMN bgtask.tbl_task_step.result_table IS 'name of the table in schema bgtask_result: task_<task_id>_<n>_<random suffix>';

-- Row-level security: a role sees and writes its own rows only; bgtask_admin sees, cancels and purges all.
-- The supervisor runs as the task's owner and writes the row under the same policy (no SECURITY DEFINER).
ALTER TABLE bgtask.tbl_task ENABLE ROW LEVEL SECURITY;
ALTER TABLE bgtask.tbl_task_step ENABLE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS task_owner ON bgtask.tbl_task;
CREATE POLICY task_owner ON bgtask.tbl_task
  USING (owner = current_user) WITH CHECK (owner = current_user);
DROP POLICY IF EXISTS task_admin ON bgtask.tbl_task;
CREATE POLICY task_admin ON bgtask.tbl_task
  USING (pg_catalog.pg_has_role(current_user, 'bgtask_admin', 'MEMBER'));
DROP POLICY IF EXISTS step_owner ON bgtask.tbl_task_step;
CREATE POLICY step_owner ON bgtask.tbl_task_step
  USING (owner = current_user) WITH CHECK (owner = current_user);
DROP POLICY IF EXISTS step_admin ON bgtask.tbl_task_step;
-- For every command, like task_admin: an admin who cancels a queued task marks its steps skipped.
CREATE POLICY step_admin ON bgtask.tbl_task_step
  USING (pg_catalog.pg_has_role(current_user, 'bgtask_admin', 'MEMBER'));

REVOKE ALL ON ALL TABLES IN SCHEMA bgtask FROM PUBLIC;
REVOKE ALL ON SCHEMA bgtask, bgtask_result FROM PUBLIC;
GRANT USAGE ON SCHEMA bgtask TO bgtask_user;
GRANT USAGE, CREATE ON SCHEMA bgtask_result TO bgtask_user;
GRANT SELECT ON bgtask.schema_version, bgtask.settings, bgtask.role_settings TO bgtask_user;
GRANT SELECT, INSERT, UPDATE, DELETE ON bgtask.tbl_task, bgtask.tbl_task_step TO bgtask_user;
GRANT USAGE ON SEQUENCE bgtask.tbl_task_id_seq TO bgtask_user;

-- Every state change is announced on channel bgtask as '<id>:<state>'. Any role may LISTEN, so the payload
-- carries nothing else: clients re-read the row through row-level security.
CREATE OR REPLACE FUNCTION bgtask._notify() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  PERFORM pg_notify('bgtask', NEW.id || ':' || NEW.state);
  RETURN NULL;
END
$$;
DROP TRIGGER IF EXISTS tbl_task_notify_insert ON bgtask.tbl_task;
CREATE TRIGGER tbl_task_notify_insert AFTER INSERT ON bgtask.tbl_task
  FOR EACH ROW EXECUTE FUNCTION bgtask._notify();
DROP TRIGGER IF EXISTS tbl_task_notify_update ON bgtask.tbl_task;
CREATE TRIGGER tbl_task_notify_update AFTER UPDATE OF state ON bgtask.tbl_task
  FOR EACH ROW WHEN (OLD.state IS DISTINCT FROM NEW.state) EXECUTE FUNCTION bgtask._notify();

-- The loopback server: the connection the server opens to itself. Its options switch off every timeout a role
-- or database may set (a role-level statement_timeout kills the supervisor's CALL even if the procedure resets
-- it; a lock_timeout cancels its wait for the submitter's commit: DESIGN.md §8). Built from the server version
-- because an unknown setting there makes every connection fail.
CREATE OR REPLACE FUNCTION bgtask._loopback_options() RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT '-c statement_timeout=0 -c lock_timeout=0 -c idle_in_transaction_session_timeout=0'
      || ' -c idle_session_timeout=0 -c client_connection_check_interval=0'
      || ' -c default_transaction_read_only=off -c default_transaction_isolation=read\ committed'
      || CASE WHEN current_setting('server_version_num')::int >= 170000 THEN ' -c transaction_timeout=0' ELSE '' END
$$;

DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_catalog.pg_foreign_server WHERE srvname = 'bgtask_loopback') THEN
    EXECUTE format('CREATE SERVER bgtask_loopback FOREIGN DATA WRAPPER dblink_fdw OPTIONS (host %L, port %L, dbname %L, options %L)',
                   '127.0.0.1', current_setting('port'), current_database(), bgtask._loopback_options());
  END IF;
END
$$;
GRANT USAGE ON FOREIGN SERVER bgtask_loopback TO bgtask_user;

-- Points the loopback server at this database and port again: after CREATE DATABASE … TEMPLATE, a rename, a
-- restore under another name or a port change. Run by its owner (the installing superuser or admin role).
CREATE OR REPLACE FUNCTION bgtask.repair_loopback() RETURNS text
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  EXECUTE format('ALTER SERVER bgtask_loopback OPTIONS (SET host %L, SET port %L, SET dbname %L, SET options %L)',
                 '127.0.0.1', current_setting('port'), current_database(), bgtask._loopback_options());
  RETURN format('bgtask_loopback now points at 127.0.0.1 port %s database %s', current_setting('port'), current_database());
END
$$;

-- Installed version, for clients that check compatibility.
CREATE OR REPLACE FUNCTION bgtask.version() RETURNS integer
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT max(version) FROM bgtask.schema_version
$$;

CREATE OR REPLACE FUNCTION bgtask._setting(p_setting text) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT value FROM bgtask.settings WHERE setting = p_setting
$$;

CREATE OR REPLACE FUNCTION bgtask._max_running(p_role name) RETURNS integer
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT coalesce((SELECT max_running FROM bgtask.role_settings WHERE role_name = p_role),
                  bgtask._setting('max_running_per_role')::integer, 4)
$$;

-- Advisory lock keys. The two-key form with a constant class keeps them apart from the application's own.
CREATE OR REPLACE FUNCTION bgtask._task_key(p_id bigint) RETURNS integer
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$ SELECT (p_id % 2147483647)::integer $$;

-- Is this backend still the one that was recorded? true: same pid and backend_start; false: gone or another
-- backend has the pid now; NULL: there is a backend with that pid but we may not see its backend_start (another
-- role's backend without pg_read_all_stats) — unknown, which callers must never treat as gone.
CREATE OR REPLACE FUNCTION bgtask._backend_alive(p_pid integer, p_start timestamptz) RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT CASE WHEN p_pid IS NULL THEN false
              WHEN a.pid IS NULL THEN false
              WHEN a.backend_start IS NULL THEN NULL
              ELSE a.backend_start = p_start END
  FROM (SELECT 1) one
  LEFT JOIN pg_stat_activity a ON a.pid = p_pid
$$;

-- Signals a task's backend only if it is provably that backend: same pid, same backend_start, the
-- application_name the supervisor gave it, and logged in as a role that may act as the task's owner. A row's
-- pid columns are writable by their owner, so they are never trusted on their own (DESIGN.md §3).
CREATE OR REPLACE FUNCTION bgtask._signal_backend(p_task bgtask.tbl_task, p_which text, p_terminate boolean)
RETURNS boolean
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_pid integer := CASE p_which WHEN 'worker' THEN p_task.worker_pid ELSE p_task.supervisor_pid END;
  v_start timestamptz := CASE p_which WHEN 'worker' THEN p_task.worker_start ELSE p_task.supervisor_start END;
  v_ok boolean;
BEGIN
  SELECT true INTO v_ok
  FROM pg_stat_activity a
  WHERE a.pid = v_pid AND a.backend_start = v_start
    AND a.application_name = format('bgtask %s %s', p_which, p_task.id)
    AND a.usename = p_task.login_role
    AND pg_has_role(p_task.login_role, p_task.owner, 'MEMBER');
  IF v_ok IS NULL THEN
    RETURN false;
  END IF;
  IF p_terminate THEN
    RETURN pg_terminate_backend(v_pid);
  END IF;
  RETURN pg_cancel_backend(v_pid);
EXCEPTION WHEN insufficient_privilege THEN
  RETURN false;
END
$$;

-- Opens a loopback dblink connection named p_link with the session user's user mapping, whatever role is
-- current: after SET ROLE to a NOLOGIN owner role the mapping that can log in is the session user's
-- (DESIGN.md §3, identity). The role is put back before returning: a SET LOCAL inside a function is undone at
-- its end only for the settings in the function's own SET clause (search_path here), not for role — it used to
-- last until the caller's transaction ended, so after `SET ROLE app_owner; SELECT bgtask.run_task(…)` the rest of
-- that transaction ran as the login role (verified), and the supervisor of an app_owner task recorded no worker
-- pid (its UPDATE ran as the login role, whom row-level security shows no app_owner row). On an error the
-- caller's transaction or subtransaction ends and undoes it. Failures become errors that say what to run.
CREATE OR REPLACE FUNCTION bgtask._connect(p_link text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_detail text;
  v_role text := current_setting('role');
BEGIN
  IF NOT EXISTS (SELECT FROM pg_extension WHERE extname = 'dblink') THEN
    RAISE EXCEPTION 'the dblink extension is not installed in database %', current_database()
      USING ERRCODE = 'undefined_function',
            HINT = 'A superuser (or the service''s admin role) should run: CREATE EXTENSION dblink;';
  END IF;
  IF NOT EXISTS (SELECT FROM pg_foreign_server WHERE srvname = 'bgtask_loopback') THEN
    RAISE EXCEPTION 'the foreign server bgtask_loopback is missing'
      USING ERRCODE = 'undefined_object',
            HINT = 'Re-apply the bgtask schema (sql/000001_init.sql) as a superuser.';
  END IF;
  IF current_user <> session_user THEN
    PERFORM set_config('role', 'none', true);
  END IF;
  IF NOT EXISTS (SELECT FROM pg_user_mappings WHERE srvname = 'bgtask_loopback' AND usename IN (session_user, 'public')) THEN
    RAISE EXCEPTION 'role % has no password stored for background tasks in database %', session_user, current_database()
      USING ERRCODE = 'invalid_authorization_specification',
            HINT = format('Connected as %s, run: select bgtask.set_password(''…'') — or use "Set Password" in VS Code. '
                          'In psql, keep the password out of your history: \prompt ''Password: '' pw  then  select bgtask.set_password(:''pw'');', session_user);
  END IF;
  BEGIN
    PERFORM bgtask._dblink_connect(p_link, 'bgtask_loopback');
  EXCEPTION WHEN sqlclient_unable_to_establish_sqlconnection OR invalid_authorization_specification
                 OR invalid_password OR insufficient_privilege OR fdw_error OR duplicate_object THEN
    GET STACKED DIAGNOSTICS v_detail = PG_EXCEPTION_DETAIL;
    IF v_detail ILIKE '%password authentication failed%' THEN
      RAISE EXCEPTION 'the password stored for role % was refused by the server', session_user
        USING ERRCODE = 'invalid_password', DETAIL = v_detail,
              HINT = 'The role''s password changed since it was stored: run select bgtask.set_password(''…'') again.';
    ELSIF SQLERRM ILIKE '%password is required%' OR v_detail ILIKE '%password is required%'
          OR SQLERRM ILIKE '%password%not%request%' THEN
      RAISE EXCEPTION 'the server let the loopback connection in without asking for a password, which dblink refuses for ordinary roles'
        USING ERRCODE = 'insufficient_privilege', DETAIL = coalesce(v_detail, SQLERRM),
              HINT = 'Make pg_hba.conf require scram-sha-256 (or md5) for host 127.0.0.1 and this database, then reload.';
    END IF;
    RAISE EXCEPTION 'could not open the loopback connection for background tasks: %', SQLERRM
      USING ERRCODE = 'sqlclient_unable_to_establish_sqlconnection', DETAIL = coalesce(v_detail, ''),
            HINT = 'Check that the server accepts connections on 127.0.0.1 (listen_addresses), port and database of server bgtask_loopback (select bgtask.repair_loopback() re-points it).';
  END;
  IF v_role <> 'none' AND current_setting('role') IS DISTINCT FROM v_role THEN
    PERFORM set_config('role', v_role, true);
  END IF;
END
$$;

-- Closes a link if it is open; never raises, because it runs on error paths.
CREATE OR REPLACE FUNCTION bgtask._disconnect(p_link text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF p_link = ANY (coalesce(bgtask._dblink_get_connections(), '{}')) THEN
    PERFORM bgtask._dblink_disconnect(p_link);
  END IF;
EXCEPTION WHEN OTHERS THEN
  -- Nothing left to do: the connection is gone either way, and the caller is already handling an error.
  RAISE WARNING 'bgtask: could not close dblink connection %: %', p_link, SQLERRM;
END
$$;

-- Starts a supervisor backend for a task: connect, check the link reaches this very database, send the CALL,
-- drop the link at once (the supervisor never writes to its client until it ends, so it survives that).
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
    -- Sent to a fresh session that has the role's own search_path (ALTER ROLE … SET search_path, which a role
    -- may set for itself): every name in it is qualified, as in everything sent over a loopback link.
    -- The same query names the backend: from now on _free_slots sees that this task's supervisor is coming, also
    -- before the submit commits (by the name and the owner at the end of this query and of the CALL).
    r := bgtask._dblink_value(v_link, format(
      'select pg_catalog.json_build_object(''db'', pg_catalog.current_database(), ''port'', pg_catalog.current_setting(''port''),
                                           ''started'', pg_catalog.pg_postmaster_start_time(),
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
    PERFORM bgtask._dblink_send_query(v_link, format('CALL bgtask.supervise(%s, %L, %L)', p_id, p_token, p_owner));
    PERFORM bgtask._dblink_disconnect(v_link);
  EXCEPTION WHEN query_canceled OR OTHERS THEN
    -- A named dblink connection survives ROLLBACK: close it on every failure path.
    PERFORM bgtask._disconnect(v_link);
    RAISE;
  END;
END
$$;

-- The caller's settings that the worker applies before the first step, so a task sees the session it was
-- submitted from (schema search path, memory, time zone, formats). It has no SET clause, on purpose: a function's
-- `SET search_path` would be the search_path it reads. It runs under the caller's own search_path, so every name
-- in it is qualified; it is called only from run_task, which has no SET clause either.
CREATE OR REPLACE FUNCTION bgtask._caller_settings() RETURNS jsonb
LANGUAGE sql STABLE AS $$
  SELECT pg_catalog.jsonb_object_agg(s.name, pg_catalog.current_setting(s.name))
  FROM pg_catalog.unnest(ARRAY['search_path', 'work_mem', 'maintenance_work_mem', 'temp_buffers', 'TimeZone', 'DateStyle',
                               'IntervalStyle', 'extra_float_digits', 'max_parallel_workers_per_gather',
                               'max_parallel_maintenance_workers']::text[]) AS s(name)
$$;

-- Is there nothing for the server to run: only whitespace, semicolons and comments, read as PostgreSQL's lexer
-- reads them? A text of only `;` (or only a nested comment) used to pass and reach the worker, whose empty-query
-- answer dblink reports as "could not obtain message string for remote error" (08006): a confusing failed task
-- instead of the clear "no SQL to run". Block comments nest (/* a /* b */ c */ is one comment); an unterminated
-- one is not blank, so the server reports it as the syntax error it is.
CREATE OR REPLACE FUNCTION bgtask._is_blank(p_sql text) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  b bytea;
  n integer;
  i integer := 0;
  d integer;
BEGIN
  IF p_sql IS NULL THEN
    RETURN true;
  END IF;
  IF strpos(p_sql, '/*') = 0 THEN
    -- No block comment: one pass of the regex engine, also for megabytes of SQL.
    RETURN regexp_replace(p_sql, '[ \t\n\r\f\v;]+|--[^\n\r]*', '', 'g') = '';
  END IF;
  -- Block comments: scan the bytes (the characters that matter are ASCII in every server encoding) and stop at
  -- the first one that is not blank, so a real statement costs a few bytes however long it is.
  b := convert_to(p_sql, 'UTF8');
  n := length(b);
  WHILE i < n LOOP
    IF get_byte(b, i) IN (32, 9, 10, 11, 12, 13, 59) THEN
      i := i + 1;
    ELSIF get_byte(b, i) = 45 AND i + 1 < n AND get_byte(b, i + 1) = 45 THEN
      i := i + 2;
      WHILE i < n AND get_byte(b, i) NOT IN (10, 13) LOOP
        i := i + 1;
      END LOOP;
    ELSIF get_byte(b, i) = 47 AND i + 1 < n AND get_byte(b, i + 1) = 42 THEN
      d := 1;
      i := i + 2;
      WHILE d > 0 LOOP
        IF i + 1 >= n THEN
          RETURN false;
        ELSIF get_byte(b, i) = 47 AND get_byte(b, i + 1) = 42 THEN
          d := d + 1;
          i := i + 2;
        ELSIF get_byte(b, i) = 42 AND get_byte(b, i + 1) = 47 THEN
          d := d - 1;
          i := i + 2;
        ELSE
          i := i + 1;
        END IF;
      END LOOP;
    ELSE
      RETURN false;
    END IF;
  END LOOP;
  RETURN true;
END
$$;

-- An earlier draft took no p_settings (and so read its own pinned search_path as the caller's).
DROP FUNCTION IF EXISTS bgtask._submit(text[], text, jsonb, text);
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

  INSERT INTO bgtask.tbl_task (owner, login_role, info, sql, client_info, settings, options, step_count, token)
  VALUES (current_user, session_user, p_info, p_sql,
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
  -- Launch now only if the role has a free slot: a supervisor started for a task that must wait would log in
  -- only to find no slot and leave (a burst of submits over the limit made one such backend each). A task that
  -- waits is started by the supervisor of the role that ends next, or — should a slot free up before this
  -- transaction commits, which no ending supervisor could see — by the commit-time check (_launch_at_commit).
  -- When it launches now, the connection is tried here, so a missing password or a cloned database fails this
  -- call with what to run.
  -- One decision at a time per owner, with the key _claim, _start_queued and _launch_at_commit take for theirs:
  -- concurrent submits counted the same free slots in the few milliseconds before either had named its supervisor.
  -- A session-level lock, released at once (a transaction-level one would hold every other submit and supervisor
  -- of the role until this caller commits, which may be much later).
  v_key := hashtext(current_user);
  PERFORM pg_advisory_lock(1650947170, v_key);
  BEGIN
    IF (bgtask._free_slots(v_owner)).free > 0 THEN
      PERFORM bgtask._launch(v_id, v_token, v_owner);
    END IF;
  EXCEPTION WHEN query_canceled OR OTHERS THEN
    PERFORM pg_advisory_unlock(1650947170, v_key);
    RAISE;
  END;
  PERFORM pg_advisory_unlock(1650947170, v_key);
  RETURN v_id;
END
$$;

-- The recipe's call, compatible for psql users: the whole string is one step, sent as one query.
-- The two run_task functions have no SET clause, unlike every other function here: they must read the caller's
-- search_path (and other settings) to hand them to the worker, and a `SET search_path` clause would be what
-- they read. Nothing in them is looked up through the caller's search_path: every name is qualified.
CREATE OR REPLACE FUNCTION bgtask.run_task(sql text, info text DEFAULT NULL, options jsonb DEFAULT '{}')
RETURNS bigint
LANGUAGE sql AS $$
  SELECT bgtask._submit(ARRAY[sql]::text[], info, options, sql, bgtask._caller_settings())
$$;
COMMENT ON FUNCTION bgtask.run_task(text, text, jsonb) IS
  'Runs sql as a background task on its own server-side connection; returns the task id. The whole text is one step.';

-- One autocommit step per element, run in order on the worker (VACUUM and CREATE INDEX CONCURRENTLY work).
CREATE OR REPLACE FUNCTION bgtask.run_task(steps text[], info text DEFAULT NULL, options jsonb DEFAULT '{}')
RETURNS bigint
LANGUAGE sql AS $$
  SELECT bgtask._submit(steps, info, options, pg_catalog.array_to_string(steps, E';\n'), bgtask._caller_settings())
$$;
COMMENT ON FUNCTION bgtask.run_task(text[], text, jsonb) IS
  'Runs each statement as its own autocommit step, in order; options: stop_on_error (default true), statement_timeout, lock_timeout, max_rows, unlogged, returns_rows.';

-- How many screen columns libpq gives a character when it draws an error cursor ("LINE n: …" and the "^" line):
-- 2 for East Asian wide and fullwidth characters and most emoji, else 1 (libpq counts combining and control
-- characters as 1 too). dblink's libpq is the server's own, so the table follows the server version: the
-- Unicode 16 table of PostgreSQL 18 (src/include/common/unicode_east_asian_fw_table.h less the non-spacing
-- characters in it); on 15–17 the characters that were still narrow there (measured on 15.18 by making libpq draw
-- the cursor after each of 180,000 characters: symbols that became wide in Unicode 15/16 — trigrams, hexagrams,
-- Tai Xuan Jing, a few emoji); on 14 libpq's older formula, where emoji are narrow. Characters that became wide
-- in Unicode 15.0/15.1 may count one column short on 16 and 17.
CREATE OR REPLACE FUNCTION bgtask._cursor_width(p_code integer) RETURNS integer
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT CASE
    WHEN p_code < 4352 THEN 1
    WHEN current_setting('server_version_num')::integer < 150000 THEN
      CASE WHEN p_code <= 4447 OR p_code BETWEEN 44032 AND 55203 OR p_code BETWEEN 63744 AND 64255
                OR p_code BETWEEN 65072 AND 65135 OR p_code BETWEEN 65280 AND 65375 OR p_code BETWEEN 65504 AND 65510
                OR p_code BETWEEN 131072 AND 196607
                OR (p_code BETWEEN 11904 AND 42191 AND (p_code & ~17) <> 12298 AND p_code <> 12351
                    AND p_code NOT BETWEEN 12330 AND 12333 AND p_code NOT IN (12441, 12442))
           THEN 2 ELSE 1 END
    WHEN '{[4352,4447],[8986,8987],[9001,9002],[9193,9196],[9200,9200],[9203,9203],[9725,9726],[9748,9749],
          [9776,9783],[9800,9811],[9855,9855],[9866,9871],[9875,9875],[9889,9889],[9898,9899],[9917,9918],
          [9924,9925],[9934,9934],[9940,9940],[9962,9962],[9970,9971],[9973,9973],[9978,9978],[9981,9981],
          [9989,9989],[9994,9995],[10024,10024],[10060,10060],[10062,10062],[10067,10069],[10071,10071],
          [10133,10135],[10160,10160],[10175,10175],[11035,11036],[11088,11088],[11093,11093],[11904,11929],
          [11931,12019],[12032,12245],[12272,12329],[12334,12350],[12353,12438],[12443,12543],[12549,12591],
          [12593,12686],[12688,12773],[12783,12830],[12832,12871],[12880,42124],[42128,42182],[43360,43388],
          [44032,55203],[63744,64255],[65040,65049],[65072,65106],[65108,65126],[65128,65131],[65281,65376],
          [65504,65510],[94176,94179],[94192,94193],[94208,100343],[100352,101589],[101631,101640],
          [110576,110579],[110581,110587],[110589,110590],[110592,110882],[110898,110898],[110928,110930],
          [110933,110933],[110948,110951],[110960,111355],[119552,119638],[119648,119670],[126980,126980],
          [127183,127183],[127374,127374],[127377,127386],[127488,127490],[127504,127547],[127552,127560],
          [127568,127569],[127584,127589],[127744,127776],[127789,127797],[127799,127868],[127870,127891],
          [127904,127946],[127951,127955],[127968,127984],[127988,127988],[127992,128062],[128064,128064],
          [128066,128252],[128255,128317],[128331,128334],[128336,128359],[128378,128378],[128405,128406],
          [128420,128420],[128507,128591],[128640,128709],[128716,128716],[128720,128722],[128725,128727],
          [128732,128735],[128747,128748],[128756,128764],[128992,129003],[129008,129008],[129292,129338],
          [129340,129349],[129351,129535],[129648,129660],[129664,129673],[129679,129734],[129742,129756],
          [129759,129769],[129776,129784],[131072,196605],[196608,262141]}'::int4multirange @> p_code
         AND (current_setting('server_version_num')::integer >= 180000
              OR NOT '{[9776,9783],[9866,9871],[12284,12287],[12772,12773],[12783,12783],[19904,19967],[101631,101631],
                  [110898,110898],[110933,110933],[119552,119638],[119648,119670],[128732,128732],[129653,129655],
                  [129671,129673],[129679,129679],[129709,129711],[129723,129727],[129734,129734],[129742,129743],
                  [129754,129756],[129759,129759],[129768,129769],[129783,129784]}'::int4multirange @> p_code)
      THEN 2
    ELSE 1 END
$$;

-- The position of an error in the statement, which dblink does not pass on as a field: libpq's message carries
-- it only drawn, as "LINE n: <text>" and a line with a "^" under the character. This reads the drawing backwards
-- (libpq's reportErrorPosition in src/interfaces/libpq/fe-protocol3.c): the line number n, then the character whose
-- screen column is the caret's, counting wide characters as two columns (_cursor_width) as libpq does, with
-- \r, \n and \r\n as line ends and a tab as one column, and lines longer than 60 columns cut to the 60 around
-- the cursor with "..." (then the shown piece is looked up in the line). Returns the 1-based position in
-- characters, as PostgreSQL reports it (psql's "at character N", ErrorResponse's P field), or NULL when the message
-- has none or the drawing does not fit p_sql. A position in an internal query (QUERY: …, e.g. a function's
-- dynamic SQL) is not a position in p_sql: NULL. Linear in the length of p_sql (a 10 MB script of 100,000 lines
-- used to take minutes here, one split_part per line).
CREATE OR REPLACE FUNCTION bgtask._error_position(p_message text, p_sql text) RETURNS integer
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  m text[] := regexp_match(p_message, '(?:^|\n)([^\n\d]*)(\d+): ([^\n]*)\n( *)\^');
  v_line integer;
  v_caret integer;
  v_shown text;
  v_lines text[];
  v_start bigint;
  v_text text;
  v_from integer := 0;
  v_col integer := 0;
  v_wide boolean;
  i integer := 0;
BEGIN
  IF m IS NULL OR p_sql IS NULL OR p_message ~ '\nQUERY:  ' THEN
    RETURN NULL;
  END IF;
  v_line := m[2]::integer;
  v_shown := m[3];
  -- The caret's column, counted from the first character shown ("LINE n: " is not part of the query).
  v_caret := length(m[4]) - (SELECT sum(bgtask._cursor_width(ascii(c)))::integer
                             FROM regexp_split_to_table(m[1] || m[2] || ': ', '') AS c);
  -- The line: after the (n-1)th line end. \r\n is one line end and a lone \r one too; same-length stand-ins
  -- keep every character's offset.
  v_lines := string_to_array(CASE WHEN strpos(p_sql, E'\r') = 0 THEN p_sql
                                  ELSE translate(replace(p_sql, E'\r\n', E' \n'), E'\r', E'\n') END, E'\n');
  IF v_line < 1 OR v_line > cardinality(v_lines) THEN
    RETURN NULL;
  END IF;
  SELECT coalesce(sum(length(l) + 1), 0) INTO v_start FROM unnest(v_lines[1:v_line - 1]) AS l;
  v_text := translate(split_part(translate(substr(p_sql, (v_start + 1)::integer, length(v_lines[v_line])), E'\r', E'\n'), E'\n', 1),
                      E'\t', ' ');
  v_wide := length(v_text) > 60;
  IF NOT v_wide THEN
    v_wide := (SELECT sum(bgtask._cursor_width(ascii(c))) FROM regexp_split_to_table(v_text, '') AS c) > 60;
  END IF;
  IF v_wide AND left(v_shown, 3) = '...' AND v_caret >= 52 THEN
    -- Cut on the left (the cursor is past column 50): find the piece shown, without the dots libpq added.
    v_shown := substr(v_shown, 4);
    v_from := strpos(v_text, v_shown) - 1;
    IF v_from < 0 AND right(v_shown, 3) = '...' THEN
      v_from := strpos(v_text, left(v_shown, -3)) - 1;
    END IF;
    IF v_from < 0 THEN
      RETURN NULL;
    END IF;
    v_caret := v_caret - 3;
  END IF;
  -- At most 60 columns from the first character shown; substr() of a long line walks it from the start, so once.
  v_text := substr(v_text, v_from + 1, 61);
  WHILE v_col < v_caret AND i < length(v_text) LOOP
    v_col := v_col + bgtask._cursor_width(ascii(substr(v_text, i + 1, 1)));
    i := i + 1;
  END LOOP;
  IF v_col <> v_caret THEN
    RETURN NULL;
  END IF;
  RETURN (v_start + v_from + i + 1)::integer;
END
$$;

-- The error of the current handler as the jsonb that tbl_task.error and tbl_task_step.error keep. The context
-- is trimmed of our own frames (dblink's "while executing …" and bgtask's PL/pgSQL lines): what is left is the
-- user's.
CREATE OR REPLACE FUNCTION bgtask._error_json(p_sqlstate text, p_message text, p_detail text, p_hint text,
                                              p_context text, p_position integer, p_step integer)
RETURNS jsonb
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT jsonb_strip_nulls(jsonb_build_object(
    'sqlstate', p_sqlstate, 'message', p_message, 'detail', nullif(p_detail, ''), 'hint', nullif(p_hint, ''),
    'context', nullif((SELECT string_agg(l, E'\n') FROM regexp_split_to_table(coalesce(p_context, ''), E'\n') AS l
                        WHERE l !~ '^while executing (query|command) on (unnamed )?dblink connection'
                          AND l !~ 'PL/pgSQL function bgtask\.'
                          AND l !~ '^SQL function "_dblink_\w+"'
                          AND l !~ '^SQL statement "(SELECT|CALL|PERFORM) .*(dblink|bgtask\.)'), ''),
    'position', p_position, 'step', p_step))
$$;

-- Sends one command to the worker and waits for it without holding a snapshot: poll dblink_is_busy with naps
-- that back off (1 ms → 100 ms) and COMMIT between naps. Waiting inside dblink_exec instead would hold the
-- supervisor's snapshot, and a worker step CREATE INDEX CONCURRENTLY would wait for it forever (DESIGN.md §8).
-- Between naps it forwards a cancel: the row's cancel_requested, or a cancel of the supervisor itself.
-- p_out: {"tags": [command tags], "error": {…}, "cancelled": bool, "rows_not_captured": bool}.
CREATE OR REPLACE PROCEDURE bgtask._worker_exec(p_task bigint, p_link text, p_sql text, INOUT p_out jsonb DEFAULT NULL)
LANGUAGE plpgsql AS $$
DECLARE
  v_nap float8 := 0.001;
  v_busy boolean;
  v_sent integer;
  v_cancel_sent boolean := false;
  v_self_cancelled boolean := false;
  v_tags text[] := '{}';
  v_got boolean;
  v_rows_not_captured boolean := false;
  v_error jsonb;
  v_errors integer := 0;
  v_worker integer := (SELECT worker_pid FROM bgtask.tbl_task WHERE id = p_task);
  v_drain boolean := false;
  k integer;
  r record;
  e_state text; e_msg text; e_detail text; e_hint text; e_ctx text;
BEGIN
  BEGIN
    v_sent := bgtask._dblink_send_query(p_link, p_sql);
    IF v_sent <> 1 THEN
      -- An unread result of the previous command (an unwrapped statement that returned no rows and then more):
      -- drain it and try once more.
      LOOP
        v_got := false;
        FOR r IN SELECT * FROM bgtask._dblink_get_result(p_link, false) AS t(status) LOOP v_got := true; END LOOP;
        EXIT WHEN NOT v_got;
      END LOOP;
      v_sent := bgtask._dblink_send_query(p_link, p_sql);
      IF v_sent <> 1 THEN
        RAISE EXCEPTION 'could not send the step to the worker: %', bgtask._dblink_error_message(p_link)
          USING ERRCODE = 'connection_failure';
      END IF;
    END IF;
  EXCEPTION WHEN query_canceled OR OTHERS THEN
    GET STACKED DIAGNOSTICS e_state = RETURNED_SQLSTATE, e_msg = MESSAGE_TEXT, e_detail = PG_EXCEPTION_DETAIL,
                            e_hint = PG_EXCEPTION_HINT, e_ctx = PG_EXCEPTION_CONTEXT;
    p_out := jsonb_build_object('tags', '[]'::jsonb,
               'error', bgtask._error_json(e_state, e_msg, e_detail, e_hint, e_ctx, NULL, NULL),
               'cancelled', e_state = '57014');
    RETURN;
  END;

  LOOP
    BEGIN
      v_busy := bgtask._dblink_is_busy(p_link) = 1;
      IF v_busy AND v_drain THEN
        -- The worker waits for us to read (see below): read again at once, while it stays busy.
        FOR k IN 1 .. 1000 LOOP
          v_busy := bgtask._dblink_is_busy(p_link) = 1;
          EXIT WHEN NOT v_busy;
        END LOOP;
      ELSIF v_busy THEN
        PERFORM pg_sleep(v_nap);
      END IF;
    EXCEPTION WHEN query_canceled THEN
      -- Someone cancelled the supervisor (pg_cancel_backend): the statement to stop is the worker's.
      v_self_cancelled := true;
      v_busy := true;
    END;
    EXIT WHEN NOT v_busy;
    IF NOT v_cancel_sent
       AND (v_self_cancelled OR (SELECT cancel_requested FROM bgtask.tbl_task WHERE id = p_task)) THEN
      PERFORM bgtask._dblink_cancel_query(p_link);
      v_cancel_sent := true;
      IF v_self_cancelled THEN
        UPDATE bgtask.tbl_task SET cancel_requested = true WHERE id = p_task;
      END IF;
    END IF;
    -- A worker that waits for us to read (wait event ClientWrite: a flood of NOTICEs after the task's own SET
    -- client_min_messages, or rows that are not captured) is read from again and again without naps. With naps
    -- each read took about one message, and 100,000 NOTICEs of one step took 78 s (measured on 18). Reading
    -- inside dblink_get_result instead would be quick but would hold a snapshot (see above). Seen only when the
    -- worker's login role is visible to the owner; otherwise the plain back-off applies.
    v_drain := v_nap >= 0.008 AND EXISTS (SELECT FROM pg_stat_activity a WHERE a.pid = v_worker AND a.wait_event = 'ClientWrite');
    v_nap := CASE WHEN v_drain THEN 0.001 ELSE least(v_nap * 2, 0.1) END;
    COMMIT;
  END LOOP;

  -- Collect every result of the command; the first error (with SQLSTATE, detail, hint and context) wins.
  LOOP
    BEGIN
      v_got := false;
      FOR r IN SELECT * FROM bgtask._dblink_get_result(p_link, true) AS t(status) LOOP
        IF NOT v_got THEN
          v_tags := v_tags || r.status;
        ELSE
          v_rows_not_captured := true;   -- more than one row: the statement returned rows of one column
        END IF;
        v_got := true;
      END LOOP;
    EXCEPTION
      WHEN datatype_mismatch THEN
        -- Rows of several columns came back from a statement that could not be wrapped: they are not kept.
        v_got := true;
        v_rows_not_captured := true;
      WHEN query_canceled OR OTHERS THEN
        GET STACKED DIAGNOSTICS e_state = RETURNED_SQLSTATE, e_msg = MESSAGE_TEXT, e_detail = PG_EXCEPTION_DETAIL,
                                e_hint = PG_EXCEPTION_HINT, e_ctx = PG_EXCEPTION_CONTEXT;
        IF v_error IS NULL THEN
          v_error := bgtask._error_json(e_state, e_msg, e_detail, e_hint, e_ctx,
                                        bgtask._error_position(bgtask._dblink_error_message(p_link), p_sql), NULL);
        END IF;
        -- Keep draining after an error (the command may have more results), but not forever on a dead link.
        v_errors := v_errors + 1;
        v_got := v_errors < 3;
    END;
    EXIT WHEN NOT v_got;
  END LOOP;

  p_out := jsonb_build_object('tags', to_jsonb(v_tags), 'error', v_error,
                              'cancelled', v_cancel_sent OR v_self_cancelled,
                              'rows_not_captured', v_rows_not_captured);
END
$$;

-- Runs on the worker, as the task's owner and with the owner's search_path (hence no SET clause, and the statement
-- is planned exactly as it will run): plans one wrapped form of a step with EXPLAIN, without running it, and answers
-- 'ok' or the SQLSTATE of why not. The probe used to be sent as a query of its own, `EXPLAIN <wrapped step>`, and a
-- query string runs every statement in it: for the step `select 1; insert into t values (1)` the 'direct' form
-- `EXPLAIN CREATE TABLE … AS select 1; insert into t values (1)` explained the first statement and *ran the
-- INSERT*, and then the step ran it again (verified: two rows; nextval() three times for two calls). FOR … IN
-- EXECUTE opens a cursor, which refuses a string of several statements after parsing it and before running any
-- ("cannot open multi-query plan as cursor"), so such a step fits no form and runs once, as written. Catching the
-- error here also keeps a failed probe out of the server log (it used to log an ERROR with the whole statement).
-- A cancel (57014) is not caught: it stops the step.
CREATE OR REPLACE FUNCTION bgtask._probe(p_sql text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
  r record;
BEGIN
  FOR r IN EXECUTE 'EXPLAIN (COSTS OFF) ' || p_sql LOOP
  END LOOP;
  RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
  RETURN SQLSTATE;
END
$$;

-- Runs on the worker, as the task's owner and with the owner's search_path (hence no SET clause): the lines of
-- an EXPLAIN, which cannot be wrapped in CREATE TABLE AS, in any output format.
CREATE OR REPLACE FUNCTION bgtask._explain_lines(p_sql text) RETURNS SETOF text
LANGUAGE plpgsql AS $$
DECLARE
  r record;
BEGIN
  FOR r IN EXECUTE p_sql LOOP
    RETURN NEXT r."QUERY PLAN"::text;
  END LOOP;
END
$$;

-- Runs on the worker: the column names a statement returns, without running it (LIMIT 0; only called for a
-- plain query whose CREATE TABLE AS failed on duplicate names, before any row was produced).
CREATE OR REPLACE FUNCTION bgtask._result_columns(p_sql text) RETURNS text[]
LANGUAGE plpgsql AS $$
DECLARE
  r record;
BEGIN
  EXECUTE pg_catalog.format(E'SELECT * FROM (\n%s\n) AS q LIMIT 0', p_sql) INTO r;
  RETURN ARRAY(SELECT pg_catalog.json_object_keys(pg_catalog.row_to_json(r)));
END
$$;

-- Unique column names for a result table: duplicates and the reserved _row get a suffix (id, id_2, …).
CREATE OR REPLACE FUNCTION bgtask._unique_names(p_names text[]) RETURNS text[]
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_out text[] := '{}';
  v_used text[] := ARRAY['_row'];
  v_name text;
  v_try text;
  k integer;
BEGIN
  FOREACH v_name IN ARRAY p_names LOOP
    v_try := v_name;
    k := 1;
    WHILE v_try = ANY (v_used) LOOP
      k := k + 1;
      v_try := v_name || '_' || k;
    END LOOP;
    v_used := v_used || v_try;
    v_out := v_out || v_try;
  END LOOP;
  RETURN v_out;
END
$$;

-- The statement that collects a step's rows on the worker. Forms: 'subquery' for queries, 'cte' for
-- INSERT/UPDATE/DELETE/MERGE … RETURNING, 'explain'. The body keeps its own text; a newline before the closing
-- parenthesis ends a trailing line comment. A cap (p_max) never stops execution early: every row is drawn and
-- numbered, rows past the cap are counted in the worker's bgtask.rows_seen setting and dropped (a plain
-- `_row <= N` filter becomes a window run condition that stops the query: DESIGN.md §3). The text runs on the
-- worker under the caller's search_path, so every function and operator the engine adds is schema-qualified.
CREATE OR REPLACE FUNCTION bgtask._capture_sql(p_form text, p_table text, p_body text, p_max bigint,
                                               p_unlogged boolean, p_columns text[] DEFAULT NULL,
                                               p_as_text boolean DEFAULT false)
RETURNS text
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_target text := format('CREATE %sTABLE bgtask_result.%I AS ', CASE WHEN p_unlogged THEN 'UNLOGGED ' ELSE '' END, p_table);
  v_alias text := CASE WHEN p_columns IS NULL THEN ''
                       ELSE '(' || (SELECT string_agg(format('%I', c), ', ') FROM unnest(p_columns) AS c) || ')' END;
  -- As text: a column of a pseudo-type (void from pg_sleep(), record) cannot be a table column.
  v_list text := CASE WHEN p_as_text AND p_columns IS NOT NULL
                      THEN (SELECT string_agg(format('q.%I::text AS %I', c, c), ', ') FROM unnest(p_columns) AS c)
                      ELSE 'q.*' END;
  v_numbered text;
BEGIN
  IF p_form = 'direct' THEN
    -- WITH … (DELETE … RETURNING) SELECT …: a data-modifying WITH cannot be nested, so the statement is the
    -- whole query of CREATE TABLE AS; _row is added afterwards (see _run_step) and no cap applies.
    RETURN v_target || p_body;
  ELSIF p_form = 'explain' THEN
    RETURN v_target || format('SELECT pg_catalog.row_number() OVER () AS _row, l AS "QUERY PLAN" FROM bgtask._explain_lines(%L) AS l', p_body);
  ELSIF p_form = 'cte' THEN
    v_numbered := format(E'WITH q%s AS (\n%s\n) SELECT pg_catalog.row_number() OVER () AS _row, q.* FROM q', v_alias, p_body);
  ELSE
    v_numbered := format(E'SELECT pg_catalog.row_number() OVER () AS _row, %s FROM (\n%s\n) AS q%s', v_list, p_body, v_alias);
  END IF;
  IF p_max IS NULL THEN
    RETURN v_target || v_numbered;
  END IF;
  IF p_form = 'cte' THEN
    -- A data-modifying WITH must stay at the top level: number in the CTE query, filter in a second CTE.
    RETURN v_target || format(E'WITH q%s AS (\n%s\n), n AS (SELECT pg_catalog.row_number() OVER () AS _row, q.* FROM q) '
                              'SELECT n.* FROM n WHERE n._row OPERATOR(pg_catalog.<=) %s OR pg_catalog.set_config(''bgtask.rows_seen'', n._row::text, false) IS NULL',
                              v_alias, p_body, p_max);
  END IF;
  RETURN v_target || format('SELECT s.* FROM (%s OFFSET 0) AS s WHERE s._row OPERATOR(pg_catalog.<=) %s OR pg_catalog.set_config(''bgtask.rows_seen'', s._row::text, false) IS NULL',
                            v_numbered, p_max);
END
$$;

CREATE OR REPLACE FUNCTION bgtask._tag_rows(p_tag text) RETURNS bigint
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT CASE WHEN p_tag ~ '^(INSERT|UPDATE|DELETE|SELECT|MERGE|COPY|FETCH|MOVE)( \d+)? \d+$'
              THEN (regexp_match(p_tag, '(\d+)$'))[1]::bigint END
$$;

CREATE OR REPLACE FUNCTION bgtask._strip_trailing(p_sql text) RETURNS text
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
  -- Trailing semicolons, whitespace, and a line comment after the last semicolon.
  SELECT regexp_replace(regexp_replace(p_sql, ';(\s|--[^\n]*)*$', ''), '[\s;]+$', '')
$$;

-- The whole command that collects a step's rows: the CREATE TABLE AS of _capture_sql, _row added afterwards for
-- the 'direct' form, the BRIN index on _row that pages are read by, and the statistics that let the planner use it.
CREATE OR REPLACE FUNCTION bgtask._capture_command(p_form text, p_table text, p_body text, p_max bigint,
                                                   p_unlogged boolean, p_columns text[] DEFAULT NULL,
                                                   p_as_text boolean DEFAULT false)
RETURNS text
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT bgtask._capture_sql(p_form, p_table, p_body, p_max, p_unlogged, p_columns, p_as_text)
      || CASE WHEN p_form = 'direct'
              THEN format(E';\nALTER TABLE bgtask_result.%I ADD COLUMN _row bigint GENERATED ALWAYS AS IDENTITY', p_table) ELSE '' END
      || format(E';\nCREATE INDEX ON bgtask_result.%I USING brin (_row)', p_table)
      -- Without statistics the planner cannot cost the BRIN index and reads a page of rows with a sequential
      -- scan (41 ms at row 900,000 of 1 M, against 0.7 ms after ANALYZE: npm run bench).
      || format(E';\nANALYZE bgtask_result.%I (_row)', p_table)
$$;

-- One step on the worker. Rows are collected on the worker itself (CREATE TABLE AS), never sent to the
-- supervisor. Where the client's parser did not say whether the step returns rows, EXPLAIN of each wrapped form
-- tells without running anything: the first form that plans is used, and a statement that fits none (utility
-- commands, SELECT … INTO, plain DML, several statements in one string) runs as written.
-- p_result: {"state": "done"|"failed"|"cancelled", "error": {…}, "rows": n}.
CREATE OR REPLACE PROCEDURE bgtask._run_step(p_task bgtask.tbl_task, p_n integer, p_link text, INOUT p_result jsonb DEFAULT NULL)
LANGUAGE plpgsql AS $$
DECLARE
  s bgtask.tbl_task_step;
  v_max bigint := nullif(p_task.options ->> 'max_rows', '')::bigint;
  v_unlogged boolean := coalesce((p_task.options ->> 'unlogged')::boolean, false);
  v_body text;
  v_table text;
  v_form text;
  v_try text;
  v_cmd text;
  v_out jsonb;
  v_tags text[];
  v_columns text[];
  v_capture text := 'none';
  v_state text;
  v_error jsonb;
  v_stored bigint;
  v_seen bigint;
  v_rows bigint;
  v_off integer;
  v_pos integer;
BEGIN
  SELECT * INTO s FROM bgtask.tbl_task_step WHERE task_id = p_task.id AND n = p_n;
  UPDATE bgtask.tbl_task_step SET state = 'running', start_time = clock_timestamp() WHERE task_id = p_task.id AND n = p_n;
  UPDATE bgtask.tbl_task SET step_current = p_n WHERE id = p_task.id;
  COMMIT;

  v_cmd := s.sql;
  -- A client's "returns no rows" is trusted except for a statement that starts like a query: its rows would
  -- otherwise come back to the supervisor (and SELECT … INTO simply fails the probe and runs as written).
  IF s.returns_rows IS DISTINCT FROM false
     OR s.sql ~* '^(\s|\(|--[^\n]*(\n|$)|/\*([^*]|\*+[^*/])*\*+/)*(select|values|table|with)\M' THEN
    v_body := bgtask._strip_trailing(s.sql);
    -- The documented name is task_<id>_<n>. Every bgtask_user may create in bgtask_result and task ids are no
    -- secret (LISTEN bgtask announces them), so that name may already be taken (by a relation, or a type, which
    -- blocks it as well), or be taken between this check and the CREATE (then the CREATE fails before the
    -- statement runs, and it is retried below): either way the rows go to a name with a random suffix, never
    -- into someone else's table. Readers find the table through bgtask.result_table(), which checks its owner.
    v_table := format('task_%s_%s', p_task.id, p_n);
    WHILE to_regclass(format('bgtask_result.%I', v_table)) IS NOT NULL OR to_regtype(format('bgtask_result.%I', v_table)) IS NOT NULL LOOP
      v_table := format('task_%s_%s_%s', p_task.id, p_n, substr(md5(gen_random_uuid()::text), 1, 8));
    END LOOP;
    IF v_body ~* '^(\s|--[^\n]*(\n|$)|/\*([^*]|\*+[^*/])*\*+/)*explain\M' THEN
      v_form := 'explain';
      v_try := bgtask._capture_sql('explain', v_table, v_body, NULL, v_unlogged);
    ELSIF length(v_body) - length(replace(v_body, ';', '')) > 1000 THEN
      -- More than 1,000 semicolons: most likely a script of many statements, which no form fits, and planning all of
      -- them only for the cursor to refuse them costs time quadratic in their number (measured on 18: 5,000
      -- statements 0.2 s, 20,000 statements 2.9 s, 100,000 minutes and gigabytes). It runs as written, uncaptured.
      v_try := NULL;
    ELSE
      -- Probe only the forms the first keyword allows (each probe plans the whole statement once).
      FOREACH v_form IN ARRAY CASE
          WHEN v_body ~* '^(\s|\(|--[^\n]*(\n|$)|/\*([^*]|\*+[^*/])*\*+/)*(select|values|table|with)\M' THEN ARRAY['subquery', 'cte', 'direct']
          WHEN v_body ~* '^(\s|--[^\n]*(\n|$)|/\*([^*]|\*+[^*/])*\*+/)*(insert|update|delete|merge)\M' AND v_body ~* '\mreturning\M' THEN ARRAY['cte']
          ELSE '{}'::text[] END LOOP
        v_try := bgtask._capture_sql(v_form, v_table, v_body, v_max, v_unlogged);
        CALL bgtask._worker_exec(p_task.id, p_link, format('SELECT bgtask._probe(%L::pg_catalog.text)', v_try), v_out);
        IF (v_out ->> 'cancelled')::boolean THEN
          v_form := NULL;
          v_cmd := NULL;
          v_error := v_out -> 'error';
          EXIT;
        END IF;
        EXIT WHEN (v_out -> 'error' = 'null'::jsonb OR v_out -> 'error' IS NULL) AND v_out -> 'tags' ->> 0 = 'ok';
        v_try := NULL;
      END LOOP;
    END IF;
    IF v_try IS NOT NULL THEN
      v_capture := v_form;
      v_cmd := bgtask._capture_command(v_form, v_table, v_body, v_max, v_unlogged);
    END IF;
  END IF;

  IF v_cmd IS NOT NULL THEN
    IF v_max IS NOT NULL AND v_capture IN ('subquery', 'cte') THEN
      PERFORM bgtask._dblink_value(p_link, 'select pg_catalog.set_config(''bgtask.rows_seen'', ''0'', false)');
    END IF;
    CALL bgtask._worker_exec(p_task.id, p_link, v_cmd, v_out);
    IF v_capture IN ('subquery', 'cte', 'direct', 'explain') AND v_out -> 'error' ->> 'sqlstate' = '42P07' THEN
      v_table := format('task_%s_%s_%s', p_task.id, p_n, substr(md5(gen_random_uuid()::text), 1, 8));
      v_cmd := bgtask._capture_command(v_form, v_table, v_body, v_max, v_unlogged);
      CALL bgtask._worker_exec(p_task.id, p_link, v_cmd, v_out);
    END IF;
    IF v_capture = 'subquery' AND v_out -> 'error' ->> 'sqlstate' IN ('42701', '42P16') THEN
      -- Duplicate or reserved column names (a join's two "id" columns), or a column of a pseudo-type (void from
      -- pg_sleep()): CREATE TABLE AS failed before the query produced a row, so read the names, make them
      -- unique (and, for a pseudo-type, store every column as text), and run it again.
      v_columns := bgtask._dblink_value(p_link, format('select bgtask._result_columns(%L)', v_body))::text[];
      IF v_out -> 'error' ->> 'sqlstate' = '42P16' THEN
        v_capture := 'subquery';
      END IF;
      v_cmd := bgtask._capture_command('subquery', v_table, v_body, v_max, v_unlogged, bgtask._unique_names(v_columns),
                                       v_out -> 'error' ->> 'sqlstate' = '42P16');
      CALL bgtask._worker_exec(p_task.id, p_link, v_cmd, v_out);
    ELSIF v_capture = 'cte' AND v_out -> 'error' ->> 'sqlstate' = '42701' THEN
      v_capture := 'not captured: the RETURNING list has duplicate column names; give them aliases';
      v_cmd := format(E'WITH q AS (\n%s\n) SELECT pg_catalog.count(*) FROM q', v_body);
      CALL bgtask._worker_exec(p_task.id, p_link, v_cmd, v_out);
    ELSIF v_capture = 'explain' AND v_out -> 'error' ->> 'sqlstate' = '42P11' THEN
      -- `EXPLAIN …; more statements` in one step: the cursor that reads the plan refused the string before running
      -- any of it (see _probe). Run the step as written, once, like psql would.
      v_capture := 'none';
      v_cmd := s.sql;
      CALL bgtask._worker_exec(p_task.id, p_link, v_cmd, v_out);
    END IF;
    v_error := nullif(v_out -> 'error', 'null'::jsonb);
    -- An error position counts characters of the command sent; when that wraps the statement (CREATE TABLE … AS
    -- … FROM (<statement>)), shift it to the statement's own text, and drop it when it points outside.
    IF v_error ? 'position' AND v_cmd IS DISTINCT FROM s.sql THEN
      v_off := strpos(v_cmd, v_body) - 1;
      v_pos := (v_error ->> 'position')::integer - v_off;
      v_error := CASE WHEN v_off >= 0 AND v_pos BETWEEN 1 AND length(v_body) + 1
                      THEN jsonb_set(v_error, '{position}', to_jsonb(v_pos)) ELSE v_error - 'position' END;
    END IF;
  END IF;

  SELECT array_agg(t) INTO v_tags FROM jsonb_array_elements_text(coalesce(v_out -> 'tags', '[]')) AS t;
  IF (v_out ->> 'cancelled')::boolean AND (v_error IS NULL OR v_error ->> 'sqlstate' = '57014') THEN
    v_state := 'cancelled';
    v_error := coalesce(v_error, jsonb_build_object('sqlstate', '57014', 'message', 'canceling statement due to user request'));
  ELSIF v_error IS NOT NULL THEN
    v_state := 'failed';
  ELSIF v_tags[cardinality(v_tags)] = 'ROLLBACK' AND v_body !~* '^\s*(rollback|abort)' AND s.sql !~* '^\s*(rollback|abort)' THEN
    -- COMMIT in an aborted transaction answers ROLLBACK: the work of the transaction is lost.
    v_state := 'failed';
    v_error := jsonb_build_object('sqlstate', '40000',
                 'message', 'the transaction was rolled back: COMMIT answered ROLLBACK because a statement inside the transaction failed');
  ELSE
    v_state := 'done';
  END IF;
  v_error := CASE WHEN v_error IS NULL THEN NULL ELSE v_error || jsonb_build_object('step', p_n) END;

  IF v_capture IN ('subquery', 'cte', 'direct', 'explain') AND v_state = 'done' THEN
    v_stored := bgtask._tag_rows(v_tags[1]);
    v_rows := v_stored;
    IF v_max IS NOT NULL AND v_capture IN ('subquery', 'cte') THEN
      v_seen := bgtask._dblink_value(p_link, 'select pg_catalog.current_setting(''bgtask.rows_seen'', true)')::bigint;
      v_rows := greatest(v_stored, v_seen);
    END IF;
  ELSIF v_capture NOT IN ('subquery', 'cte', 'direct', 'explain') THEN
    SELECT sum(bgtask._tag_rows(t)) INTO v_rows FROM unnest(v_tags) AS t;
    IF (v_out ->> 'rows_not_captured')::boolean THEN
      v_capture := 'not captured: the statement returned rows but could not be wrapped (several statements in one string?); submit it as its own step';
    END IF;
  END IF;

  UPDATE bgtask.tbl_task_step
  SET state = v_state, end_time = clock_timestamp(),
      command_tag = CASE WHEN v_capture IN ('subquery', 'cte', 'direct', 'explain') THEN v_tags[1] ELSE v_tags[cardinality(v_tags)] END,
      rows_affected = v_rows, error = v_error, capture = v_capture,
      result_table = CASE WHEN v_capture IN ('subquery', 'cte', 'direct', 'explain') AND v_state = 'done' THEN v_table END,
      result_rows = CASE WHEN v_capture IN ('subquery', 'cte', 'direct', 'explain') THEN v_rows END,
      result_stored = CASE WHEN v_capture IN ('subquery', 'cte', 'direct', 'explain') THEN v_stored END
  WHERE task_id = p_task.id AND n = p_n;
  COMMIT;
  p_result := jsonb_build_object('state', v_state, 'error', v_error, 'rows', v_rows);
END
$$;

-- Takes the slot for a task if its role has one free. The per-role advisory lock (released by the caller's
-- COMMIT) makes the count and the claim one step against every other supervisor of the role. A supervisor that
-- does not run the task renames its backend before that COMMIT: _start_queued, which takes the same lock, skips
-- queued tasks whose supervisor is on its way, and must not take a leaving one for such.
CREATE OR REPLACE FUNCTION bgtask._claim(p_id bigint, p_token text) RETURNS text
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
  SELECT count(*) INTO v_running FROM bgtask.tbl_task
  WHERE owner = t.owner AND state = 'running' AND id <> p_id
    AND bgtask._backend_alive(supervisor_pid, supervisor_start) IS NOT false;
  IF v_running >= bgtask._max_running(t.owner) THEN
    PERFORM set_config('application_name', format('bgtask supervisor %s: no free slot, leaving', p_id), false);
    RETURN 'queued';
  END IF;
  UPDATE bgtask.tbl_task
  SET state = 'running', start_time = clock_timestamp(), login_role = session_user,
      supervisor_pid = pg_backend_pid(),
      supervisor_start = (SELECT backend_start FROM pg_stat_activity WHERE pid = pg_backend_pid())
  WHERE id = p_id;
  RETURN 'run';
END
$$;

-- How many more tasks of a role may start now: its limit, less its running tasks (unless provably lost), less its
-- queued tasks whose supervisor is already on its way (`pending`: named by _launch before the CALL was sent, and
-- not yet claimed). Those are neither launched again nor given another slot: several supervisors ending at once
-- used to launch the same oldest task each, and every extra one was a backend and a login for nothing (measured:
-- 8 backends beyond two per running task, for 12 tasks at a limit of 4). Only backends of this session user
-- count, so another role cannot hold up the queue by naming its sessions like ours.
CREATE OR REPLACE FUNCTION bgtask._free_slots(p_owner name, OUT free integer, OUT pending bigint[])
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  -- pg_stat_activity is read once per transaction and then cached: the commit-time check would otherwise see
  -- the backends as they were before this very transaction launched one.
  PERFORM pg_stat_clear_snapshot();
  SELECT coalesce(array_agg(t.id), '{}') INTO pending
  FROM bgtask.tbl_task t
  WHERE t.owner = p_owner AND t.state = 'queued'
    AND EXISTS (SELECT FROM pg_stat_activity a
                WHERE a.application_name = format('bgtask supervisor %s', t.id)
                  AND a.datname = current_database() AND a.usename = session_user);
  -- Supervisors launched by submits of this owner that have not committed yet: their rows are invisible here,
  -- their backends are not. A burst of 50 submits from 10 sessions used to see 4 free slots in every session and
  -- launch a supervisor for nearly every task, 17 backends beyond two per running task (measured), most of them
  -- only to find no slot and leave. They are recognised by name and by the owner, the last argument of the
  -- query _launch sends them (the query that names them, then the CALL).
  free := bgtask._max_running(p_owner) - cardinality(pending) - (
    SELECT count(*) FROM pg_stat_activity a
    WHERE a.datname = current_database() AND a.usename = session_user
      AND a.application_name ~ '^bgtask supervisor \d+$'
      AND a.query ~ '^(select pg_catalog\.json_build_object\(|CALL bgtask\.supervise\()'
      AND right(a.query, length(quote_literal(p_owner)) + 1) = quote_literal(p_owner) || ')'
      AND NOT EXISTS (SELECT FROM bgtask.tbl_task t WHERE t.id = substring(a.application_name from '\d+$')::bigint)) - (
    SELECT count(*) FROM bgtask.tbl_task
    WHERE owner = p_owner AND state = 'running' AND bgtask._backend_alive(supervisor_pid, supervisor_start) IS NOT false);
END
$$;

-- Starts the role's oldest queued tasks while it has free slots. Runs as that role (a role has no right to
-- another role's credentials); the new supervisors claim their slot after the caller commits.
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
  PERFORM pg_advisory_xact_lock(1650947170, hashtext(current_user));
  v_slots := bgtask._free_slots(p_owner);
  FOR q IN SELECT id, token FROM bgtask.tbl_task
           WHERE owner = p_owner AND state = 'queued' AND NOT cancel_requested AND id <> ALL (v_slots.pending)
           ORDER BY id LIMIT greatest(v_slots.free, 0) LOOP
    PERFORM bgtask._launch(q.id, q.token, p_owner);
    v_started := v_started + 1;
  END LOOP;
  RETURN v_started;
END
$$;

-- The commit-time half of a submit that found no free slot (see _submit). Between the submitter's count and its
-- COMMIT a supervisor of the role may end; it looks for queued tasks and cannot see this uncommitted one. So at
-- COMMIT (a deferred constraint trigger) the submitter takes the role's lock — held only until the commit is
-- done, which every ending supervisor then waits for — and counts again. A failure to launch here is only a
-- warning: the commit goes through, and the task waits for the next ending supervisor or reap().
CREATE OR REPLACE FUNCTION bgtask._launch_at_commit() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  t bgtask.tbl_task;
  v_slots record;
BEGIN
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
      USING HINT = 'It starts when another task of its role ends, or at select bgtask.reap().';
  END;
  RETURN NULL;
END
$$;
DROP TRIGGER IF EXISTS tbl_task_launch_at_commit ON bgtask.tbl_task;
CREATE CONSTRAINT TRIGGER tbl_task_launch_at_commit AFTER INSERT ON bgtask.tbl_task
  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION bgtask._launch_at_commit();

-- The statement that prepares a fresh worker: run as the owner, under a name a DBA can find, silent (its
-- NOTICEs would otherwise fill the server log), with the caller's settings and the task's own timeouts.
CREATE OR REPLACE FUNCTION bgtask._worker_setup_sql(p_task bgtask.tbl_task) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
  -- The worker logs in with the role's own search_path (ALTER ROLE … SET), hence pg_catalog.count.
  SELECT 'SELECT pg_catalog.count(*) FROM (SELECT ' || string_agg(format('pg_catalog.set_config(%L, %L, false)', k, v), ', ' ORDER BY ord) || ') AS s'
  FROM (
    SELECT 1 AS ord, 'role' AS k, p_task.owner::text AS v WHERE p_task.owner <> session_user
    UNION ALL SELECT 2, 'application_name', format('bgtask worker %s', p_task.id)
    UNION ALL SELECT 3, 'client_min_messages', 'error'
    UNION ALL SELECT 4, key, value FROM jsonb_each_text(p_task.settings)
    UNION ALL SELECT 5, 'statement_timeout', coalesce(p_task.options ->> 'statement_timeout', '0')
    UNION ALL SELECT 6, 'lock_timeout', coalesce(p_task.options ->> 'lock_timeout', '0')
  ) AS s
$$;

-- The supervisor: `CALL bgtask.supervise(id, token, owner)`, sent by _launch on a loopback connection whose
-- client is gone a moment later. Called at top level so it may COMMIT (and therefore has no SET clause: a
-- procedure with one cannot COMMIT; it pins search_path with set_config instead, as its first statement: until
-- then it runs with the role's own search_path, which the role may have set to anything (ALTER ROLE … SET), so the
-- declarations and that statement name everything with its schema). It never writes to its client until it ends,
-- and records every state change in a committed row.
CREATE OR REPLACE PROCEDURE bgtask.supervise(p_id bigint, p_token text, p_owner name)
LANGUAGE plpgsql AS $$
DECLARE
  t bgtask.tbl_task;
  v_link text := pg_catalog.format('bgtask_worker_%s', p_id);
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
  IF p_owner <> session_user THEN
    PERFORM set_config('role', p_owner, false);
  END IF;
  -- Wait for the submitting transaction: it holds this lock until it commits or rolls back.
  PERFORM pg_advisory_lock(1650947169, bgtask._task_key(p_id));
  PERFORM pg_advisory_unlock(1650947169, bgtask._task_key(p_id));
  COMMIT;
  v_claim := bgtask._claim(p_id, p_token);
  COMMIT;
  IF v_claim IN ('gone', 'cancelled') THEN
    -- Its submit rolled back, or it was cancelled while queued: while this supervisor was on its way, other
    -- submits of the role counted it as taking a slot and left their tasks queued. Hand the slot on.
    BEGIN
      PERFORM bgtask._start_queued(p_owner);
    EXCEPTION WHEN query_canceled OR OTHERS THEN
      RAISE WARNING 'bgtask: the supervisor of task % could not start the queued tasks of role %: %', p_id, p_owner, SQLERRM;
    END;
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
    PERFORM bgtask._dblink_value(v_link, bgtask._worker_setup_sql(t));
    -- The worker now has the caller's search_path: what the engine sends it is qualified.
    v_worker := bgtask._dblink_value(v_link,
      'select pg_catalog.json_build_object(''pid'', pg_catalog.pg_backend_pid(), ''started'', (select a.backend_start
         from pg_catalog.pg_stat_activity a where a.pid OPERATOR(pg_catalog.=) pg_catalog.pg_backend_pid()))')::jsonb;
    UPDATE bgtask.tbl_task SET worker_pid = (v_worker ->> 'pid')::integer, worker_start = (v_worker ->> 'started')::timestamptz
    WHERE id = p_id;
  EXCEPTION WHEN query_canceled OR OTHERS THEN
    GET STACKED DIAGNOSTICS e_state = RETURNED_SQLSTATE, e_msg = MESSAGE_TEXT, e_detail = PG_EXCEPTION_DETAIL,
                            e_hint = PG_EXCEPTION_HINT, e_ctx = PG_EXCEPTION_CONTEXT;
    v_state := CASE WHEN e_state = '57014' THEN 'cancelled' ELSE 'failed' END;
    v_error := bgtask._error_json(e_state, e_msg, e_detail, e_hint, e_ctx, NULL, NULL);
    v_reason := 'could not start the worker connection';
  END;
  COMMIT;

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
  BEGIN
    PERFORM bgtask._start_queued(p_owner);
  EXCEPTION WHEN query_canceled OR OTHERS THEN
    RAISE WARNING 'bgtask: task % could not start the queued tasks of role %: %', p_id, p_owner, SQLERRM;
  END;
  COMMIT;
END
$$;

-- Asks a task to stop. A queued task is cancelled at once; a running one is stopped by its supervisor within
-- a poll interval (it cancels the worker's statement through its own link: no signal, no extra privilege).
-- Returns false for a task that is not visible to the caller or has already ended.
CREATE OR REPLACE FUNCTION bgtask.cancel_task(id bigint) RETURNS boolean
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  t bgtask.tbl_task;
BEGIN
  SELECT * INTO t FROM bgtask.tbl_task AS x WHERE x.id = cancel_task.id AND x.state IN ('queued', 'running') FOR UPDATE;
  IF NOT FOUND THEN
    RETURN false;
  END IF;
  IF t.state = 'queued' THEN
    UPDATE bgtask.tbl_task AS x SET cancel_requested = true, state = 'cancelled', end_time = clock_timestamp(),
                                  exit_reason = format('cancelled by %s before it started', current_user)
    WHERE x.id = t.id;
    UPDATE bgtask.tbl_task_step AS s SET state = 'skipped' WHERE s.task_id = t.id;
  ELSE
    UPDATE bgtask.tbl_task AS x SET cancel_requested = true,
                                  exit_reason = format('cancel requested by %s', current_user)
    WHERE x.id = t.id;
  END IF;
  RETURN true;
END
$$;

-- Marks running tasks whose supervisor backend is gone (terminated, server restart) as lost and stops their
-- orphaned workers; then starts the caller's queued tasks that have a free slot. Returns how many were lost.
-- Ordinary roles reap their own tasks, bgtask_admin every role's (row-level security decides).
CREATE OR REPLACE FUNCTION bgtask.reap() RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  t bgtask.tbl_task;
  v_lost integer := 0;
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
  IF NOT pg_is_in_recovery() AND NOT current_setting('transaction_read_only')::boolean
     AND EXISTS (SELECT FROM bgtask.tbl_task WHERE owner = current_user AND state = 'queued') THEN
    PERFORM bgtask._start_queued(current_user);
  END IF;
  RETURN v_lost;
END
$$;

-- The result table of a step, or NULL: only a table in bgtask_result whose owner is the task's owner, so a
-- forged result_table in a row a role can write never reaches anyone else's table. Readers, exports and purge
-- go through it.
CREATE OR REPLACE FUNCTION bgtask.result_table(task_id bigint, n integer) RETURNS regclass
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT c.oid::regclass
  FROM bgtask.tbl_task_step s
  JOIN bgtask.tbl_task t ON t.id = s.task_id
  JOIN pg_class c ON c.relname = s.result_table AND c.relnamespace = 'bgtask_result'::regnamespace AND c.relkind = 'r'
  JOIN pg_roles o ON o.oid = c.relowner AND o.rolname = t.owner
  WHERE s.task_id = result_table.task_id AND s.n = result_table.n
$$;

-- Deletes ended tasks older than older_than (by end time) with their result tables, at most max_tasks per call
-- so that dropping thousands of tables never runs out of lock slots (max_locks_per_transaction): call it until
-- it returns 0. A role purges its own tasks; bgtask_admin every role's, but drops only tables it owns — the
-- others are left to their owners, whose next purge removes them.
CREATE OR REPLACE FUNCTION bgtask.purge(older_than interval DEFAULT NULL, max_tasks integer DEFAULT 1000)
RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_age interval := coalesce(older_than, bgtask._setting('retention')::interval, interval '30 days');
  v_ids bigint[];
  v_table regclass;
  r record;
BEGIN
  SELECT array_agg(id) INTO v_ids FROM (
    SELECT id FROM bgtask.tbl_task
    WHERE state IN ('done', 'failed', 'cancelled', 'lost') AND coalesce(end_time, submitted_at) < clock_timestamp() - v_age
    ORDER BY id LIMIT max_tasks FOR UPDATE SKIP LOCKED) AS x;
  IF v_ids IS NULL THEN
    v_ids := '{}';
  END IF;
  FOR r IN SELECT s.task_id, s.n FROM bgtask.tbl_task_step s WHERE s.task_id = ANY (v_ids) AND s.result_table IS NOT NULL LOOP
    v_table := bgtask.result_table(r.task_id, r.n);
    IF v_table IS NOT NULL AND pg_has_role((SELECT relowner FROM pg_class WHERE oid = v_table), 'USAGE') THEN
      EXECUTE format('DROP TABLE IF EXISTS %s', v_table);
    END IF;
  END LOOP;
  DELETE FROM bgtask.tbl_task WHERE id = ANY (v_ids);
  -- Result tables of this role whose task is gone (purged by an admin who could not drop them).
  FOR r IN SELECT c.oid::regclass AS t FROM pg_class c
           WHERE c.relnamespace = 'bgtask_result'::regnamespace AND c.relkind = 'r'
             AND c.relowner = (SELECT oid FROM pg_roles WHERE rolname = current_user)
             AND c.relname ~ '^task_\d+_\d+(_[0-9a-f]{8})?$'
             AND NOT EXISTS (SELECT FROM bgtask.tbl_task_step s WHERE s.result_table = c.relname)
           LIMIT max_tasks LOOP
    EXECUTE format('DROP TABLE IF EXISTS %s', r.t);
  END LOOP;
  RETURN cardinality(v_ids);
END
$$;

-- The task list, newest first, paged by id (pass the last id seen as before_id). Ordinary roles get an explicit
-- owner predicate, which the (owner, id) index serves (row-level security alone measured 357 ms on 1 M rows,
-- against 0.09 ms: DESIGN.md §3). Running tasks carry live data from pg_stat_activity: the worker's wait event,
-- what blocks it, and lost when the supervisor is gone. Never writes: reap() is what records lost.
CREATE OR REPLACE FUNCTION bgtask.list_tasks(before_id bigint DEFAULT NULL, page_size integer DEFAULT 100,
                                             states text[] DEFAULT NULL)
RETURNS TABLE (id bigint, owner name, state text, info text, sql text, submitted_at timestamptz,
               start_time timestamptz, end_time timestamptz, step_count integer, step_current integer,
               rows_affected bigint, error jsonb, exit_reason text, cancel_requested boolean,
               wait_event_type text, wait_event text, worker_state text, blocked_by integer[], progress jsonb)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_all boolean := pg_has_role(current_user, 'bgtask_admin', 'MEMBER');
BEGIN
  RETURN QUERY
  SELECT t.id, t.owner,
         CASE WHEN t.state = 'running' AND bgtask._backend_alive(t.supervisor_pid, t.supervisor_start) IS false
              THEN 'lost' ELSE t.state END,
         t.info, t.sql, t.submitted_at, t.start_time, t.end_time, t.step_count, t.step_current, t.rows_affected,
         t.error, t.exit_reason, t.cancel_requested,
         w.wait_event_type, w.wait_event, w.state,
         CASE WHEN w.pid IS NOT NULL THEN pg_blocking_pids(w.pid) END,
         CASE WHEN w.pid IS NOT NULL THEN bgtask._progress(w.pid) END
  FROM (SELECT x.* FROM bgtask.tbl_task x
        WHERE (v_all OR x.owner = current_user)
          AND (before_id IS NULL OR x.id < before_id)
          AND (states IS NULL OR x.state = ANY (states))
        ORDER BY x.id DESC LIMIT page_size) AS t
  LEFT JOIN pg_stat_activity w
    ON t.state = 'running' AND w.pid = t.worker_pid AND w.backend_start = t.worker_start
  ORDER BY t.id DESC;
END
$$;

-- What pg_stat_progress_* says about a backend (CREATE INDEX, VACUUM, ANALYZE, CLUSTER, COPY), or NULL.
CREATE OR REPLACE FUNCTION bgtask._progress(p_pid integer) RETURNS jsonb
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT coalesce(
    (SELECT to_jsonb(p) || '{"kind": "create_index"}' FROM pg_stat_progress_create_index p WHERE p.pid = p_pid),
    (SELECT to_jsonb(p) || '{"kind": "vacuum"}' FROM pg_stat_progress_vacuum p WHERE p.pid = p_pid),
    (SELECT to_jsonb(p) || '{"kind": "analyze"}' FROM pg_stat_progress_analyze p WHERE p.pid = p_pid),
    (SELECT to_jsonb(p) || '{"kind": "cluster"}' FROM pg_stat_progress_cluster p WHERE p.pid = p_pid),
    (SELECT to_jsonb(p) || '{"kind": "copy"}' FROM pg_stat_progress_copy p WHERE p.pid = p_pid))
$$;

-- Stores the calling role's password in its user mapping on bgtask_loopback, so the server can open
-- connections to itself as that role without a password in any SQL text. Call it with a bind parameter (the
-- extension does; in psql use \prompt and :'var'). The password is tried first — a wrong one is refused, not
-- stored — and errors are re-raised without the statement text, whose CONTEXT would otherwise show it.
CREATE OR REPLACE FUNCTION bgtask.set_password(password text) RETURNS text
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_exists boolean;
  v_has_password boolean;
  v_link text := format('bgtask_pwcheck_%s', pg_backend_pid());
  v_state text;
  v_msg text;
  v_detail text;
  v_role text := current_setting('role');
BEGIN
  IF password IS NULL OR password = '' THEN
    RAISE EXCEPTION 'the password is empty' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  -- The mapping that logs in is the session user's, also after SET ROLE (see _connect).
  IF current_user <> session_user THEN
    PERFORM set_config('role', 'none', true);
  END IF;
  SELECT true, coalesce('password' = ANY (SELECT split_part(o, '=', 1) FROM unnest(umoptions) AS o), false)
  INTO v_exists, v_has_password
  FROM pg_user_mappings WHERE srvname = 'bgtask_loopback' AND usename = session_user;
  BEGIN
    IF coalesce(v_exists, false) THEN
      EXECUTE format('ALTER USER MAPPING FOR %I SERVER bgtask_loopback OPTIONS (%s password %L)',
                     session_user, CASE WHEN v_has_password THEN 'SET' ELSE 'ADD' END, password);
    ELSE
      EXECUTE format('CREATE USER MAPPING FOR %I SERVER bgtask_loopback OPTIONS (user %L, password %L)',
                     session_user, session_user, password);
    END IF;
    PERFORM bgtask._connect(v_link);
    PERFORM bgtask._disconnect(v_link);
  EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_msg = MESSAGE_TEXT, v_detail = PG_EXCEPTION_DETAIL;
    PERFORM bgtask._disconnect(v_link);
    IF v_state = '28P01' OR v_detail ILIKE '%password authentication failed%' THEN
      RAISE EXCEPTION 'the server refused this password for role %; nothing was stored', session_user
        USING ERRCODE = 'invalid_password', HINT = 'Give the password that role logs in with.';
    END IF;
    -- Never pass on the original context: it would quote the statement, and so the password.
    RAISE EXCEPTION 'could not store the password for role %: %', session_user,
                    replace(v_msg, password, '********')
      USING ERRCODE = v_state, DETAIL = replace(coalesce(v_detail, ''), password, '********');
  END;
  -- The caller's role again (see _connect: the SET LOCAL above would last until the caller's transaction ends).
  IF v_role <> 'none' THEN
    PERFORM set_config('role', v_role, true);
  END IF;
  RETURN format('password stored for role %s: background tasks can run', session_user);
END
$$;

REVOKE ALL ON ALL FUNCTIONS IN SCHEMA bgtask FROM PUBLIC;
REVOKE ALL ON ALL PROCEDURES IN SCHEMA bgtask FROM PUBLIC;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA bgtask TO bgtask_user;
GRANT EXECUTE ON ALL PROCEDURES IN SCHEMA bgtask TO bgtask_user;
GRANT EXECUTE ON FUNCTION bgtask.version() TO PUBLIC;

COMMIT;
