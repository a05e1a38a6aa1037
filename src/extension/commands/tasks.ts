import * as vscode from 'vscode';
import { open as openFile, unlink } from 'node:fs/promises';
import { homedir } from 'node:os';
import { basename } from 'node:path';
import type { Ctx } from '../ctx';
import type { Connection } from '../connections';
import { pickConnection, pickTask } from '../pick';
import { showProblem } from '../problems';

/** What the task commands need besides Ctx: the panels and the tree. */
export interface TaskViews {
  openPanel(connection: Connection, id: number): Promise<void>;
  refreshTree(): void;
  /** Re-reads every open task panel (after a purge, a panel may show a task that is gone). */
  refreshPanels(): void;
}

export function cancelTask(ctx: Ctx) {
  return async (arg?: unknown): Promise<void> => {
    const node = await pickTask(ctx, arg, 'Cancel which task?', ['queued', 'running']);
    if (!node) return;
    const ok = await vscode.window.showWarningMessage(
      `Cancel task #${node.task.id} on ${node.connection.name}?`,
      { modal: true, detail: 'Its current statement is cancelled and rolled back; statements already committed stay done.' },
      'Cancel Task',
    );
    if (ok !== 'Cancel Task') return;
    try {
      const cancelled = await node.connection.tasks.cancel(node.task.id);
      if (!cancelled) void vscode.window.showInformationMessage(`PG Tasks: task #${node.task.id} has already ended.`);
      else ctx.log.info(`${node.connection.name}: cancel requested for task #${node.task.id}`);
    } catch (e) {
      await showProblem(ctx, `could not cancel task #${node.task.id}`, e, node.connection);
    }
  };
}

export function openTask(ctx: Ctx, views: TaskViews) {
  return async (arg?: unknown): Promise<void> => {
    const node = await pickTask(ctx, arg, 'Open which task?');
    if (node) await views.openPanel(node.connection, node.task.id);
  };
}

/** Collect Result: open a finished task's result grid, or export a step's rows (CSV/JSON) to a file, streamed. */
export function collectResult(ctx: Ctx, views: TaskViews) {
  return async (arg?: unknown): Promise<void> => {
    const node = await pickTask(ctx, arg, 'Collect the result of which task?', ['done', 'failed', 'cancelled']);
    if (!node) return;
    const { connection } = node;
    const detail = await connection.tasks.get(node.task.id).catch((e: unknown) => showProblem(ctx, 'could not read the task', e, connection));
    if (!detail) return;
    const steps = detail.steps.filter((s) => s.resultTable);
    if (steps.length === 0) {
      void vscode.window.showInformationMessage(`PG Tasks: task #${detail.id} collected no rows (${detail.steps.map((s) => s.capture ?? s.state).join(', ')}).`, 'Open Task').then((a) => {
        if (a) void views.openPanel(connection, detail.id);
      });
      return;
    }
    let step = steps[0];
    if (steps.length > 1) {
      const picked = await vscode.window.showQuickPick(
        steps.map((s) => ({ label: `Step ${s.n}`, description: `${s.resultStored ?? 0} rows`, detail: s.sql.replace(/\s+/g, ' ').slice(0, 200), step: s })),
        { title: `Task #${detail.id}: which statement's rows?` },
      );
      if (!picked) return;
      step = picked.step;
    }
    const action = await vscode.window.showQuickPick(
      [
        { label: '$(table) Open Result Grid', id: 'open' },
        { label: '$(file) Export as CSV…', id: 'csv' },
        { label: '$(json) Export as JSON…', id: 'json' },
      ],
      { title: `Task #${detail.id}, step ${step.n}: ${step.resultStored ?? 0} rows` },
    );
    if (!action) return;
    if (action.id === 'open') {
      await views.openPanel(connection, detail.id);
      return;
    }
    await exportStep(ctx, connection, detail.id, step.n, action.id as 'csv' | 'json');
  };
}

/**
 * Streams a step's rows to a file the user picks, with progress; the file is complete or removed. The one
 * export of the extension: Collect Result and the task panel's Export buttons both come here.
 */
