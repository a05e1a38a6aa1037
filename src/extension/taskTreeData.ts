import * as vscode from 'vscode';
import type { Logger } from '../core/logger';
import { FINISHED_STATES, type TaskSummary } from '../core/models';
import type { TaskEvent } from '../core/taskWatcher';
import type { Connection } from './connections';
import type { ConnectionNode, GroupNode, TreeNode } from './nodes';

/** Queued and running tasks shown at most; more would mean a runaway script, and the tooltip of the last row says so. */
export const RUNNING_CAP = 200;
/** Task events come in bursts (a script of 50 steps, a reap): one reload per burst. */
const DEBOUNCE_MS = 150;
/** Durations and wait events of running tasks change without events; re-read them this often, only while visible. */
const LIVE_MS = 5_000;
/** reap() records lost tasks and starts queued ones; once a minute is plenty, and it writes. */
const REAP_EVERY_MS = 60_000;

export interface GroupData {
  node: GroupNode;
  tasks: TaskSummary[] | undefined;
  error: string | undefined;
  /** Set by events; the next getChildren reloads. */
  stale: boolean;
  loading: Promise<void> | undefined;
  /** The last load filled its page, so there may be more. */
  full: boolean;
  /** Finished tasks to (re)load: grows by a page with each "Load more", so a refresh keeps what was loaded. */
  limit: number;
}

export interface ConnData {
  node: ConnectionNode;
  running: GroupData;
  finished: GroupData;
  lastReap: number;
  reaping: Promise<void> | undefined;
  pending: { running: boolean; finished: boolean };
}

export interface TaskTreeDataOptions {
  /** The connections there are now; refresh() forgets the others. */
  connections: () => readonly Connection[];
  log: Logger;
  pageSize: () => number;
  /** A node's children are stale (undefined: the whole tree's). */
  changed: (node: TreeNode | undefined) => void;
}

const errorText = (e: unknown) => (e instanceof Error ? e.message : String(e));

/**
 * The tasks the Task Explorer lists, per connection: the Running group (capped) and the Finished group (paged,
 * newest first), each loaded when VS Code first asks for it and again once stale. Task events (debounced) and a
 * 5 s timer (only while the view is visible and something runs) mark groups stale and report them through
 * `changed`, so that VS Code asks again.
 */
export class TaskTreeData {
  private readonly conns = new Map<Connection, ConnData>();
  private debounceTimer: NodeJS.Timeout | undefined;
  private liveTimer: NodeJS.Timeout | undefined;
  private visible = false;
  private disposed = false;

  constructor(private readonly opts: TaskTreeDataOptions) {}

  /** A connection's nodes and groups, made on first use. */
  get(c: Connection): ConnData {
    let d = this.conns.get(c);
    if (!d) {
      const group = (g: 'running' | 'finished'): GroupData => ({
        node: { kind: 'group', connection: c, group: g }, tasks: undefined, error: undefined, stale: true, loading: undefined, full: false, limit: 0,
      });
      d = { node: { kind: 'connection', connection: c }, running: group('running'), finished: group('finished'), lastReap: 0, reaping: undefined, pending: { running: false, finished: false } };
      this.conns.set(c, d);
    }
    return d;
  }

  /** Reloads one connection (its state and both groups), or everything. */
  refresh(connection?: Connection): void {
    if (!connection) {
      const alive = new Set(this.opts.connections());
      for (const c of this.conns.keys()) if (!alive.has(c)) this.conns.delete(c);
      for (const d of this.conns.values()) d.running.stale = d.finished.stale = true;
      this.opts.changed(undefined);
      return;
    }
    const d = this.get(connection);
    d.running.stale = d.finished.stale = true;
    this.opts.changed(d.node);
  }

  /** Appends the next page of finished tasks of a connection. */
  async loadMore(connection: Connection): Promise<void> {
    const g = this.get(connection).finished;
    await this.ensureLoaded(connection, g);
    const loaded = g.tasks;
    const last = loaded?.at(-1);
    if (!loaded || !last) return;
    const pageSize = this.opts.pageSize();
    g.limit = loaded.length + pageSize;
    try {
      const page = await connection.tasks.list({ beforeId: last.id, pageSize, states: [...FINISHED_STATES] });
      // A refresh that started meanwhile reloads g.limit rows, this page included; let it win.
      if (g.stale || g.loading || g.tasks !== loaded) return;
      g.tasks = [...loaded, ...page];
      g.full = page.length >= pageSize;
      this.opts.changed(g.node);
    } catch (e) {
      // A failed click: say so where the user looks, and keep the tasks already listed.
      this.opts.log.warn(`${connection.name}: cannot load more finished tasks: ${errorText(e)}`);
      g.limit = loaded.length;
      const retry = await vscode.window.showWarningMessage(`PG Tasks: cannot load more tasks of ${connection.name}: ${errorText(e)}`, 'Retry');
      if (retry) await this.loadMore(connection);
    }
  }

