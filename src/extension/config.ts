import * as vscode from 'vscode';
import type { ConnectionSpec } from '../core/connectionSettings';
import type { TaskOptions } from '../core/models';

/** A saved connection, as the `pgTasks.connections` setting holds it (passwords live in SecretStorage). */
export interface SavedConnection extends ConnectionSpec {
  name: string;
}

/** Typed reader of the `pgTasks.*` settings; read on each use, so changes apply without a reload. */
export const config = {
  connections(): SavedConnection[] {
    const raw = vscode.workspace.getConfiguration('pgTasks').get<unknown[]>('connections', []);
    return raw.filter((c): c is SavedConnection => typeof c === 'object' && c !== null && typeof (c as SavedConnection).name === 'string');
  },
  async saveConnections(list: SavedConnection[]): Promise<void> {
    await vscode.workspace.getConfiguration('pgTasks').update('connections', list, vscode.ConfigurationTarget.Global);
  },
  askForDescription(): boolean {
    return vscode.workspace.getConfiguration('pgTasks').get<boolean>('askForDescription', true);
  },
  notifyOnFinish(): boolean {
    return vscode.workspace.getConfiguration('pgTasks').get<boolean>('notifyOnFinish', true);
  },
  finishedPageSize(): number {
    return vscode.workspace.getConfiguration('pgTasks').get<number>('finishedPageSize', 50);
  },
  taskOptions(): TaskOptions {
    const c = vscode.workspace.getConfiguration('pgTasks');
    const opts: TaskOptions = { stop_on_error: c.get<boolean>('stopOnError', true) };
    const st = c.get<string>('statementTimeout', '');
    const lt = c.get<string>('lockTimeout', '');
    const max = c.get<number>('maxRows', 0);
    if (st) opts.statement_timeout = st;
    if (lt) opts.lock_timeout = lt;
    if (max > 0) opts.max_rows = max;
    return opts;
  },
};