export async function exportStep(ctx: Ctx, connection: Connection, id: number, n: number, format: 'csv' | 'json'): Promise<vscode.Uri | undefined> {
  const dir = vscode.workspace.workspaceFolders?.[0]?.uri ?? vscode.Uri.file(homedir());
  const target = await vscode.window.showSaveDialog({
    // "task-<id>-<step>": test/e2e/extension.e2e.ts waits for this default before typing its own path.
    defaultUri: vscode.Uri.joinPath(dir, `task-${id}-${n}.${format}`),
    filters: format === 'csv' ? { CSV: ['csv'] } : { JSON: ['json'] },
    saveLabel: 'Export',
    title: `Export the result of task #${id}, step ${n}, as ${format.toUpperCase()}`,
  });
  if (!target) return undefined;
  if (target.scheme !== 'file') {
    void vscode.window.showErrorMessage('PG Tasks: pick a file on the machine where the extension runs (the rows are streamed there).');
    return undefined;
  }
  try {
    const rows = await vscode.window.withProgress(
      { location: vscode.ProgressLocation.Notification, title: `PG Tasks: exporting task #${id}, step ${n} to ${basename(target.fsPath)}…` },
      async () => {
        // Opened before streaming, so a bad path fails here rather than as an unhandled stream 'error'.
        const out = (await openFile(target.fsPath, 'w')).createWriteStream();
        try {
          return await connection.tasks.exportResult(id, n, format, out);
        } catch (e) {
          out.destroy();
          await unlink(target.fsPath).catch((u: unknown) => ctx.log.warn(`could not remove the partial export ${target.fsPath}: ${String(u)}`));
          throw e;
        }
      },
    );
    ctx.log.info(`exported ${rows} rows of task #${id} step ${n} to ${target.fsPath}`);
    const reveal = vscode.env.uiKind === vscode.UIKind.Desktop ? ['Reveal in File Explorer'] : [];
    // "1 rows" is kept: test/e2e/extension.e2e.ts waits for exactly "exported 1 rows".
    void vscode.window.showInformationMessage(`PG Tasks: exported ${rows.toLocaleString('en-US')} rows to ${target.fsPath}.`, 'Open File', ...reveal).then((a) => {
      if (a === 'Open File') void vscode.commands.executeCommand('vscode.open', target);
      else if (a) void vscode.commands.executeCommand('revealFileInOS', target);
    });
    return target;
  } catch (e) {
    await showProblem(ctx, 'the export failed', e, connection, () => exportStep(ctx, connection, id, n, format));
    return undefined;
  }
}

export function rerunTask(ctx: Ctx, views: TaskViews) {
  return async (arg?: unknown): Promise<void> => {
    const node = await pickTask(ctx, arg, 'Re-run which task?', ['done', 'failed', 'cancelled', 'lost']);
    if (!node) return;
    try {
      const t = await node.connection.tasks.get(node.task.id);
      if (!t) throw new Error(`task #${node.task.id} is not visible any more`);
      const id = await node.connection.tasks.submit(t.steps.length === 1 ? t.steps[0].sql : t.steps.map((s) => s.sql), {
        info: t.info,
        options: t.options,
      });
      void vscode.window.showInformationMessage(`PG Tasks: task #${id} submitted (a re-run of #${t.id}).`, 'Open').then((a) => {
        if (a) void views.openPanel(node.connection, id);
      });
    } catch (e) {
      await showProblem(ctx, `could not re-run task #${node.task.id}`, e, node.connection);
    }
  };
}

export function copySql(_ctx: Ctx) {
  return async (arg?: unknown): Promise<void> => {
    const node = arg as { task?: { sql?: string } } | undefined;
    if (node?.task?.sql) await vscode.env.clipboard.writeText(node.task.sql);
  };
}

export function purgeHistory(ctx: Ctx, views: TaskViews) {
  return async (arg?: unknown): Promise<void> => {
    const connection = await pickConnection(ctx, arg, 'Purge the history of which connection?');
    if (!connection) return;
    const age = await vscode.window.showQuickPick(
      [
        { label: 'Ended more than 30 days ago', what: 'that ended more than 30 days ago', interval: '30 days' },
        { label: 'Ended more than 7 days ago', what: 'that ended more than 7 days ago', interval: '7 days' },
        { label: 'Ended more than 1 day ago', what: 'that ended more than a day ago', interval: '1 day' },
        { label: 'All ended tasks', what: 'that have ended', interval: '0 seconds' },
      ],
      { title: `Purge task history on ${connection.name}`, placeHolder: 'Which ended tasks? Queued and running tasks are never purged.' },
    );
    if (!age) return;
    const ok = await vscode.window.showWarningMessage(
      `Delete the tasks on ${connection.name} ${age.what}?`,
      { modal: true, detail: 'Their SQL, errors and collected result rows are deleted from the server. This cannot be undone.' },
      'Purge',
    );
    if (ok !== 'Purge') return;
    try {
      const n = await vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: `PG Tasks: purging ${connection.name}` }, () =>
        connection.tasks.purge(age.interval),
      );
      void vscode.window.showInformationMessage(
        n === 0 ? `PG Tasks: no tasks on ${connection.name} ${age.what}; nothing was purged.` : `PG Tasks: purged ${n} task${n === 1 ? '' : 's'} on ${connection.name}.`,
      );
      views.refreshTree();
      views.refreshPanels();
    } catch (e) {
      await showProblem(ctx, 'purge failed', e, connection);
    }
  };
}
