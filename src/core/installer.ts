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
  if (status.state === 'newer') {
    throw new TaskError(
      `The bgtask schema in this database is version ${status.installedVersion}, newer than this extension knows (${latestVersion}).`,
      'schemaTooNew',
      { hint: 'Update the PG Background Tasks extension.' },
    );
  }
  if (!status.dblinkInstalled && !status.dblinkAvailable) {
    throw new TaskError('The dblink extension is not available on this server.', 'noDblink', {
      hint: 'Install the PostgreSQL contrib package on the server (Debian: postgresql-contrib), or allow-list dblink on a managed service.',
    });
  }
  const onNotice = (n: { severity?: string; message?: string }) => log.info(`install: ${n.severity ?? 'NOTICE'}: ${n.message ?? ''}`);
  client.on('notice', onNotice);
  const applied: string[] = [];
  try {
    for (const m of migrations) {
      if (m.version <= status.installedVersion) continue;
      log.info(`install: applying ${m.name}`);
      try {
        await client.query(m.sql);
      } catch (e) {
        // The file's own BEGIN is still open after a failure: end it so the connection stays usable.
        await client.query(queries.rollback).catch((rollbackError: unknown) => log.warn(`install: rollback failed: ${String(rollbackError)}`));
        const err = toTaskError(e);
        if (err.sqlstate === '42501') {
          throw new TaskError(`Installing ${m.name} needs a superuser or the database's admin role: ${err.message}`, 'notPermitted', { sqlstate: err.sqlstate, cause: e });
        }
        throw err;
      }
      applied.push(m.name);
    }
  } finally {
    client.off('notice', onNotice);
  }
  return { from: status.installedVersion, to: Math.max(status.installedVersion, latestVersion), applied };
}
