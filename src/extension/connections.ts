import * as vscode from 'vscode';
import type { Client, ClientConfig, Pool } from 'pg';
import { resolveConnection, type ResolvedConnection } from '../core/connectionSettings';
import { toTaskError, type TaskError } from '../core/errors';
import type { SchemaStatus } from '../core/installer';
import type { TaskClient } from '../core/taskClient';
import type { TaskWatcher, TaskEvent } from '../core/taskWatcher';
import { config, type SavedConnection } from './config';
import { core } from './lazy';
import type { Log } from './log';
import { isUnreachable } from './problems';

/** What a connection can do now; each state other than ready has a button in the UI that fixes it. */
export type ConnectionState = 'checking' | 'ready' | 'noSchema' | 'outdated' | 'newer' | 'noDblink' | 'noPassword' | 'error';

const secretKey = (name: string) => `pgTasks.password.${name}`;
/** Re-checks of an unreachable server back off from this… */
const RECHECK_MIN_MS = 15_000;
/** …to this, so a server down for the night costs a connection attempt every few minutes, not a stream. */
const RECHECK_MAX_MS = 5 * 60_000;

/**
 * One saved server: a small pg pool, the TaskClient over it, and a TaskWatcher (LISTEN bgtask) that feeds
 * onDidChangeTasks. The password is read from SecretStorage only when the server asks for it. The settings are
 * resolved (and refused when invalid) at once; the pool and the TaskClient are made on first use, which loads
 * pg (dist/core.js, see lazy.ts) after activation rather than during it.
 */
export class Connection implements vscode.Disposable {
  state: ConnectionState = 'checking';
  /** The failure behind state 'error' (or the reason for another state), for tooltips and buttons. */
  problem: TaskError | undefined;
  schema: SchemaStatus | undefined;
  readonly resolved: ResolvedConnection;
  private readonly pgConfig: ClientConfig;
  private poolInstance: Pool | undefined;
  private tasksInstance: TaskClient | undefined;
  private disposed = false;
  private watcher: TaskWatcher | undefined;
  private readonly taskEvents = new vscode.EventEmitter<TaskEvent>();
  readonly onDidChangeTasks = this.taskEvents.event;

  constructor(
    readonly saved: SavedConnection,
    private readonly secrets: vscode.SecretStorage,
    private readonly log: Log,
  ) {
    this.resolved = resolveConnection(saved, process.env, { password: () => this.password() });
    this.pgConfig = this.resolved.toPgConfig();
  }

  private get pool(): Pool {
    if (!this.poolInstance) {
      const pool = new (core().Pool)({ ...this.pgConfig, max: 4, idleTimeoutMillis: 30_000 });
      // A pooled client's error (server restart, network drop) must not crash the extension host.
      pool.on('error', (e) => this.log.warn(`${this.name}: pooled connection lost: ${e.message}`));
      // Used after dispose(): refuse as an ended pool does, and hold nothing open.
      if (this.disposed) pool.end().catch(() => undefined);
      this.poolInstance = pool;
    }
    return this.poolInstance;
  }

  get tasks(): TaskClient {
    return (this.tasksInstance ??= new (core().TaskClient)(this.pool, this.log));
  }

  get name(): string {
    return this.saved.name;
  }

  async password(): Promise<string | undefined> {
    return this.secrets.get(secretKey(this.name));
  }

  /** Connects, reads the schema status and whether the role has a stored password; starts watching when ready. */
  async check(): Promise<ConnectionState> {
    this.state = 'checking';
    this.problem = undefined;
    try {
      const client = await this.pool.connect();
      try {
        this.schema = await core().schemaStatus(client);
      } finally {
        client.release();
      }
      const s = this.schema;
      if (!s.dblinkInstalled && !s.dblinkAvailable) this.state = 'noDblink';
      else if (s.state === 'missing') this.state = 'noSchema';
      else if (s.state === 'outdated') this.state = 'outdated';
      else if (s.state === 'newer') this.state = 'newer';
      else if (!(await this.tasks.hasPassword())) this.state = 'noPassword';
      else this.state = 'ready';
    } catch (e) {
      this.problem = toTaskError(e);
      this.state = 'error';
      this.log.warn(`${this.name}: ${this.problem.message}`);
    }
    if (this.state === 'ready' || this.state === 'noPassword') this.startWatching();
    return this.state;
  }

  /** A fresh client outside the pool (the watcher's LISTEN connection, installs). The caller ends it. */
  async newClient(): Promise<Client> {
    const client: Client = new (core().Client)(this.resolved.toPgConfig());
    try {
      await client.connect();
    } catch (e) {
      // pg may leave the socket open after a failed login: close it, or the server keeps a backend waiting.
      client.end().catch(() => undefined); // already failed; the caller reports the first error
      throw e;
    }
    return client;
  }

  private startWatching(): void {
    if (this.watcher) return;
    this.watcher = new (core().TaskWatcher)(() => this.newClient(), (e) => this.taskEvents.fire(e), { log: this.log });
    this.watcher.start();
  }

  async storePassword(password: string): Promise<void> {
    await this.secrets.store(secretKey(this.name), password);
  }

  async forgetPassword(): Promise<void> {
    await this.secrets.delete(secretKey(this.name));
  }

  dispose(): void {
    this.disposed = true;
    this.watcher?.dispose();
    this.taskEvents.dispose();
    this.poolInstance?.end().catch((e: unknown) => this.log.trace(`${this.name}: pool end: ${String(e)}`));
  }
}

