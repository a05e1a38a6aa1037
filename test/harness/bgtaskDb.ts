/**
 * A database with the bgtask schema on a throwaway server, and the roles the tests act as:
 *   alice, bob  — ordinary login roles, members of bgtask_user, passwords stored with bgtask.set_password
 *   carol       — login role with bgtask_admin
 *   app_owner   — a NOLOGIN role (alice is a member), as applications own their tables
 * The schema is installed by the real installer (the files in sql/), exactly as a DBA's psql -f would.
 */
import * as crypto from 'node:crypto';
import { Client, Pool } from 'pg';
import { installSchema } from '../../src/core/installer';
import { TaskClient } from '../../src/core/taskClient';
import type { TaskDetail, TaskState } from '../../src/core/models';
import { FINISHED_STATES } from '../../src/core/models';
import { PgServer, startServer } from './pgServer';

export type Role = 'postgres' | 'alice' | 'bob' | 'carol';

export interface BgtaskDb {
  server: PgServer;
  database: string;
  password(role: Role): string;
  /** A pool for a role, in the test database or another one of the server (closed by close()). */
  pool(role: Role, database?: string): Pool;
  /** A TaskClient for a role, over its pool. */
  tasks(role: Role, database?: string): TaskClient;
  /** A fresh unpooled client for a role; the caller may end it, close() ends it if it did not. */
  client(role: Role, database?: string): Promise<Client>;
  /** Runs SQL as the superuser in the test database. */
  sql<T = any>(text: string, values?: unknown[]): Promise<T[]>;
  /** Waits until the task has ended (or reached one of `states`), polling its row; fails after timeoutMs. */
  waitFor(id: number, opts?: { role?: Role; database?: string; states?: readonly TaskState[]; timeoutMs?: number }): Promise<TaskDetail>;
  close(): Promise<void>;
}

/** Starts a server and prepares the test database; one per test file. */
export async function startBgtaskDb(opts: { settings?: Record<string, string> } = {}): Promise<BgtaskDb> {
  const server = await startServer({ settings: opts.settings });
  const database = 'bgtask_test';
  const passwords: Record<Role, string> = {
    postgres: server.superuser.password,
    alice: crypto.randomBytes(12).toString('base64url'),
    bob: crypto.randomBytes(12).toString('base64url'),
    carol: crypto.randomBytes(12).toString('base64url'),
  };
  const pools = new Map<string, Pool>();
  const clients: Client[] = [];
  try {
    for (const r of ['alice', 'bob', 'carol'] as const) await server.createRole(r, passwords[r]);
    await server.query('create role app_owner nologin');
    await server.createDatabase(database);
    const su = new Client(server.connectionConfig('postgres', passwords.postgres, database));
    await su.connect();
    try {
      await installSchema(su);
      await su.query('grant bgtask_user to alice, bob, app_owner; grant bgtask_admin to carol; grant app_owner to alice');
      await su.query('grant create on schema public to alice, bob, app_owner');
      await su.query('select bgtask.set_password($1)', [passwords.postgres]);
    } finally {
      await su.end();
    }
    for (const r of ['alice', 'bob', 'carol'] as const) {
      const c = new Client(server.connectionConfig(r, passwords[r], database));
      await c.connect();
      await c.query('select bgtask.set_password($1)', [passwords[r]]);
      await c.end();
    }
  } catch (e) {
    await server.stop();
    throw e;
  }
  const pool = (role: Role, dbName = database) => {
    let p = pools.get(`${role}@${dbName}`);
    if (!p) {
      p = new Pool({ ...server.connectionConfig(role, passwords[role], dbName), max: 4 });
      // An idle pooled client dies with the server on restart(); without a listener pg would crash the run.
      p.on('error', () => undefined);
      pools.set(`${role}@${dbName}`, p);
    }
    return p;
  };
  const db: BgtaskDb = {
    server,
    database,
    password: (role) => passwords[role],
    pool,
    tasks: (role, dbName) => new TaskClient(pool(role, dbName)),
    async client(role, dbName = database) {
      const c = new Client(server.connectionConfig(role, passwords[role], dbName));
      await c.connect();
      clients.push(c);
      return c;
    },
    async sql(text, values) {
      return (await pool('postgres').query(text, values)).rows;
    },
    waitFor: (id, o = {}) => waitForTask(db.tasks(o.role ?? 'postgres', o.database), id, o),
    async close() {
      for (const c of clients) await c.end().catch(() => undefined);   // ending an ended client is a no-op
      for (const p of pools.values()) await p.end();
      await server.stop();
    },
  };
  return db;
}

/** Waits until the task has ended (or reached one of `states`), reading it through `tasks`; fails after timeoutMs. */
export async function waitForTask(tasks: TaskClient, id: number, o: { states?: readonly TaskState[]; timeoutMs?: number } = {}): Promise<TaskDetail> {
  const states = o.states ?? FINISHED_STATES;
  const deadline = Date.now() + (o.timeoutMs ?? 30_000);
  let last: TaskDetail | undefined;
  let nap = 5;
  while (Date.now() < deadline) {
    last = await tasks.get(id);
    if (last && states.includes(last.state)) return last;
    await new Promise((r) => setTimeout(r, nap));
    nap = Math.min(nap * 2, 100);
  }
  throw new Error(`task #${id} did not reach ${states.join('/')} in time; last seen: ${JSON.stringify(last)}`);
}
