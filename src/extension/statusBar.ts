import * as vscode from 'vscode';
import type { Logger } from '../core/logger';
import type { Ctx } from './ctx';
import { statusBarText } from './format/messages';
import { formatCount } from './format/quantities';
import type { TaskSource } from './taskTree';
import type { Connection } from './connections';

/** Counting reads at most this many queued or running tasks per connection; beyond it the tooltip says "or more". */
const COUNT_CAP = 200;
/** Events come in bursts (a script of many steps); recount once per burst. */
const DEBOUNCE_MS = 300;

interface Count {
  running: number;
  queued: number;
  capped: boolean;
  /** The tasks counted, as `<database>#<id>`: two connections to one database see the same tasks. */
  keys: Map<string, 'running' | 'queued'>;
}

/** Which database a connection's task ids belong to (ids are unique per database, not per connection). */
const databaseOf = (c: Connection) => `${c.resolved.host}:${c.resolved.port}/${c.resolved.database}`;

/**
 * The running-task count in the status bar, across connections. It recounts on task events and connection
 * changes only (the watcher's own slow poll arrives as a resync event), never on a timer of its own.
 */
export class TaskStatusBar implements vscode.Disposable {
  private readonly item: vscode.StatusBarItem;
  private readonly counts = new Map<Connection, Count>();
  private readonly subscriptions: vscode.Disposable[] = [];
  private timer: NodeJS.Timeout | undefined;
  private busy = false;
  private dirty = false;
  private disposed = false;

  constructor(
    private readonly source: TaskSource,
    private readonly log: Logger,
  ) {
    this.item = vscode.window.createStatusBarItem('pgTasks.status', vscode.StatusBarAlignment.Left, 100);
    this.item.name = 'PG Background Tasks';
    this.item.command = 'workbench.view.extension.pgTasks';
    this.subscriptions.push(
      this.item,
      source.onDidChange(() => this.schedule()),
      source.onDidChangeTasks(() => this.schedule()),
    );
    this.schedule();
  }

  dispose(): void {
    this.disposed = true;
    clearTimeout(this.timer);
    for (const s of this.subscriptions) s.dispose();
  }

  private schedule(): void {
    if (this.disposed || this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.recount();
    }, DEBOUNCE_MS);
  }

  private async recount(): Promise<void> {
    // One recount at a time; events during it ask for one more afterwards, so the last word is the newest.
    if (this.busy) {
      this.dirty = true;
      return;
    }
    this.busy = true;
    try {
      await this.countAll();
    } finally {
      this.busy = false;
      if (this.dirty) {
        this.dirty = false;
        this.schedule();
      }
    }
  }

  private async countAll(): Promise<void> {
    const connections = this.source.list().filter((c) => c.state === 'ready');
    for (const c of this.counts.keys()) if (!connections.includes(c)) this.counts.delete(c);
    await Promise.all(
      connections.map(async (c) => {
        try {
          const tasks = await c.tasks.list({ states: ['queued', 'running'], pageSize: COUNT_CAP });
          this.counts.set(c, {
            running: tasks.filter((t) => t.state === 'running').length,
            queued: tasks.filter((t) => t.state === 'queued').length,
            capped: tasks.length >= COUNT_CAP,
            keys: new Map(tasks.map((t) => [`${databaseOf(c)}#${t.id}`, t.state === 'running' ? 'running' : 'queued'])),
          });
        } catch (e) {
          // Tier 1: the tree shows the failure with a Retry; the last count stays until the next event.
          this.log.warn(`${c.name}: cannot count running tasks: ${e instanceof Error ? e.message : String(e)}`);
        }
      }),
    );
    if (!this.disposed) this.render();
  }

  private render(): void {
    // Counted once per task even when several connections (another user, an admin) reach its database.
    const all = new Map<string, 'running' | 'queued'>();
    const lines: string[] = [];
    for (const [c, n] of this.counts) {
      for (const [k, state] of n.keys) all.set(k, state);
      if (n.running + n.queued > 0) lines.push(`${c.name}: ${formatCount(n.running)} running, ${formatCount(n.queued)} queued${n.capped ? ' (or more)' : ''}`);
    }
    const states = [...all.values()];
    const text = statusBarText(states.filter((x) => x === 'running').length, states.filter((x) => x === 'queued').length);
    if (!text) {
      this.item.hide();
      return;
    }
    this.item.text = text;
    this.item.tooltip = `PG Background Tasks\n${lines.join('\n')}\nClick to show the Task Explorer.`;
    this.item.show();
  }
}

/** Adds the running-task count to the status bar; it lives as long as the extension. */
export function registerStatusBar(ctx: Ctx, source: TaskSource): TaskStatusBar {
  const bar = new TaskStatusBar(source, ctx.log);
  ctx.subscriptions.push(bar);
  return bar;
}
