import * as vscode from 'vscode';
import { randomBytes } from 'node:crypto';
import { TaskError, toTaskError } from '../core/errors';
import type { StepDetail, TaskDetail, TaskErrorInfo, TaskSummary } from '../core/models';
import { isWebviewToHost, PAGE_ROWS, stepWithRows, type ErrorView, type HostToWebview, type RowsView, type TaskView, type WebviewToHost } from '../core/protocol/webview';
import { exportStep } from './commands/tasks';
import type { Connection } from './connections';
import type { Ctx } from './ctx';
import { taskTitle } from './format/task';
import { describeError } from './problems';
import type { TaskPanelsOptions } from './taskPanel';

/** One open panel: renders the HTML, answers the webview's messages, and polls live data while the task runs. */
export class TaskPanel {
  private readonly disposables: vscode.Disposable[] = [];
  private disposed = false;
  private reads = 0;
  private failures = 0;
  private lastState: TaskDetail['state'] | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    readonly panel: vscode.WebviewPanel,
    private readonly connectionName: string,
    private readonly id: number,
    private readonly ctx: Ctx,
    private readonly options: TaskPanelsOptions,
    onDispose: () => void,
  ) {
    panel.webview.html = this.html();
    this.disposables.push(
      panel.webview.onDidReceiveMessage((m: unknown) => void this.onMessage(m)),
      // Hidden webviews are destroyed (retainContextWhenHidden false) and say 'ready' again when shown.
      panel.onDidChangeViewState(() => panel.visible || this.stopPolling()),
      panel.onDidDispose(() => {
        this.disposed = true;
        this.stopPolling();
        onDispose();
        for (const d of this.disposables.splice(0)) d.dispose();
      }),
    );
  }

  private html(): string {
    const webview = this.panel.webview;
    const nonce = randomBytes(18).toString('base64');
    const uri = (file: string) => webview.asWebviewUri(vscode.Uri.joinPath(this.ctx.extensionUri, 'media', 'dist', file)).toString();
    const src = webview.cspSource;
    const csp = `default-src 'none'; script-src 'nonce-${nonce}'; style-src ${src}; font-src ${src}; img-src ${src}; connect-src 'none'`;
    // No database data goes into this markup: the task arrives by postMessage and is written with textContent.
    // data-task is our own integer id, so the panel can say which task it is before (or without) an answer.
    return `<!DOCTYPE html>
<html lang="en"><head><meta charset="UTF-8">
<meta http-equiv="Content-Security-Policy" content="${csp}">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<link rel="stylesheet" id="vscode-codicon-stylesheet" href="${uri('codicon.css')}">
<link rel="stylesheet" href="${uri('taskPanel.css')}">
<title>Task #${this.id}</title></head>
<body data-task="${this.id}"><main id="app"></main><script nonce="${nonce}" src="${uri('taskPanel.js')}"></script></body></html>`;
  }

  private post(m: HostToWebview): void {
    if (!this.disposed) void this.panel.webview.postMessage(m);
  }

  private connection(): Connection {
    const c = this.ctx.connections.get(this.connectionName);
    if (!c) throw new TaskError(`The connection "${this.connectionName}" no longer exists.`, 'notFound');
    return c;
  }

  private async onMessage(m: unknown): Promise<void> {
    if (!isWebviewToHost(m)) {
      this.ctx.log.warn(`task #${this.id}: ignored a malformed message from the webview`);
      return;
    }
    try {
      await this.handle(m);
    } catch (e) {
      this.fail(m.type, e);
    }
  }

  private async handle(m: WebviewToHost): Promise<void> {
    switch (m.type) {
      case 'ready':
        return this.postTask(true);
      case 'refresh':
        return this.postTask();
      case 'fetchRows':
        try {
          const page = await this.connection().tasks.readResultPage(this.id, m.step, m.afterRow, m.limit);
          this.post({ type: 'rows', requestId: m.requestId, step: m.step, ...page });
        } catch (e) {
          // Shown in the grid, where it happened; the log keeps the details.
          const err = toTaskError(e);
          this.ctx.log.warn(`task #${this.id}: rows of step ${m.step}: ${err.message}`);
          this.post({ type: 'error', requestId: m.requestId, message: describeError(err) });
        }
        return;
      case 'cancel':
        return this.cancel();
      case 'rerun':
        return this.rerun();
      case 'export':
        return this.export(m.step, m.format);
      case 'goToError':
        return this.goToError();
      case 'copy':
        return vscode.env.clipboard.writeText(m.text);
      default: {
        const unknown: never = m;
        throw new Error(`unhandled message ${JSON.stringify(unknown)}`);
      }
    }
  }

  /**
   * Reads the task (and its worker's live data while it runs) and posts it; errors are shown in the panel. With
   * `withRows`, the first page of the step the panel opens on goes with it.
   */
  async postTask(withRows = false): Promise<void> {
    if (this.disposed) return;
    const read = ++this.reads;
    this.stopPolling();
    try {
      const tasks = this.connection().tasks;
      const detail = await tasks.get(this.id);
      if (!detail) throw new TaskError(`Task #${this.id} does not exist or is not visible to your role (it may have been purged).`, 'notFound');
      // list_tasks is what joins pg_stat_activity and tells a running task from a lost one.
      const live = detail.state === 'running' ? (await tasks.list({ beforeId: this.id + 1, pageSize: 1, states: ['running'] })).find((t) => t.id === this.id) : undefined;
      if (read !== this.reads) return; // a newer read is under way and posts fresher data
      this.failures = 0;
      this.lastState = live?.state ?? detail.state;
      // Tabs of several tasks are told apart by what the task is, not only by its number.
      this.panel.title = `Task #${this.id}: ${taskTitle(detail, 24)}`;
      const task = toView(this.connectionName, detail, live);
      const firstRows = withRows ? await this.firstRows(task) : undefined;
      if (read !== this.reads) return;
      this.post({ type: 'task', task, firstRows });
    } catch (e) {
      const err = toTaskError(e);
      this.failures++;
      this.ctx.log.warn(`task #${this.id}: read failed: ${err.message}`);
      if (read !== this.reads) return;
      this.post({ type: 'error', message: describeError(err) });
      if (err.reason === 'notFound') this.lastState = undefined;
    }
    if (this.lastState === 'running' && this.panel.visible) {
      // Wait events and pg_stat_progress change without a NOTIFY, so a visible running task is polled, with
      // jitter, and backing off while reads fail.
      const delay = Math.min(2000 * 2 ** this.failures, 30_000) * (0.8 + Math.random() * 0.4);
      this.timer = setTimeout(() => void this.postTask(), delay);
    }
  }
  /** Page 1 of the step the panel opens on, when it stored rows; its errors wait for the panel's own request. */
  private async firstRows(task: TaskView): Promise<RowsView | undefined> {
    const step = stepWithRows(task.steps);
    if (!step || !step.resultStored) return undefined;
    try {
      return { step: step.n, ...(await this.connection().tasks.readResultPage(this.id, step.n, 0, PAGE_ROWS)) };
    } catch {
      return undefined;
    }
  }

  private stopPolling(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private async cancel(): Promise<void> {
    const choice = await vscode.window.showWarningMessage(
      `Cancel task #${this.id}?`,
      { modal: true, detail: 'The running statement is interrupted and rolled back; steps that already committed stay committed.' },
      'Cancel Task',
    );
    if (choice !== 'Cancel Task') return;
    if (!(await this.connection().tasks.cancel(this.id))) {
      void vscode.window.showInformationMessage(`Task #${this.id} has already ended.`);
    }
    await this.postTask();
  }

  private async rerun(): Promise<void> {
    const connection = this.connection();
    if (this.options.onRerun) {
      await this.options.onRerun(connection, this.id);
      return;
    }
    const [task] = await connection.tasks.list({ beforeId: this.id + 1, pageSize: 1 });
    if (task?.id !== this.id) throw new TaskError(`Task #${this.id} no longer exists.`, 'notFound');
    await vscode.commands.executeCommand('pgTasks.rerunTask', { kind: 'task', connection, task });
  }

  private async export(step: number, format: 'csv' | 'json'): Promise<void> {
    await exportStep(this.ctx, this.connection(), this.id, step, format);
  }

  private async goToError(): Promise<void> {
    const detail = await this.connection().tasks.get(this.id);
    const error = detail?.error ?? detail?.steps.find((s) => s.error)?.error;
    if (!detail || !error) throw new TaskError(`Task #${this.id} has no error to show.`, 'notFound');
    const step = detail.steps.find((s) => s.n === error.step) ?? detail.steps.find((s) => s.error);
    const position = typeof error.position === 'number' && error.position > 0 ? error.position : undefined;
    if (!this.options.errors) throw new TaskError('Go to Error is not available here.', 'unknown');
    await this.options.errors.show(this.connectionName, this.id, step?.n ?? 1, step?.sql ?? detail.sql, position);
  }

  /** A failed user action: the SQLSTATE and one sentence in a notification, the rest in the log. */
  private fail(action: string, e: unknown): void {
    const err = toTaskError(e);
    this.ctx.log.warn(`task #${this.id}: ${action} failed`);
    this.ctx.log.error(err.cause instanceof Error ? err.cause : err);
    void vscode.window.showErrorMessage(`PG Tasks: task #${this.id}: ${describeError(err).split('\n')[0]}`, 'Show Log').then((a) => a && this.ctx.log.show());
  }
}

