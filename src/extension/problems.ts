import * as vscode from 'vscode';
import { toTaskError, type TaskError, type TaskErrorReason } from '../core/errors';
import type { Connection } from './connections';
import type { Ctx } from './ctx';
import { isSqlState, problemText } from './format/problem';

/** The button that fixes a problem, by reason (STYLE.md: a failed user action gets a notification with actions). */
const FIXES: Partial<Record<TaskErrorReason, { title: string; command: string }>> = {
  noSchema: { title: 'Install Schema', command: 'pgTasks.installSchema' },
  schemaTooOld: { title: 'Upgrade Schema', command: 'pgTasks.installSchema' },
  noPassword: { title: 'Set Password', command: 'pgTasks.setPassword' },
  passwordRefused: { title: 'Set Password', command: 'pgTasks.setPassword' },
};

/** A TaskError as one line: the sentence, the SQLSTATE when there is a real one, the server's hint. */
export function describeError(err: TaskError): string {
  const code = isSqlState(err.sqlstate) ? ` (SQLSTATE ${err.sqlstate})` : '';
  const text = `${problemText(err.message, err.sqlstate)}${code}`;
  return err.hint ? `${text.replace(/\.$/, '')}. ${err.hint}` : text;
}

/** Whether the error is about reaching the server at all (socket errno or a connection SQLSTATE). */
export function isUnreachable(err: TaskError): boolean {
  return err.reason === 'connection' || (err.sqlstate !== undefined && !isSqlState(err.sqlstate));
}

/**
 * Shows a failed action as one sentence (with the SQLSTATE and the server's hint) and the button that helps;
 * the full error goes to the log. With `retry`, a Retry button runs it again.
 */
export async function showProblem(ctx: Ctx, what: string, e: unknown, connection?: Connection, retry?: () => unknown): Promise<void> {
  const err = toTaskError(e);
  ctx.log.error(`${what}: ${err.sqlstate ? `[${err.sqlstate}] ` : ''}${err.message}${err.hint ? ` (hint: ${err.hint})` : ''}`);
  const fix = FIXES[err.reason];
  const actions = [...(fix && connection ? [fix.title] : []), ...(retry ? ['Retry'] : []), 'Show Log'];
  const choice = await vscode.window.showErrorMessage(`PG Tasks: ${what}: ${describeError(err)}`, ...actions);
  if (choice === 'Show Log') ctx.log.show();
  else if (choice === 'Retry') await retry?.();
  else if (fix && choice === fix.title && connection) await vscode.commands.executeCommand(fix.command, { kind: 'connection', connection });
}

/**
 * When a connection cannot run tasks yet, says why with the fixing button; returns whether it is ready. A
 * connection that cannot be reached offers Retry, which checks again and, when the server is back, goes on
 * with what the user was doing instead of making them start over.
 */
export async function ensureReady(ctx: Ctx, connection: Connection): Promise<boolean> {
  if (connection.state === 'checking' || connection.state === 'error') await ctx.connections.recheck(connection);
  const node = { kind: 'connection', connection };
  const ask = async (text: string, title: string, command: string) => {
    if ((await vscode.window.showWarningMessage(`PG Tasks: ${connection.name}: ${text}`, title)) === title) {
      await vscode.commands.executeCommand(command, node);
    }
  };
  switch (connection.state) {
    case 'ready':
      return true;
    case 'noSchema':
      await ask('the bgtask schema is not installed in this database.', 'Install Schema', 'pgTasks.installSchema');
      return false;
    case 'outdated':
      await ask(`the bgtask schema is version ${connection.schema?.installedVersion}, older than this extension needs (${connection.schema?.latestVersion}).`, 'Upgrade Schema', 'pgTasks.installSchema');
      return false;
    case 'newer':
      void vscode.window.showErrorMessage(`PG Tasks: ${connection.name}: the bgtask schema is newer than this extension knows; update the extension.`);
      return false;
    case 'noPassword':
      await ask('background tasks log in again through dblink and need your password stored on the server first.', 'Set Password', 'pgTasks.setPassword');
      return false;
    case 'noDblink':
      void vscode.window.showErrorMessage(`PG Tasks: ${connection.name}: the dblink extension is not available on this server. Install the PostgreSQL contrib package, or allow-list dblink on a managed service.`);
      return false;
    default: {
      let again = false;
      await showProblem(ctx, `cannot use ${connection.name}`, connection.problem ?? new Error('the connection failed'), connection, () => (again = true));
      return again ? ensureReady(ctx, connection) : false;
    }
  }
}
