/** What the bgtask migrations make in a database, for tests that check an install changed nothing or matches another. */
import type { Client } from 'pg';

/**
 * Everything the migration makes, as sorted lines: functions (with a hash of their body, settings and grants),
 * tables, columns, indexes, constraints, policies, triggers, schemas, the loopback server, user mappings, roles,
 * the version and settings rows. Result tables in bgtask_result are task data, not schema: left out. `portable`
 * leaves out what differs between databases (name, install time, which roles stored a password).
 */
export async function schemaFingerprint(c: Client, portable = false): Promise<string[]> {
  const { rows } = await c.query(`
    with ns as (select oid from pg_namespace where nspname = 'bgtask')
    select 'schema ' || nspname || ' ' || pg_get_userbyid(nspowner) || ' ' || coalesce(nspacl::text, '') as l
      from pg_namespace where nspname in ('bgtask', 'bgtask_result')
    union all
    select 'proc ' || p.oid::regprocedure || ' ' || p.prokind::text || p.provolatile::text || p.prosecdef::text || ' ' || md5(p.prosrc)
           || ' ' || coalesce(p.proconfig::text, '') || ' ' || coalesce(p.proacl::text, '') || ' ' || coalesce(obj_description(p.oid, 'pg_proc'), '')
      from pg_proc p where p.pronamespace in (select oid from ns)
    union all
    select 'rel ' || c.oid::regclass || ' ' || c.relkind::text || c.relrowsecurity || c.relforcerowsecurity || ' ' || coalesce(c.relacl::text, '')
           || ' ' || coalesce(obj_description(c.oid, 'pg_class'), '')
      from pg_class c where c.relnamespace in (select oid from ns)
    union all
    select 'col ' || a.attrelid::regclass || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod) || ' ' || a.attnotnull
           || ' ' || coalesce(pg_get_expr(d.adbin, d.adrelid), '') || ' ' || a.attidentity::text
      from pg_attribute a join pg_class c on c.oid = a.attrelid left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
     where c.relnamespace in (select oid from ns) and c.relkind in ('r', 'v') and a.attnum > 0 and not a.attisdropped
    union all
    select 'index ' || pg_get_indexdef(i.indexrelid) from pg_index i join pg_class c on c.oid = i.indrelid where c.relnamespace in (select oid from ns)
    union all
    select 'constraint ' || conrelid::regclass || ' ' || conname || ' ' || pg_get_constraintdef(oid) from pg_constraint where connamespace in (select oid from ns)
    union all
    select 'policy ' || polrelid::regclass || ' ' || polname || ' ' || polcmd::text || polpermissive || ' ' || polroles::regrole[]::text
           || ' ' || coalesce(pg_get_expr(polqual, polrelid), '') || ' ' || coalesce(pg_get_expr(polwithcheck, polrelid), '')
      from pg_policy where polrelid in (select oid from pg_class where relnamespace in (select oid from ns))
    union all
    select 'trigger ' || pg_get_triggerdef(t.oid) from pg_trigger t join pg_class c on c.oid = t.tgrelid where c.relnamespace in (select oid from ns) and not t.tgisinternal
    union all
    select 'extension ' || extname || ' ' || extversion || ' ' || extnamespace::regnamespace from pg_extension where extname = 'dblink'
    union all
    select 'server ' || srvname || ' ' || pg_get_userbyid(srvowner) || ' ' || replace(srvoptions::text, current_database(), 'DB') || ' ' || coalesce(srvacl::text, '')
      from pg_foreign_server where srvname = 'bgtask_loopback'
    union all
    select 'mapping ' || usename || ' ' || coalesce(umoptions::text, '') from pg_user_mappings where srvname = 'bgtask_loopback' and not $1
    union all
    select 'role ' || r.rolname || ' ' || r.rolcanlogin || ' ' || coalesce((select string_agg(m.roleid::regrole::text, ',' order by m.roleid::regrole::text)
                                                                            from pg_auth_members m where m.member = r.oid), '')
      from pg_roles r where r.rolname in ('bgtask_user', 'bgtask_admin')
    union all
    select 'version ' || version || ' ' || name || ' ' || applied_by || case when $1 then '' else ' ' || applied_at end from bgtask.schema_version
    union all
    select 'setting ' || setting || '=' || value from bgtask.settings
    order by 1`, [portable]);
  return rows.map((r) => r.l);
}