const iso = (d: Date | string | null): string | null => (d === null || d === undefined ? null : new Date(d).toISOString());

/** Copies only the fields the panel knows: the error is jsonb written by the server, not a typed value. */
function errorView(e: TaskErrorInfo | null): ErrorView | null {
  if (typeof e !== 'object' || e === null) return null;
  const text = (v: unknown) => (typeof v === 'string' ? v : undefined);
  const pos = (v: unknown) => (typeof v === 'number' && Number.isInteger(v) && v > 0 ? v : undefined);
  const { sqlstate, message, detail, hint, context, position, step } = e;
  return { sqlstate: text(sqlstate) ?? '', message: text(message) ?? '', detail: text(detail), hint: text(hint), context: text(context), position: pos(position), step: pos(step) };
}

/** Field by field, so nothing the panel does not show (clientInfo, options…) reaches the webview. */
function toView(connection: string, t: TaskDetail, live: TaskSummary | undefined): TaskView {
  const { id, owner, info, sql, stepCount, stepCurrent, rowsAffected, exitReason, cancelRequested } = t;
  const waitEvent = live?.waitEvent ? [live.waitEventType, live.waitEvent].filter(Boolean).join(': ') : null;
  return {
    connection, id, owner, info, sql, stepCount, stepCurrent, rowsAffected, exitReason, cancelRequested,
    state: live?.state ?? t.state,
    submittedAt: iso(t.submittedAt) ?? '',
    startTime: iso(t.startTime),
    endTime: iso(t.endTime),
    error: errorView(t.error),
    steps: t.steps.map((s: StepDetail) => ({
      n: s.n, sql: s.sql, state: s.state, commandTag: s.commandTag, rowsAffected: s.rowsAffected, capture: s.capture,
      startTime: iso(s.startTime),
      endTime: iso(s.endTime),
      resultRows: s.resultRows,
      resultStored: s.resultStored,
      hasResult: s.resultTable !== null,
      error: errorView(s.error),
    })),
    live: live?.state === 'running' ? { waitEvent, blockedBy: live.blockedBy, progress: live.progress } : null,
  };
}
