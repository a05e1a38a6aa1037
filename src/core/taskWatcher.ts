import type { Client, Notification } from 'pg';
import { queries } from './generated/sql';
import { Logger, silentLogger } from './logger';
import type { TaskState } from './models';

/** What a watcher reports: a task changed state, or "re-read everything" (after a reconnect or a poll tick). */
export type TaskEvent = { kind: 'state'; id: number; state: TaskState } | { kind: 'resync'; why: 'connected' | 'poll' };

export interface TaskWatcherOptions {
  /** Poll interval while LISTEN works (a safety net), in ms. */
  slowPollMs?: number;
  /** Poll interval while LISTEN does not (no connection, or a pooler in transaction mode), in ms. */
  fastPollMs?: number;
  /** First and largest reconnect delay, in ms; the delay doubles with jitter in between. */
  minBackoffMs?: number;
  maxBackoffMs?: number;
  log?: Logger;
}

/**
 * Follows task state changes with `LISTEN bgtask` on one dedicated connection, reconnecting with backoff and
 * jitter, and polls slowly as a fallback (faster while LISTEN is down). Timers are unref'd and all stop on
 * dispose(). The payload carries only id and state: consumers re-read rows through row-level security.
 */
export class TaskWatcher {
  private client: Client | undefined;
  private disposed = false;
  private backoff: number;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private pollTimer: NodeJS.Timeout | undefined;
  private listening = false;
  private readonly opts: Required<TaskWatcherOptions>;

  constructor(
    private readonly connect: () => Promise<Client>,
    private readonly onEvent: (e: TaskEvent) => void,
    options: TaskWatcherOptions = {},
  ) {
    this.opts = { slowPollMs: 60_000, fastPollMs: 10_000, minBackoffMs: 1_000, maxBackoffMs: 30_000, log: silentLogger, ...options };
    this.backoff = this.opts.minBackoffMs;
  }

  /** Whether notifications are flowing right now. */
  get isListening(): boolean {
    return this.listening;
  }

  /** Connects and starts listening; failures are retried in the background, never thrown. */
  start(): void {
    this.schedulePoll();
    void this.open();
  }

  dispose(): void {
    this.disposed = true;
    clearTimeout(this.reconnectTimer);
    clearTimeout(this.pollTimer);
    const c = this.client;
    this.client = undefined;
    this.listening = false;
    if (c) {
      c.end().catch((e: unknown) => this.opts.log.trace(`watcher: close: ${String(e)}`));
    }
  }

  private async open(): Promise<void> {
    if (this.disposed) return;
    let client: Client | undefined;
    try {
      client = await this.connect();
      if (this.disposed) {
        await client.end();
        return;
      }
      const c = client;
      c.on('notification', (n: Notification) => this.onNotification(n));
      c.on('error', (e: Error) => this.lost(c, e));
      c.on('end', () => this.lost(c, new Error('connection ended')));
      await c.query(queries.listen);
      if (this.disposed) {
        // dispose() ran while LISTEN was on its way: it could not see this client yet, so close it here.
        await c.end();
        return;
      }
      this.client = c;
      this.listening = true;
      this.backoff = this.opts.minBackoffMs;
      this.opts.log.info('watcher: listening on channel bgtask');
      this.schedulePoll();
      this.emit({ kind: 'resync', why: 'connected' });
    } catch (e) {
      client?.end().catch(() => undefined); // already failing; the warning below says why
      if (this.disposed) return; // nothing to retry, nobody to tell
      this.opts.log.warn(`watcher: cannot listen (${e instanceof Error ? e.message : String(e)}); polling every ${this.opts.fastPollMs / 1000} s`);
      this.retry();
    }
  }

  /** An 'error' or 'end' of a client: only the current one matters (a failed or replaced one is already handled). */
  private lost(client: Client, e: unknown): void {
    if (this.disposed || client !== this.client) return;
    this.opts.log.warn(`watcher: connection lost: ${e instanceof Error ? e.message : String(e)}`);
    this.retry();
    // After an 'error' the socket may still be open: close it before a new one replaces it. Its own 'end' comes
    // back here and is ignored (no longer current); a failure to close is moot, the connection is unusable.
    client.end().catch((err: unknown) => this.opts.log.trace(`watcher: close: ${String(err)}`));
  }

  /**
   * Polls fast and schedules one reconnect. Events of a stale client can arrive while a reconnect is under way
   * (a dead socket reports both 'error' and 'end'); `lost` ignores them, so there is never a second LISTEN
   * connection that nobody would close.
   */
  private retry(): void {
    this.client = undefined;
    this.listening = false;
    this.schedulePoll();
    if (this.reconnectTimer) return;
    const delay = this.backoff * (0.5 + Math.random() / 2);
    this.backoff = Math.min(this.backoff * 2, this.opts.maxBackoffMs);
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      void this.open();
    }, delay);
    this.reconnectTimer.unref();
  }

  private onNotification(n: Notification): void {
    if (n.channel !== 'bgtask' || !n.payload) return;
    const m = /^(\d+):([a-z]+)$/.exec(n.payload);
    if (!m) return;
    this.emit({ kind: 'state', id: Number(m[1]), state: m[2] as TaskState });
  }

  /**
   * Hands an event to the consumer. A throwing handler must not stop the poll timer (which reschedules after
   * the call) nor unwind into pg's message parser (notifications): log it and carry on.
   */
  private emit(e: TaskEvent): void {
    try {
      this.onEvent(e);
    } catch (err) {
      this.opts.log.error(err instanceof Error ? err : new Error(String(err)));
    }
  }

  private schedulePoll(): void {
    clearTimeout(this.pollTimer);
    if (this.disposed) return;
    const every = this.listening ? this.opts.slowPollMs : this.opts.fastPollMs;
    this.pollTimer = setTimeout(() => {
      this.emit({ kind: 'resync', why: 'poll' });
      this.schedulePoll();
    }, every * (0.8 + Math.random() * 0.4));
    this.pollTimer.unref();
  }
}
