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
      client.on('notification', (n: Notification) => this.onNotification(n));
      client.on('error', (e: Error) => this.lost(client, e));
      client.on('end', () => this.lost(client, new Error('connection ended')));
      await client.query(queries.listen);
      this.client = client;
      this.listening = true;
      this.backoff = this.opts.minBackoffMs;
      this.opts.log.info('watcher: listening on channel bgtask');
      this.schedulePoll();
      this.onEvent({ kind: 'resync', why: 'connected' });
    } catch (e) {
      this.opts.log.warn(`watcher: cannot listen (${e instanceof Error ? e.message : String(e)}); polling every ${this.opts.fastPollMs / 1000} s`);
      client?.end().catch(() => undefined); // already failing; the warning above says why
      this.lost(client, e);
    }
  }

  private lost(client: Client | undefined, e: unknown): void {
    if (this.disposed || (this.client !== undefined && this.client !== client)) return;
    if (this.client === client && this.listening) {
      this.opts.log.warn(`watcher: connection lost: ${e instanceof Error ? e.message : String(e)}`);
    }
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
    this.onEvent({ kind: 'state', id: Number(m[1]), state: m[2] as TaskState });
  }

  private schedulePoll(): void {
    clearTimeout(this.pollTimer);
    if (this.disposed) return;
    const every = this.listening ? this.opts.slowPollMs : this.opts.fastPollMs;
    this.pollTimer = setTimeout(() => {
      this.onEvent({ kind: 'resync', why: 'poll' });
      this.schedulePoll();
    }, every * (0.8 + Math.random() * 0.4));
    this.pollTimer.unref();
  }
}
