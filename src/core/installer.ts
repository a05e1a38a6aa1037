import type { ClientBase } from 'pg';
import { latestVersion, migrations, queries } from './generated/sql';
import { TaskError, toTaskError } from './errors';
import { Logger, silentLogger } from './logger';

/** What a database has, and what it needs before tasks can run there. */
export interface SchemaStatus {
  /** ok: ready; missing: no bgtask schema; outdated: older than this client; newer: a version this client does not know. */
  state: 'ok' | 'missing' | 'outdated' | 'newer';
  installedVersion: number;
  latestVersion: number;
  dblinkInstalled: string | null;
  dblinkAvailable: boolean;
  serverVersionNum: number;
  inRecovery: boolean;
  currentUser: string;
  isSuperuser: boolean;
  isBgtaskUser: boolean;
}

/** Reads the state of the schema in the database the client is connected to. Never writes. */
export async function schemaStatus(client: ClientBase): Promise<SchemaStatus> {
  let s;
  let installedVersion = 0;
  try {
    s = (await client.query(queries.schemaStatus)).rows[0];
    if (s.has_schema) installedVersion = Number((await client.query(queries.schemaVersion)).rows[0].version);
  } catch (e) {
    const err = toTaskError(e);
    // The schema exists but this role has no USAGE on it (not a member of bgtask_user): to_regclass() and the
    // version query both fail with "permission denied for schema bgtask". Say what grants it instead.
    if (err.reason === 'notPermitted') {
      const role = s?.current_user ?? (client as { user?: string }).user ?? 'this role';
      throw new TaskError(`Role ${role} may not use background tasks in this database.`, 'notPermitted', {
        sqlstate: err.sqlstate,
        hint: `A superuser (or the database's admin role) should run: GRANT bgtask_user TO ${role};`,
        cause: e,
      });
    }
    throw err;
  }
  return {
    state: installedVersion === 0 ? 'missing' : installedVersion < latestVersion ? 'outdated' : installedVersion > latestVersion ? 'newer' : 'ok',
    installedVersion,
    latestVersion,
    dblinkInstalled: s.dblink_installed,
    dblinkAvailable: s.dblink_available,
    serverVersionNum: s.server_version_num,
    inRecovery: s.in_recovery,
    currentUser: s.current_user,
    isSuperuser: s.is_superuser,
    isBgtaskUser: s.is_bgtask_user,
  };
}

/**
 * What keeps a role from using background tasks with this client, as the TaskError to show, or undefined when
 * the schema is ready. Who can fix it decides the hint: a superuser installs or upgrades, anyone else asks one.
 */
export function schemaProblem(status: SchemaStatus): TaskError | undefined {
  const who = status.isSuperuser ? 'run "Install or Upgrade Schema" (PG Tasks)' : 'ask a superuser (or the database\'s admin role) to run "Install or Upgrade Schema" (PG Tasks)';
  const files = migrations.filter((m) => m.version > status.installedVersion).map((m) => `sql/${m.name}.sql`);
  const byHand = files.length ? `, or apply ${files.join(' then ')} with psql -v ON_ERROR_STOP=1 -f` : '';
  switch (status.state) {
    case 'ok':
      return undefined;
    case 'missing':
      return new TaskError('The bgtask schema is not installed in this database.', 'noSchema', { hint: `To install it, ${who}${byHand}.` });
    case 'outdated':
      return new TaskError(
        `The bgtask schema in this database is version ${status.installedVersion}, older than this extension needs (${status.latestVersion}).`,
        'schemaTooOld',
        { hint: `To upgrade it, ${who}${byHand}. Tasks and stored passwords are kept.` },
      );
    case 'newer':
      return new TaskError(
        `The bgtask schema in this database is version ${status.installedVersion}, newer than this extension knows (${status.latestVersion}).`,
        'schemaTooNew',
        { hint: 'Update the PG Background Tasks extension.' },
      );
  }
}

/** A migration file refused because another installer got there first ("already at version N"): 000001 on. */
const ALREADY_NEWER = /already at version \d+/;

/**
 * Installs or upgrades the bgtask schema by applying the files of sql/ that are newer than the installed
 * version, in order, each as it is (a file is one transaction that takes its own advisory lock, so two
 * installers at once apply it one after the other, harmlessly). Needs a superuser or the service's admin role.
 * Refuses a database whose schema is newer than this client knows.
 */
export async function installSchema(client: ClientBase, log: Logger = silentLogger): Promise<{ from: number; to: number; applied: string[] }> {
  const status = await schemaStatus(client);
  if (status.inRecovery) {
    throw new TaskError('This server is a standby: install the schema on the primary.', 'readOnly');
  }
  if (status.state === 'newer') throw schemaProblem(status)!;
  if (!status.dblinkInstalled && !status.dblinkAvailable) {
    throw new TaskError('The dblink extension is not available on this server.', 'noDblink', {
      hint: 'Install the PostgreSQL contrib package on the server (Debian: postgresql-contrib), or allow-list dblink on a managed service.',
    });
  }
  const onNotice = (n: { severity?: string; message?: string }) => log.info(`install: ${n.severity ?? 'NOTICE'}: ${n.message ?? ''}`);
  client.on('notice', onNotice);
  const applied: string[] = [];
  // Another installer may apply files between our status read and each file's own lock. No session-level lock
  // here (a transaction pooler would hand its unlock to another server connection): re-read the version before
  // each file, and when a file refuses because the schema moved past it meanwhile, read again and go on.
  let installed = status.installedVersion;
  try {
    for (const m of migrations) {
      if (m.version <= installed) continue;
      if (installed > 0) installed = await installedVersion(client);
      if (m.version <= installed) continue;
      log.info(`install: applying ${m.name}`);
      try {
        await client.query(m.sql);
      } catch (e) {
        // The file's own BEGIN is still open after a failure: end it so the connection stays usable.
        await client.query(queries.rollback).catch((rollbackError: unknown) => log.warn(`install: rollback failed: ${String(rollbackError)}`));
        const err = toTaskError(e);
        if (ALREADY_NEWER.test(err.message)) {
          const now = await installedVersion(client);
          if (now > latestVersion) throw schemaProblem({ ...status, state: 'newer', installedVersion: now })!;
          if (now >= m.version) {
            log.info(`install: ${m.name} was applied by another installer meanwhile (now version ${now})`);
            installed = now;
            continue;
          }
        }
        if (err.sqlstate === '42501') {
          throw new TaskError(`Installing ${m.name} needs a superuser or the database's admin role: ${err.message}`, 'notPermitted', { sqlstate: err.sqlstate, cause: e });
        }
        throw err;
      }
      applied.push(m.name);
      installed = m.version;
    }
  } finally {
    client.off('notice', onNotice);
  }
  return { from: status.installedVersion, to: Math.max(status.installedVersion, latestVersion), applied };
}

async function installedVersion(client: ClientBase): Promise<number> {
  return Number((await client.query(queries.schemaVersion)).rows[0].version);
}