/** The saved connections, kept in step with the `pgTasks.connections` setting. */
export class ConnectionManager implements vscode.Disposable {
  private readonly byName = new Map<string, Connection>();
  private readonly changed = new vscode.EventEmitter<Connection | undefined>();
  /** Fires with a connection whose state changed, or undefined when the list itself changed. */
  readonly onDidChange = this.changed.event;
  private readonly taskEvents = new vscode.EventEmitter<{ connection: Connection; event: TaskEvent }>();
  /** Task state changes of every connection. */
  readonly onDidChangeTasks = this.taskEvents.event;
  private readonly subscriptions: vscode.Disposable[] = [];
  /** Pending automatic re-checks of unreachable servers, and how many came before (for the backoff). */
  private readonly rechecks = new Map<Connection, { timer: NodeJS.Timeout; attempt: number }>();
  private disposed = false;

  constructor(
    private readonly secrets: vscode.SecretStorage,
    private readonly log: Log,
  ) {
    this.subscriptions.push(
      vscode.workspace.onDidChangeConfiguration((e) => {
        if (e.affectsConfiguration('pgTasks.connections')) this.reload();
      }),
    );
  }

  /**
   * Reads the `pgTasks.connections` setting the first time. activate() calls it once its synchronous part has
   * returned, before its promise settles: the first configuration read after a window loads took 6–7 ms of
   * the 9 ms activate() call (npm run bench, timed in the extension host). The first checks, which load pg
   * and connect, start a turn of the event loop later still.
   */
  load(): void {
    if (!this.disposed) this.reload({ deferChecks: true });
  }

  list(): Connection[] {
    return [...this.byName.values()];
  }

  get(name: string): Connection | undefined {
    return this.byName.get(name);
  }

  /** Re-checks one connection (after install, set password…) and tells the views. */
  async recheck(connection: Connection): Promise<ConnectionState> {
    const attempt = this.rechecks.get(connection)?.attempt ?? 0;
    this.cancelRecheck(connection);
    const state = await connection.check();
    if (this.disposed || this.get(connection.name) !== connection) return state;
    // A server that is down (restart, VPN off) comes back by itself: check again with backoff and jitter, so
    // the tree recovers without a click. Other errors (a refused password, a missing grant) need the user.
    if (state === 'error' && connection.problem && isUnreachable(connection.problem)) {
      const delay = Math.min(RECHECK_MIN_MS * 2 ** attempt, RECHECK_MAX_MS) * (0.8 + Math.random() * 0.4);
      const timer = setTimeout(() => void this.recheck(connection), delay);
      timer.unref();
      this.rechecks.set(connection, { timer, attempt: attempt + 1 });
    }
    this.changed.fire(connection);
    return state;
  }

  private cancelRecheck(connection: Connection): void {
    clearTimeout(this.rechecks.get(connection)?.timer);
    this.rechecks.delete(connection);
  }

  /** Saves a new connection (and its password in SecretStorage); replaces one of the same name. */
  async add(saved: SavedConnection, password: string | undefined): Promise<void> {
    if (password !== undefined) await this.secrets.store(secretKey(saved.name), password);
    await config.saveConnections([...config.connections().filter((c) => c.name !== saved.name), saved]);
    this.reload();
  }

  async remove(name: string): Promise<void> {
    await this.secrets.delete(secretKey(name));
    await config.saveConnections(config.connections().filter((c) => c.name !== name));
    this.reload();
  }

  private reload(opts: { deferChecks?: boolean } = {}): void {
    const wanted = new Map(config.connections().map((c) => [c.name, c]));
    for (const [name, conn] of this.byName) {
      if (JSON.stringify(wanted.get(name)) !== JSON.stringify(conn.saved)) {
        this.cancelRecheck(conn);
        conn.dispose();
        this.byName.delete(name);
      }
    }
    for (const [name, saved] of wanted) {
      if (this.byName.has(name)) continue;
      let conn: Connection;
      try {
        conn = new Connection(saved, this.secrets, this.log);
      } catch (e) {
        this.log.error(`connection ${name}: ${e instanceof Error ? e.message : String(e)}`);
        void vscode.window.showErrorMessage(`PG Tasks: connection "${name}" is invalid: ${e instanceof Error ? e.message : String(e)}`, 'Open Settings').then((a) => {
          if (a) void vscode.commands.executeCommand('workbench.action.openSettings', 'pgTasks.connections');
        });
        continue;
      }
      this.byName.set(name, conn);
      // The connection's own emitter: disposing the connection ends this subscription too.
      conn.onDidChangeTasks((event) => {
        // The watcher reconnected after an outage: the server is back, so the tree need not wait for a timer.
        if (event.kind === 'resync' && event.why === 'connected' && conn.state === 'error') void this.recheck(conn);
        this.taskEvents.fire({ connection: conn, event });
      });
      if (!opts.deferChecks) void this.recheck(conn);
      else {
        setImmediate(() => {
          if (!this.disposed && this.get(conn.name) === conn) void this.recheck(conn);
        });
      }
    }
    void vscode.commands.executeCommand('setContext', 'pgTasks.hasConnection', this.byName.size > 0);
    this.changed.fire(undefined);
  }

  dispose(): void {
    this.disposed = true;
    for (const c of [...this.rechecks.keys()]) this.cancelRecheck(c);
    for (const c of this.byName.values()) c.dispose();
    this.byName.clear();
    this.changed.dispose();
    this.taskEvents.dispose();
    for (const d of this.subscriptions) d.dispose();
  }
}
