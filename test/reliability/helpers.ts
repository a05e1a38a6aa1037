/**
 * Shared pieces of the reliability suite (issue 4): waiting for conditions with a deadline (never a fixed sleep),
 * counting the engine's backends, a TCP proxy the test can cut, a child process that submits and is SIGKILLed,
 * and `figure()`, the one line per case that the README's "Guarantees" table quotes.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as net from 'node:net';
import * as path from 'node:path';
import * as readline from 'node:readline';
import type { Client } from 'pg';
import type { BgtaskDb, Role } from '../harness/bgtaskDb';

// The generic waits live in the harness; the reliability files import them from here with the rest.
import { waitUntil } from '../harness/wait';
export { nap, waitUntil } from '../harness/wait';

/** A fresh unpooled client whose deliberate death (kill, cut, restart) is not an unhandled 'error' event. */
export async function connect(db: BgtaskDb, role: Role): Promise<Client> {
  const c = await db.client(role);
  c.on('error', () => undefined);
  return c;
}

type Queryable = { query(text: string, values?: unknown[]): Promise<{ rows: any[] }> };

/** bgtask.run_task over any client: text → one step, array → one step per element. */
export async function submitWith(c: Queryable, sql: string | string[], opts: { info?: string | null; options?: object } = {}): Promise<number> {
  const type = Array.isArray(sql) ? 'text[]' : 'text';
  const { rows } = await c.query(`select bgtask.run_task($1::${type}, $2, $3::jsonb) as id`, [sql, opts.info ?? null, JSON.stringify(opts.options ?? {})]);
  return Number(rows[0].id);
}

/** Backends the engine made (supervisors and workers), by application_name. */
export async function bgtaskBackends(db: BgtaskDb): Promise<number> {
  return (await db.sql(`select count(*)::int as n from pg_stat_activity where application_name like 'bgtask %'`))[0].n;
}

/** Waits until no supervisor or worker is left and no task is queued or running. */
export async function nothingLeft(db: BgtaskDb, timeoutMs = 15_000): Promise<void> {
  await waitUntil('every bgtask backend to go away and no task queued or running', async () =>
    (await bgtaskBackends(db)) === 0
    && (await db.sql(`select count(*)::int as n from bgtask.tbl_task where state in ('queued', 'running')`))[0].n === 0, timeoutMs);
}

/** Prints a case's figure; the README's Guarantees table quotes these lines. */
export function figure(text: string): void {
  console.log(`FIGURE ${text}`);
}

/** Milliseconds since start, as text. */
export const since = (start: number) => `${Date.now() - start} ms`;

// ---- a TCP proxy on 127.0.0.1 that the test can cut half-open ----

interface Pair { client: net.Socket; upstream: net.Socket }

/**
 * Forwards every connection to the server. `cut()` stops forwarding in both directions without closing anything
 * (each side still believes the connection is up: no FIN, no RST), `blockReplies()` only the server-to-client
 * direction, `destroy()` finally closes every socket.
 */
export class TcpProxy {
  readonly pairs: Pair[] = [];
  private server?: net.Server;
  port = 0;

  constructor(private readonly target: { host: string; port: number }) {}

  async start(): Promise<this> {
    this.server = net.createServer((client) => {
      const upstream = net.connect(this.target.port, this.target.host);
      for (const s of [client, upstream]) s.on('error', () => undefined);
      client.pipe(upstream);
      upstream.pipe(client);
      this.pairs.push({ client, upstream });
    });
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(0, '127.0.0.1', () => resolve());
    });
    this.port = (this.server.address() as net.AddressInfo).port;
    return this;
  }

  /** Server → client stops: whatever the server answers stays in the proxy's socket, unread. */
  blockReplies(): void {
    for (const { client, upstream } of this.pairs) {
      upstream.unpipe(client);
      upstream.pause();
    }
  }

  /** Both directions stop; the sockets stay open (a half-open connection, as after a dropped VPN). */
  cut(): void {
    for (const { client, upstream } of this.pairs) {
      upstream.unpipe(client);
      client.unpipe(upstream);
      upstream.pause();
      client.pause();
    }
  }

  async destroy(): Promise<void> {
    for (const { client, upstream } of this.pairs) {
      client.destroy();
      upstream.destroy();
    }
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}

// ---- a submitting client in its own process ----

export interface SubmitChild {
  child: ChildProcess;
  /** The task id the child printed right after run_task returned. */
  id: Promise<number>;
  /** Resolves when the process has exited (with its signal). */
  exited: Promise<NodeJS.Signals | number | null>;
}

/**
 * Starts `node --import tsx test/reliability/submitChild.ts`: it connects as `role` with application_name
 * `appName`, submits `sql`, prints `id <n>` and then does `after` (idle, busy with a long query, LISTEN, or
 * listing tasks in a loop) until it is killed. The password travels in the environment, never in argv.
 */
export function spawnSubmitter(db: BgtaskDb, opts: { role: Role; sql: string | string[]; appName: string; after?: 'idle' | 'busy' | 'listen' | 'list'; info?: string }): SubmitChild {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(__dirname, 'submitChild.ts')], {
    cwd: path.resolve(__dirname, '..', '..'),
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      ...process.env,
      BGTASK_CHILD: JSON.stringify({
        host: db.server.host, port: db.server.port, database: db.database, user: opts.role,
        sql: opts.sql, info: opts.info ?? null, appName: opts.appName, after: opts.after ?? 'idle',
      }),
      BGTASK_CHILD_PASSWORD: db.password(opts.role),
    },
  });
  let stderr = '';
  child.stderr!.on('data', (d) => { stderr += d; });
  const exited = new Promise<NodeJS.Signals | number | null>((resolve) => child.once('exit', (code, signal) => resolve(signal ?? code)));
  const id = new Promise<number>((resolve, reject) => {
    const lines = readline.createInterface({ input: child.stdout! });
    lines.on('line', (line) => {
      const m = /^id (\d+)$/.exec(line);
      if (m) resolve(Number(m[1]));
    });
    void exited.then((how) => reject(new Error(`submitting child exited (${how}) before printing an id: ${stderr.trim()}`)));
  });
  id.catch(() => undefined); // observed by the caller; never an unhandled rejection
  return { child, id, exited };
}
