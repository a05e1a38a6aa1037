import * as vscode from 'vscode';
import type { Connection } from './connections';
import type { Ctx } from './ctx';
import type { TaskState, TaskSummary } from '../core/models';
import { isConnectionNode, isTaskNode, type TaskNode } from './nodes';
import { toTaskError } from '../core/errors';
import { connectionDescription } from './format/connection';
import { problemText } from './format/problem';

/** Why a connection in a pick list cannot run tasks, in the words the Task Explorer uses. */
export function notReadyDetail(c: Connection): string | undefined {
  if (c.state === 'ready') return undefined;
  const problem = c.problem && problemText(c.problem.message, c.problem.sqlstate);
  return `$(warning) ${connectionDescription({ state: c.state, label: c.resolved.label, problem })}`;
}

/** The connection a command works on: the tree node it came from, the only one, or a quick pick. */
export async function pickConnection(ctx: Ctx, arg: unknown, purpose: string): Promise<Connection | undefined> {
  if (isConnectionNode(arg) || isTaskNode(arg)) return arg.connection;
  const all = ctx.connections.list();
  if (all.length === 0) {
    const add = await vscode.window.showInformationMessage('PG Tasks: there is no connection yet.', 'Add Connection');
    if (add) await vscode.commands.executeCommand('pgTasks.addConnection');
    return undefined;
  }
  if (all.length === 1) return all[0];
  const picked = await vscode.window.showQuickPick(
    all.map((c) => ({ label: c.name, description: c.resolved.label, detail: notReadyDetail(c), connection: c })),
    { title: purpose, placeHolder: 'Choose a connection' },
  );
  return picked?.connection;
}

/** A task for a command: the tree node it came from, or a quick pick of recent tasks in the given states. */
export async function pickTask(ctx: Ctx, arg: unknown, purpose: string, states?: TaskState[]): Promise<TaskNode | undefined> {
  if (isTaskNode(arg)) return arg;
  const items: (vscode.QuickPickItem & { node?: TaskNode })[] = [];
  await vscode.window.withProgress({ location: vscode.ProgressLocation.Window, title: 'PG Tasks: listing tasks' }, async () => {
    for (const connection of ctx.connections.list().filter((c) => c.state === 'ready')) {
      let tasks: TaskSummary[];
      try {
        tasks = await connection.tasks.list({ pageSize: 50, states });
      } catch (e) {
        ctx.log.warn(`${connection.name}: ${toTaskError(e).message}`);
        continue;
      }
      if (tasks.length) items.push({ label: connection.name, kind: vscode.QuickPickItemKind.Separator });
      for (const task of tasks) {
        items.push({
          label: `#${task.id} ${task.info ?? ''}`.trim(),
          description: task.state,
          detail: task.sql.replace(/\s+/g, ' ').slice(0, 200),
          node: { kind: 'task', connection, task },
        });
      }
    }
  });
  if (!items.some((i) => i.node)) {
    void vscode.window.showInformationMessage(`PG Tasks: no ${states ? states.join(' or ') + ' ' : ''}tasks to choose from.`);
    return undefined;
  }
  return (await vscode.window.showQuickPick(items, { title: purpose, placeHolder: 'Choose a task', matchOnDetail: true }))?.node;
}