  /** Called by the view: polls only while someone can see the result. */
  setVisible(visible: boolean): void {
    const wasHidden = !this.visible;
    this.visible = visible;
    // Durations went stale while hidden; show current ones right away.
    if (visible && wasHidden) for (const d of this.conns.values()) if (this.hasRunning(d)) this.markStale(d.running);
    this.updateLiveTimer();
  }

  onTaskEvent(c: Connection, e: TaskEvent): void {
    const d = this.conns.get(c);
    if (this.disposed || !d || c.state !== 'ready') return;
    d.pending.running = true;
    d.pending.finished ||= e.kind === 'resync' || FINISHED_STATES.includes(e.state);
    if (this.debounceTimer) return;
    this.debounceTimer = setTimeout(() => {
      this.debounceTimer = undefined;
      for (const x of this.conns.values()) {
        if (x.pending.running) this.markStale(x.running);
        if (x.pending.finished) this.markStale(x.finished);
        x.pending = { running: false, finished: false };
      }
    }, DEBOUNCE_MS);
  }

  /** Waits until the group holds its current tasks (or the error listing them), loading them once if stale. */
  async ensureLoaded(c: Connection, g: GroupData): Promise<void> {
    while (g.stale || (g.tasks === undefined && g.error === undefined)) {
      if (!g.loading) {
        g.stale = false;
        g.loading = this.load(c, g).finally(() => (g.loading = undefined));
      }
      await g.loading;
    }
  }

  dispose(): void {
    this.disposed = true;
    clearTimeout(this.debounceTimer);
    clearTimeout(this.liveTimer);
    this.liveTimer = undefined;
  }

  private markStale(g: GroupData): void {
    g.stale = true;
    this.opts.changed(g.node);
  }

  private hasRunning(d: ConnData): boolean {
    return d.node.connection.state === 'ready' && (d.running.tasks?.some((t) => t.state === 'running') ?? false);
  }

  private updateLiveTimer(): void {
    const wanted = !this.disposed && this.visible && [...this.conns.values()].some((d) => this.hasRunning(d));
    if (!wanted) {
      clearTimeout(this.liveTimer);
      this.liveTimer = undefined;
    } else if (!this.liveTimer) {
      // One shot: the reload it causes re-arms it, so a collapsed group (never reloaded) stops it by itself.
      this.liveTimer = setTimeout(() => {
        this.liveTimer = undefined;
        for (const d of this.conns.values()) if (this.hasRunning(d)) this.markStale(d.running);
      }, LIVE_MS);
    }
  }

  private async load(c: Connection, g: GroupData): Promise<void> {
    const d = this.get(c);
    if (Date.now() - d.lastReap >= REAP_EVERY_MS) {
      d.lastReap = Date.now();
      d.reaping = c.tasks.reap().then(
        (lost) => (lost > 0 ? this.opts.log.info(`${c.name}: ${lost} lost task(s) recorded`) : undefined),
        // Listing works without it, and the next reload a minute later tries again.
        (e: unknown) => this.opts.log.warn(`${c.name}: reap failed: ${errorText(e)}`),
      );
    }
    await d.reaping;
    try {
      if (g.node.group === 'running') {
        g.tasks = await c.tasks.list({ states: ['queued', 'running'], pageSize: RUNNING_CAP });
        g.full = g.tasks.length >= RUNNING_CAP;
      } else {
        g.limit = Math.max(g.limit, this.opts.pageSize());
        g.tasks = await c.tasks.list({ states: [...FINISHED_STATES], pageSize: g.limit });
        g.full = g.tasks.length >= g.limit;
      }
      g.error = undefined;
    } catch (e) {
      this.opts.log.warn(`${c.name}: cannot list ${g.node.group} tasks: ${errorText(e)}`);
      g.tasks = undefined;
      g.error = errorText(e);
    }
    this.updateLiveTimer();
  }
}
