import * as vscode from 'vscode';
import type { Logger } from '../core/logger';
import { FINISHED_STATES, type TaskState, type TaskSummary } from '../core/models';
import type { TaskEvent } from '../core/taskWatcher';
import { config } from './config';
import type { Connection } from './connections';
import type { Ctx } from './ctx';
import { finishMessage, summaryMessage } from './format/messages';
import { plural } from './format/quantities';
import type { TaskSource } from './taskTree';

/** An action offered on a notification, given the task's connection and id. */
export type TaskAction = (connection: Connection, id: number) => unknown;

/**
 * What this machine knows of a connection's tasks, kept in globalState as `pgTasks.lastSeen.<name>`: the
 * highest id seen ended, and the ids that were queued or running when last looked at. Ids only grow, so a
 * task ended since then is one with a higher id or one of `open` (a long task older than a newer one that ended).
 */
interface Seen {
  maxId: number;
  open: Set<number>;
}

/** More ended tasks than this at once become one summary message. */
const SUMMARY_OVER = 3;
/** Finished tasks read per catch-up, newest first. */
const CATCH_UP_PAGE = 100;
/** Open ids remembered at most (queued tasks can pile up; the oldest matter least). */
const OPEN_CAP = 1000;
/** Announced tasks remembered to avoid saying it twice when two connections reach the same database. */
const ANNOUNCED_CAP = 1000;

const isFinal = (s: TaskState) => FINISHED_STATES.includes(s);
const errorText = (e: unknown) => (e instanceof Error ? e.message : String(e));

/**
 * Tells the user when a task ends: from the watcher's state events while VS Code runs, and once per connection
 * at start-up for tasks that ended while it was closed. A resync (reconnect, slow poll) catches up on events
 * that LISTEN missed, with the same watermark, so nothing is announced twice.
 */
export class FinishNotifier implements vscode.Disposable {
  private readonly seen = new Map<Connection, Seen>();
  /** One job at a time per connection: catch-ups and events read and write the same watermark. */
  private readonly queues = new Map<Connection, Promise<void>>();
  private readonly subscriptions: vscode.Disposable[] = [];
  /** `<database>#<id>` of tasks announced in this window: each database's ids are its own. */
  private readonly announced = new Set<string>();
  private disposed = false;

  constructor(
    private readonly source: TaskSource,
    private readonly memento: vscode.Memento,
    private readonly log: Logger,
    private readonly enabled: () => boolean,
    private readonly openTask: TaskAction,
    private readonly exportResult: TaskAction,
  ) {
    this.subscriptions.push(
      source.onDidChange(() => this.startReady()),
      source.onDidChangeTasks(({ connection, event }) => this.onEvent(connection, event)),
    );
    this.startReady();
  }

  dispose(): void {
    this.disposed = true;
    for (const s of this.subscriptions) s.dispose();
  }

  /** The start-up catch-up, once per connection, as soon as it is ready. */
  private startReady(): void {
    for (const c of this.source.list()) {
      if (c.state === 'ready' && !this.seen.has(c) && !this.queues.has(c)) this.enqueue(c, () => this.catchUp(c, true));
    }
    for (const c of [...this.seen.keys()]) if (!this.source.list().includes(c)) this.seen.delete(c);
  }

  private onEvent(c: Connection, e: TaskEvent): void {
    if (!this.seen.has(c) && !this.queues.has(c)) return this.startReady();
    if (e.kind === 'resync') {
      // Only needed to find what LISTEN missed; skip the two queries when nobody wants to hear.
      if (this.enabled()) this.enqueue(c, () => this.catchUp(c, false));
      return;
    }
    this.enqueue(c, () => this.onState(c, e.id, e.state));
  }

  private enqueue(c: Connection, job: () => Promise<void>): void {
    const next = (this.queues.get(c) ?? Promise.resolve()).then(job).catch((e: unknown) => {
      // Tier 1: a missed notification is not worth one of its own; the tree shows the task anyway.
      this.log.warn(`${c.name}: task notifications: ${errorText(e)}`);
    });
    this.queues.set(c, next);
    void next.then(() => {
      if (this.queues.get(c) === next) this.queues.delete(c);
    });
  }

  private async onState(c: Connection, id: number, state: TaskState): Promise<void> {
    const seen = this.seen.get(c);
    if (!seen || this.disposed) return;
    if (!isFinal(state)) {
      seen.open.add(id);
      return this.save(c, seen);
    }
    if (id <= seen.maxId && !seen.open.has(id)) return; // announced already, or ended before we looked
    seen.maxId = Math.max(seen.maxId, id);
    seen.open.delete(id);
    await this.save(c, seen);
    if (!this.enabled()) return;
    // The payload is only id:state, and every listener hears every role's tasks: read the row through
    // row-level security, which also says whose it is.
    const [task] = await c.tasks.list({ beforeId: id + 1, pageSize: 1 });
    if (task?.id === id && isFinal(task.state) && this.mine(c, task)) await this.announce(c, task);
  }

