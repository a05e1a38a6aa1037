-- bgtask 000002: SCRAM pass-through (PostgreSQL 18+), so a role can run tasks without storing any password.
--
-- Apply as a superuser (or the managed service's admin role) with plain psql, after 000001_init.sql:
--   psql -v ON_ERROR_STOP=1 -d yourdb -f sql/000002_scram_passthrough.sql
-- Applying it twice is harmless, and it refuses to run over a newer schema. It applies on PostgreSQL 14–17 too:
-- there bgtask.use_scram_passthrough() explains that it needs 18, and everything else works as before.
--
-- PostgreSQL 18's dblink can log in to the loopback server with the SCRAM keys of the session that calls it
-- (use_scram_passthrough) instead of a stored password; the supervisor and worker backends logged in that way
-- hold the keys too, so the hops submitter → supervisor → worker all work (DESIGN.md §3, verified on 18.4).
-- It works only for sessions that logged in with SCRAM (not peer, trust, cert, GSS, most poolers), and a
-- password changed after the login breaks the next connect: it is an opt-in, per role, by
-- bgtask.use_scram_passthrough(), and bgtask.set_password() stays the way for every other case.
--
-- The option is set on each opting-in role's user mapping, never on the server bgtask_loopback. Verified on
-- 18.4: with use_scram_passthrough on the server, a SCRAM session connects with its keys even when its mapping
-- holds a wrong password, so set_password would store a wrong password without noticing, and a role whose
-- password changed since it logged in could no longer connect although its stored password was right. dblink
-- reads the server's option before the mapping's, so a server-level 'false' (its owner's veto) wins.

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
      USING HINT = 'Apply the files in sql/ in order: 000001_init.sql first, then this one.';
  END IF;
  v := (SELECT max(version) FROM bgtask.schema_version);
  IF v > 2 THEN
    RAISE EXCEPTION 'the bgtask schema is already at version %, newer than 000002_scram_passthrough.sql', v
      USING HINT = 'Apply only the files in sql/ numbered above the installed version.';
  END IF;
  IF v IS NULL OR v < 1 THEN
    RAISE EXCEPTION 'the bgtask schema in database % has no version 1', pg_catalog.current_database()
      USING HINT = 'Apply the files in sql/ in order: 000001_init.sql first, then this one.';
  END IF;
END
$$;
INSERT INTO bgtask.schema_version (version, name) VALUES (2, '000002_scram_passthrough') ON CONFLICT (version) DO NOTHING;

-- The value of one option in a catalog options array ('name=value' strings), or NULL.
CREATE OR REPLACE FUNCTION bgtask._option(p_options text[], p_name text) RETURNS text
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT o.option_value FROM pg_options_to_table(p_options) AS o WHERE o.option_name = p_name
$$;

-- How this session logged in: the method part of system_user ('scram-sha-256', 'peer', 'password', 'cert'…),
-- 'trust' when nothing authenticated it, NULL before PostgreSQL 16 (no system_user). Through a pooler it is how
-- the pooler logged in. Only for messages: 'md5' in pg_hba.conf still runs SCRAM for a SCRAM-stored password.
CREATE OR REPLACE FUNCTION bgtask._login_method() RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v text;
BEGIN
  IF current_setting('server_version_num')::int < 160000 THEN
    RETURN NULL;
  END IF;
  -- Dynamic, so that the function is created on 14 and 15 too, where system_user does not parse.
  EXECUTE 'SELECT pg_catalog.split_part(system_user, '':'', 1)' INTO v;
  RETURN coalesce(v, 'trust');
END
$$;

-- Whether dblink passes on the session's SCRAM keys for this mapping: the server's option wins over the
-- mapping's (dblink reads the server's first). Values as dblink's defGetBoolean reads them.
CREATE OR REPLACE FUNCTION bgtask._passthrough(p_mapping_options text[]) RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT coalesce(lower(coalesce(bgtask._option(s.srvoptions, 'use_scram_passthrough'),
                                 bgtask._option(p_mapping_options, 'use_scram_passthrough'))) IN ('true', 'on', '1'), false)
  FROM (SELECT 1) one
  LEFT JOIN pg_foreign_server s ON s.srvname = 'bgtask_loopback'
$$;

-- Brings back what the engine needs outside its schema after DROP EXTENSION dblink CASCADE (which takes the
-- loopback server and every user mapping with it) or a dropped loopback server. Re-applying 000001_init.sql did
-- that until this file existed; it now refuses to run over version 2, so this function is the repair, and this
-- file calls it (re-applying the newest file repairs). dblink goes back into the schema the engine's wrappers
-- (bgtask._dblink_*) name, so they work again unchanged. Needs a superuser or the service's admin role, like
-- the install; stored passwords went with the server, so each role stores its own again. Idempotent.
CREATE OR REPLACE FUNCTION bgtask.repair() RETURNS text
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_schema text;
  v_done text[] := '{}';
BEGIN
  IF NOT EXISTS (SELECT FROM pg_extension WHERE extname = 'dblink') THEN
    IF NOT EXISTS (SELECT FROM pg_available_extensions WHERE name = 'dblink') THEN
      RAISE EXCEPTION 'the dblink extension is not available on this server'
        USING HINT = 'Install the PostgreSQL contrib package (Debian: postgresql-contrib); managed services (RDS, Cloud SQL, Azure) ship dblink but may need it allow-listed (Azure: azure.extensions).';
    END IF;
    -- As 000001 wrote it, with %I: a valid identifier as it stands.
    v_schema := coalesce((SELECT substring(p.prosrc FROM '^SELECT (.+)\.dblink_connect\(') FROM pg_proc p
                          WHERE p.oid = to_regprocedure('bgtask._dblink_connect(text,text)')), 'public');
    EXECUTE format('CREATE EXTENSION dblink SCHEMA %s', v_schema);
    v_done := v_done || format('created extension dblink in schema %s', v_schema);
  END IF;
  IF NOT EXISTS (SELECT FROM pg_foreign_server WHERE srvname = 'bgtask_loopback') THEN
    EXECUTE format('CREATE SERVER bgtask_loopback FOREIGN DATA WRAPPER dblink_fdw OPTIONS (host %L, port %L, dbname %L, options %L)',
                   '127.0.0.1', current_setting('port'), current_database(), bgtask._loopback_options());
    GRANT USAGE ON FOREIGN SERVER bgtask_loopback TO bgtask_user;
    v_done := v_done || format('created server bgtask_loopback for 127.0.0.1 port %s database %s', current_setting('port'), current_database());
  END IF;
  IF cardinality(v_done) = 0 THEN
    RETURN 'nothing to repair: dblink and the server bgtask_loopback are in place';
  END IF;
  RETURN array_to_string(v_done, '; ') || '; each role now stores its password again (select bgtask.set_password(''…'')) or, on 18+, runs select bgtask.use_scram_passthrough();';
END
$$;
DO $$ BEGIN PERFORM bgtask.repair(); END $$;

-- Redefined from 000001_init.sql (the same function apart from what SCRAM pass-through adds, and hints that name
-- bgtask.repair() instead of re-applying 000001, which refuses now): the hint for a role without a mapping names
-- both ways on 18+, and a mapping without a password gets its own explanations —
-- a session that did not log in with SCRAM (dblink refuses before connecting, 2F003; a superuser's libpq finds
-- no password), and keys that no longer match because the password changed after this session logged in.
-- 2F003 is also what dblink raises when the server let the link in without asking for a password at all.
CREATE OR REPLACE FUNCTION bgtask._connect(p_link text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_role text := current_setting('role');
  v_detail text;
  v_options text[];
  v_has_password boolean;
  v_passthrough boolean;
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
  IF current_user <> session_user THEN
    PERFORM set_config('role', 'none', true);
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
  BEGIN
    PERFORM bgtask._dblink_connect(p_link, 'bgtask_loopback');
  EXCEPTION WHEN sqlclient_unable_to_establish_sqlconnection OR invalid_authorization_specification
                 OR invalid_password OR insufficient_privilege OR fdw_error OR duplicate_object
                 OR prohibited_sql_statement_attempted THEN
    GET STACKED DIAGNOSTICS v_detail = PG_EXCEPTION_DETAIL;
    IF v_passthrough AND NOT v_has_password AND coalesce(v_detail, '') NOT ILIKE '%not request a password%'
       AND (SQLERRM ILIKE '%password or GSSAPI delegated credentials required%' OR v_detail ILIKE '%no password supplied%') THEN
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
    ELSIF SQLERRM ILIKE '%password is required%' OR v_detail ILIKE '%password is required%'
          OR SQLERRM ILIKE '%password%not%request%' OR v_detail ILIKE '%not request a password%' THEN
      RAISE EXCEPTION 'the server let the loopback connection in without asking for a password, which dblink refuses for ordinary roles'
        USING ERRCODE = 'insufficient_privilege', DETAIL = coalesce(v_detail, SQLERRM),
              HINT = 'Make pg_hba.conf require scram-sha-256 (or md5) for host 127.0.0.1 and this database, then reload.';
    END IF;
    RAISE EXCEPTION 'could not open the loopback connection for background tasks: %', SQLERRM
      USING ERRCODE = 'sqlclient_unable_to_establish_sqlconnection', DETAIL = coalesce(v_detail, ''),
            HINT = 'Check that the server accepts connections on 127.0.0.1 (listen_addresses), port and database of server bgtask_loopback (select bgtask.repair_loopback() re-points it).';
  END;
  -- The caller's role again: the SET LOCAL role above would otherwise last until the caller's transaction ends.
  IF v_role <> 'none' AND current_setting('role') IS DISTINCT FROM v_role THEN
    PERFORM set_config('role', v_role, true);
  END IF;
END
$$;

-- Redefined from 000001_init.sql (the same function apart from this): storing a password switches a mapping
-- that used SCRAM pass-through back to the password, so the password is what the test connection checks —
-- with pass-through still on, a SCRAM session would connect with its keys and a wrong password would be stored
-- (a use_scram_passthrough 'true' that a DBA put on the server itself has that effect for every role). It also
-- names the user in a mapping made by hand without one, as libpq would otherwise log in as the OS user.
CREATE OR REPLACE FUNCTION bgtask.set_password(password text) RETURNS text
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_role text := current_setting('role');
  v_exists boolean;
  v_options text[];
  v_alter text[];
  v_link text := format('bgtask_pwcheck_%s', pg_backend_pid());
  v_state text;
  v_msg text;
  v_detail text;
BEGIN
  IF password IS NULL OR password = '' THEN
    RAISE EXCEPTION 'the password is empty' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  -- The mapping that logs in is the session user's, also after SET ROLE (see _connect).
  IF current_user <> session_user THEN
    PERFORM set_config('role', 'none', true);
  END IF;
  SELECT true, umoptions INTO v_exists, v_options
  FROM pg_user_mappings WHERE srvname = 'bgtask_loopback' AND usename = session_user;
  BEGIN
    IF coalesce(v_exists, false) THEN
      v_alter := ARRAY[format('%s password %L', CASE WHEN bgtask._option(v_options, 'password') IS NOT NULL THEN 'SET' ELSE 'ADD' END, password)];
      IF bgtask._option(v_options, 'user') IS NULL THEN
        v_alter := v_alter || format('ADD user %L', session_user);
      END IF;
      IF bgtask._option(v_options, 'use_scram_passthrough') IS NOT NULL THEN
        v_alter := v_alter || 'DROP use_scram_passthrough'::text;
      END IF;
      EXECUTE format('ALTER USER MAPPING FOR %I SERVER bgtask_loopback OPTIONS (%s)', session_user, array_to_string(v_alter, ', '));
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

-- Lets the calling role run background tasks with no password stored anywhere (PostgreSQL 18+): its user
-- mapping on bgtask_loopback names only the role and use_scram_passthrough, and dblink logs in with the SCRAM
-- keys of the submitting session. It test-connects first and changes nothing when that fails: on a server
-- before 18, from a session that did not log in with SCRAM, or when the server's owner switched it off. A
-- password stored before is removed. Tasks then run only when submitted from SCRAM sessions; set_password
-- switches back.
CREATE OR REPLACE FUNCTION bgtask.use_scram_passthrough() RETURNS text
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_role text := current_setting('role');
  v_link text := format('bgtask_scramcheck_%s', pg_backend_pid());
  v_exists boolean;
  v_options text[];
  v_server text;
  v_alter text[];
  v_state text;
  v_msg text;
  v_detail text;
  v_hint text;
  v_fallback text := 'Store a password instead: select bgtask.set_password(''…'') — in psql: \prompt ''Password: '' pw  then  select bgtask.set_password(:''pw'');';
BEGIN
  IF current_setting('server_version_num')::int < 180000 THEN
    RAISE EXCEPTION 'SCRAM pass-through needs PostgreSQL 18 or newer; this server is %', current_setting('server_version')
      USING ERRCODE = 'feature_not_supported', HINT = v_fallback;
  END IF;
  IF NOT EXISTS (SELECT FROM pg_extension WHERE extname = 'dblink')
     OR NOT EXISTS (SELECT FROM pg_foreign_server WHERE srvname = 'bgtask_loopback') THEN
    PERFORM bgtask._connect(v_link);   -- raises what is missing and what to run
  END IF;
  v_server := (SELECT bgtask._option(srvoptions, 'use_scram_passthrough') FROM pg_foreign_server WHERE srvname = 'bgtask_loopback');
  IF v_server IS NOT NULL AND lower(v_server) NOT IN ('true', 'on', '1') THEN
    RAISE EXCEPTION 'SCRAM pass-through is switched off on server bgtask_loopback (use_scram_passthrough %); nothing was changed', v_server
      USING ERRCODE = 'insufficient_privilege',   -- not 55000: clients read 55000 + "loopback" as a cloned database
            HINT = v_fallback || ' Or ask the owner of server bgtask_loopback to run: ALTER SERVER bgtask_loopback OPTIONS (DROP use_scram_passthrough);';
  END IF;
  IF current_user <> session_user THEN
    PERFORM set_config('role', 'none', true);
  END IF;
  SELECT true, umoptions INTO v_exists, v_options
  FROM pg_user_mappings WHERE srvname = 'bgtask_loopback' AND usename = session_user;
  BEGIN
    IF coalesce(v_exists, false) THEN
      v_alter := ARRAY[format('%s user %L', CASE WHEN bgtask._option(v_options, 'user') IS NULL THEN 'ADD' ELSE 'SET' END, session_user),
                       format('%s use_scram_passthrough %L', CASE WHEN bgtask._option(v_options, 'use_scram_passthrough') IS NULL THEN 'ADD' ELSE 'SET' END, 'true')];
      IF bgtask._option(v_options, 'password') IS NOT NULL THEN
        v_alter := v_alter || 'DROP password'::text;
      END IF;
      EXECUTE format('ALTER USER MAPPING FOR %I SERVER bgtask_loopback OPTIONS (%s)', session_user, array_to_string(v_alter, ', '));
    ELSE
      -- The mapping must still name the user: without it libpq falls back to the server's OS user name.
      EXECUTE format('CREATE USER MAPPING FOR %I SERVER bgtask_loopback OPTIONS (user %L, use_scram_passthrough %L)',
                     session_user, session_user, 'true');
    END IF;
    PERFORM bgtask._connect(v_link);
    PERFORM bgtask._disconnect(v_link);
  EXCEPTION WHEN OTHERS THEN
    -- Leaving this block rolls the mapping back: a refused pass-through changes nothing.
    GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_msg = MESSAGE_TEXT, v_detail = PG_EXCEPTION_DETAIL, v_hint = PG_EXCEPTION_HINT;
    PERFORM bgtask._disconnect(v_link);
    IF v_state = 'HV00D' THEN   -- fdw_invalid_option_name: this server's dblink does not know the option
      RAISE EXCEPTION 'dblink on this server does not support use_scram_passthrough; nothing was changed'
        USING ERRCODE = 'feature_not_supported', DETAIL = v_msg, HINT = v_fallback;
    ELSIF v_msg LIKE '%did not authenticate with SCRAM%' THEN
      RAISE EXCEPTION 'your session did not authenticate with SCRAM (peer, trust, cert, GSS or a pooler): store a password with bgtask.set_password instead; nothing was changed'
        USING ERRCODE = 'invalid_authorization_specification',
              DETAIL = format('SCRAM pass-through passes on the keys of a scram-sha-256 login; this session of role %s logged in with %s.',
                              session_user, coalesce(bgtask._login_method(), 'another method')),
              HINT = v_fallback || ' Or log in with a password (scram-sha-256) and run select bgtask.use_scram_passthrough(); again.';
    ELSIF v_state = '28P01' THEN
      RAISE EXCEPTION 'the server refused the SCRAM pass-through login of role %: its password changed after this session logged in; nothing was changed', session_user
        USING ERRCODE = 'invalid_password', DETAIL = coalesce(v_detail, ''),
              HINT = 'Connect again with the current password and run select bgtask.use_scram_passthrough(); from the new session.';
    END IF;
    RAISE EXCEPTION 'could not switch role % to SCRAM pass-through: %; nothing was changed', session_user, v_msg
      USING ERRCODE = v_state, DETAIL = coalesce(v_detail, ''), HINT = coalesce(v_hint, '');
  END;
  -- The caller's role again (see _connect: the SET LOCAL above would last until the caller's transaction ends).
  IF v_role <> 'none' THEN
    PERFORM set_config('role', v_role, true);
  END IF;
  RETURN format('role %s runs background tasks with SCRAM pass-through now: no password is stored; submit from sessions that log in with a password (scram-sha-256)',
                session_user);
END
$$;
COMMENT ON FUNCTION bgtask.use_scram_passthrough() IS
  'PostgreSQL 18+: run background tasks with the SCRAM keys of the submitting session instead of a stored password; bgtask.set_password switches back.';

-- How the calling role's loopback connection authenticates, for clients that show it and say why SCRAM
-- pass-through is unavailable before anyone tries: mapping 'password', 'scram_passthrough', 'none' (no mapping)
-- or 'no_password' (a mapping a DBA made without one); login_method as in _login_method();
-- scram_passthrough_unavailable NULL when use_scram_passthrough() may work, else why not. It never connects: a
-- password changed since login is found only by trying.
CREATE OR REPLACE FUNCTION bgtask.auth_status() RETURNS jsonb
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_found boolean;
  v_options text[];
  v_server text := (SELECT bgtask._option(srvoptions, 'use_scram_passthrough') FROM pg_foreign_server WHERE srvname = 'bgtask_loopback');
  v_method text := bgtask._login_method();
BEGIN
  IF current_user <> session_user THEN
    PERFORM set_config('role', 'none', true);
  END IF;
  SELECT true, m.umoptions INTO v_found, v_options
  FROM pg_user_mappings m
  WHERE m.srvname = 'bgtask_loopback' AND m.usename IN (session_user, 'public')
  ORDER BY m.usename = 'public'
  LIMIT 1;
  RETURN jsonb_build_object(
    'mapping', CASE WHEN NOT coalesce(v_found, false) THEN 'none'
                    WHEN bgtask._passthrough(v_options) AND (bgtask._option(v_options, 'password') IS NULL OR v_method = 'scram-sha-256')
                      THEN 'scram_passthrough'
                    WHEN bgtask._option(v_options, 'password') IS NOT NULL THEN 'password'
                    ELSE 'no_password' END,
    'login_method', v_method,
    'scram_passthrough_unavailable',
      CASE WHEN current_setting('server_version_num')::int < 180000
             THEN format('SCRAM pass-through needs PostgreSQL 18 or newer; this server is %s', current_setting('server_version'))
           WHEN v_server IS NOT NULL AND lower(v_server) NOT IN ('true', 'on', '1')
             THEN 'SCRAM pass-through is switched off on server bgtask_loopback'
           WHEN v_method NOT IN ('scram-sha-256', 'md5')
             THEN 'your session did not authenticate with SCRAM (peer, trust, cert, GSS or a pooler): store a password with bgtask.set_password instead'
      END);
END
$$;

-- As 000001: nothing here is PUBLIC but version(); members of bgtask_user may call everything.
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA bgtask FROM PUBLIC;
REVOKE ALL ON ALL PROCEDURES IN SCHEMA bgtask FROM PUBLIC;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA bgtask TO bgtask_user;
GRANT EXECUTE ON ALL PROCEDURES IN SCHEMA bgtask TO bgtask_user;
GRANT EXECUTE ON FUNCTION bgtask.version() TO PUBLIC;

COMMIT;