  private async catchUp(c: Connection, startup: boolean): Promise<void> {
    if (this.disposed) return;
    // Running first: a task that ends between the two reads then shows up in the second and is not lost.
    const running = await c.tasks.list({ states: ['queued', 'running'], pageSize: OPEN_CAP });
    const finished = await c.tasks.list({ states: [...FINISHED_STATES], pageSize: CATCH_UP_PAGE });
    const finishedIds = new Set(finished.map((t) => t.id));
    const open = new Set(running.filter((t) => !isFinal(t.state) && !finishedIds.has(t.id)).map((t) => t.id));
    const stored = this.seen.get(c) ?? this.load(c);
    const maxId = Math.max(stored?.maxId ?? 0, ...finishedIds);
    this.seen.set(c, { maxId, open });
    await this.save(c, { maxId, open });
    // First run ever on this machine: nothing "ended while closed", only history.
    if (!stored) return;
    const fresh = finished.filter((t) => (t.id > stored.maxId || stored.open.has(t.id)) && this.mine(c, t));
    if (fresh.length === 0 || !this.enabled()) return;
    if (fresh.length > SUMMARY_OVER) return this.summarize(c, fresh, startup);
    for (const t of fresh.reverse()) await this.announce(c, t);
  }

  /** Admins see every role's tasks; only the user's own are worth a notification. */
  private mine(c: Connection, t: TaskSummary): boolean {
    return !c.schema || t.owner === c.schema.currentUser;
  }

  /**
   * One notification per ended task. A done task says how many rows it kept and offers them; Open would only
   * repeat Show Result, and a task without rows has no result to show.
   */
  private async announce(c: Connection, t: TaskSummary): Promise<void> {
    const key = `${c.resolved.host}:${c.resolved.port}/${c.resolved.database}#${t.id}`;
    if (this.announced.has(key)) return;
    this.announced.add(key);
    if (this.announced.size > ANNOUNCED_CAP) this.announced.delete(this.announced.values().next().value as string);
    const { text, severity } = finishMessage(t, new Date());
    let rows = 0;
    if (t.state === 'done') {
      // Without the count the notification still says the task finished; only the row count is missing.
      const detail = await c.tasks.get(t.id).catch((e: unknown) => this.log.warn(`task #${t.id}: no row count: ${errorText(e)}`));
      rows = detail?.steps.reduce((n, s) => n + (s.resultTable ? (s.resultStored ?? 0) : 0), 0) ?? 0;
    }
    const actions = rows > 0 ? ['Show Result', 'Export…'] : t.state === 'failed' ? ['Show Error'] : ['Open'];
    const message = this.prefix(c) + text + (rows > 0 ? ` (${plural(rows, 'row')})` : '');
    const shown =
      severity === 'error'
        ? vscode.window.showErrorMessage(message, ...actions)
        : severity === 'warning'
          ? vscode.window.showWarningMessage(message, ...actions)
          : vscode.window.showInformationMessage(message, ...actions);
    void shown.then(
      (a) => (a === 'Export…' ? this.exportResult(c, t.id) : a ? this.openTask(c, t.id) : undefined),
      (e: unknown) => this.log.warn(`notification for task #${t.id}: ${errorText(e)}`),
    );
  }

  private summarize(c: Connection, tasks: TaskSummary[], whileClosed: boolean): void {
    const text = this.prefix(c) + summaryMessage(tasks.map((t) => t.state), whileClosed);
    const failed = tasks.some((t) => t.state === 'failed' || t.state === 'lost');
    const shown = failed ? vscode.window.showWarningMessage(text, 'Show Tasks') : vscode.window.showInformationMessage(text, 'Show Tasks');
    void shown.then(
      (a) => (a ? vscode.commands.executeCommand('workbench.view.extension.pgTasks') : undefined),
      (e: unknown) => this.log.warn(`summary notification: ${errorText(e)}`),
    );
  }

  /** With several connections, which one the message is about. */
  private prefix(c: Connection): string {
    return this.source.list().length > 1 ? `${c.name}: ` : '';
  }

  private key(c: Connection): string {
    return `pgTasks.lastSeen.${c.name}`;
  }

  private load(c: Connection): Seen | undefined {
    const raw = this.memento.get<unknown>(this.key(c));
    if (typeof raw === 'number') return { maxId: raw, open: new Set() };
    if (typeof raw !== 'object' || raw === null) return undefined;
    const r = raw as { maxId?: unknown; open?: unknown };
    if (typeof r.maxId !== 'number') return undefined;
    return { maxId: r.maxId, open: new Set(Array.isArray(r.open) ? r.open.filter((x): x is number => typeof x === 'number') : []) };
  }

  private async save(c: Connection, s: Seen): Promise<void> {
    const open = [...s.open].sort((a, b) => b - a).slice(0, OPEN_CAP);
    await this.memento.update(this.key(c), { maxId: s.maxId, open });
  }
}

/** Announces ended tasks (setting pgTasks.notifyOnFinish); the actions open the task or export its result. */
export function registerNotifications(ctx: Ctx, openTask: TaskAction, exportResult: TaskAction): FinishNotifier {
  const notifier = new FinishNotifier(ctx.connections, ctx.extCtx.globalState, ctx.log, () => config.notifyOnFinish(), openTask, exportResult);
  ctx.subscriptions.push(notifier);
  return notifier;
}
