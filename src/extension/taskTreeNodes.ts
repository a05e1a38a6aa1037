import * as vscode from 'vscode';
import type { Connection } from './connections';
import { connectionAdvice, connectionDescription, connectionTooltip, type ConnectionFacts } from './format/connection';
import { connectionIcon, stateIcon, type IconSpec } from './format/icons';
import { problemText } from './format/problem';
import { taskDescription, taskLabel, taskTooltipMarkdown } from './format/task';
import type { ConnectionNode, GroupNode, LoadMoreNode, MessageNode, TaskNode, TreeNode } from './nodes';
import { describeError } from './problems';
import { RUNNING_CAP, type ConnData, type GroupData } from './taskTreeData';

const themeIcon = (i: IconSpec) => new vscode.ThemeIcon(i.id, i.color ? new vscode.ThemeColor(i.color) : undefined);
/** Tree item ids that no connection name can make collide (names may contain any character). */
const treeId = (...parts: (string | number)[]) => JSON.stringify(parts);

function connectionFacts(c: Connection): ConnectionFacts {
  // The problem as a sentence ("Cannot reach the server at …: connection refused…"), not "connect ECONNREFUSED".
  const problem = c.problem && problemText(c.problem.message, c.problem.sqlstate);
  return { state: c.state, label: c.resolved.label, problem, installedVersion: c.schema?.installedVersion, latestVersion: c.schema?.latestVersion };
}

/**
 * The rows of the Task Explorer: the nodes under a connection and under a group, and the TreeItem that shows
 * each node. A message row's icon is kept beside it, not in MessageNode, which is also what commands receive.
 */
export class TaskTreeNodes {
  private readonly messageIcons = new WeakMap<MessageNode, string>();

  /**
   * What a connection shows while it cannot run tasks: the one action that fixes it, its tooltip saying why
   * (the connection row's description already names the trouble, and a sidebar is too narrow for sentences).
   */
  connectionChildren(d: ConnData): TreeNode[] {
    const c = d.node.connection;
    const args = [d.node];
    const advice = connectionAdvice(connectionFacts(c));
    const action = (text: string, icon: string, command: string, title: string) => this.message(c, text, icon, { command, title, arguments: args }, advice);
    switch (c.state) {
      case 'ready':
        return [d.running.node, d.finished.node];
      case 'checking':
        return [this.message(c, 'Connecting…', 'loading~spin')];
      case 'noSchema':
        return [action('Install the bgtask schema…', 'cloud-download', 'pgTasks.installSchema', 'Install the bgtask schema')];
      case 'outdated':
        return [action('Upgrade the bgtask schema…', 'cloud-download', 'pgTasks.installSchema', 'Upgrade the bgtask schema')];
      case 'noPassword':
        return [action('Set the password for background tasks…', 'key', 'pgTasks.setPassword', 'Set Password')];
      case 'newer':
      case 'noDblink':
        return [this.message(c, advice, 'warning', undefined, advice)];
      case 'error': {
        const p = c.problem;
        const text = p ? problemText(p.message, p.sqlstate) : 'Cannot connect.';
        const rows = [this.message(c, text, 'error', undefined, p ? describeError(p) : text)];
        // The server's hint says what to do (e.g. "GRANT bgtask_user TO alice;"): worth its own line.
        if (p?.hint) rows.push(this.message(c, p.hint, 'lightbulb', undefined, p.hint));
        if (p && (p.reason === 'passwordRefused' || /password/i.test(p.message))) rows.push(action('Enter the password…', 'key', 'pgTasks.setPassword', 'Set Password'));
        rows.push(this.message(c, 'Retry', 'refresh', { command: 'pgTasks.refresh', title: 'Retry', arguments: args }, 'Connect again and re-check the schema'));
        return rows;
      }
    }
  }

  /** The rows of a group whose tasks are loaded (TaskTreeData.ensureLoaded): its tasks, or why there are none. */
  groupChildren(node: GroupNode, d: ConnData, g: GroupData): TreeNode[] {
    const c = node.connection;
    if (g.error !== undefined || !g.tasks) {
      return [
        this.message(c, `Cannot list tasks: ${g.error ?? 'unknown error'}`, 'error'),
        this.message(c, 'Retry', 'refresh', { command: 'pgTasks.refresh', title: 'Retry', arguments: [d.node] }),
      ];
    }
    const tasks: TreeNode[] = g.tasks.map((task): TaskNode => ({ kind: 'task', connection: c, task }));
    if (node.group === 'running') {
      if (tasks.length === 0) {
        return [this.message(c, 'No running tasks', 'info', undefined, 'Put the cursor in an SQL statement and press Ctrl+Alt+B, or click "Run in background" above it.')];
      }
      if (g.full) tasks.push(this.message(c, `Showing the newest ${RUNNING_CAP} queued or running tasks`, 'info'));
      return tasks;
    }
    if (tasks.length === 0) return [this.message(c, 'No finished tasks', 'info', undefined, 'Tasks appear here when they end, newest first. Purge History removes old ones.')];
    if (g.full) tasks.push({ kind: 'loadMore', connection: c } satisfies LoadMoreNode);
    return tasks;
  }

  /** The TreeItem of a node; `parent` is the node it was listed under, if any. */
  treeItem(node: TreeNode, parent: TreeNode | undefined): vscode.TreeItem {
    switch (node.kind) {
      case 'connection':
        return this.connectionItem(node);
      case 'group': {
        const item = new vscode.TreeItem(node.group === 'running' ? 'Running' : 'Finished', vscode.TreeItemCollapsibleState.Expanded);
        item.id = treeId('group', node.connection.name, node.group);
        item.iconPath = new vscode.ThemeIcon(node.group === 'running' ? 'pulse' : 'history');
        item.contextValue = `group.${node.group}`;
        return item;
      }
      case 'task':
        return this.taskItem(node, parent);
      case 'loadMore': {
        const item = new vscode.TreeItem('Load more…');
        item.id = treeId('more', node.connection.name);
        item.iconPath = new vscode.ThemeIcon('ellipsis');
        item.command = { command: 'pgTasks.loadMore', title: 'Load More Tasks', arguments: [node] };
        item.contextValue = 'loadMore';
        return item;
      }
      case 'message': {
        const item = new vscode.TreeItem(node.text);
        item.tooltip = node.tooltip ?? node.text;
        item.iconPath = new vscode.ThemeIcon(this.messageIcons.get(node) ?? 'info');
        if (node.command) item.command = node.command;
        item.contextValue = 'message';
        return item;
      }
    }
  }

  private message(c: Connection, text: string, icon: string, command?: MessageNode['command'], tooltip?: string): MessageNode {
    const node: MessageNode = { kind: 'message', connection: c, text, ...(command && { command }), ...(tooltip && { tooltip }) };
    this.messageIcons.set(node, icon);
    return node;
  }

  private connectionItem(node: ConnectionNode): vscode.TreeItem {
    const c = node.connection;
    const facts = connectionFacts(c);
    const item = new vscode.TreeItem(c.name, vscode.TreeItemCollapsibleState.Expanded);
    item.id = treeId('connection', c.name);
    item.description = connectionDescription(facts);
    item.tooltip = connectionTooltip(c.name, facts);
    item.iconPath = themeIcon(connectionIcon(c.state));
    item.contextValue = `connection.${c.state}`;
    return item;
  }

  private taskItem(node: TaskNode, parent: TreeNode | undefined): vscode.TreeItem {
    const t = node.task;
    const now = new Date();
    const group = parent?.kind === 'group' ? parent.group : t.state;
    const item = new vscode.TreeItem(taskLabel(t));
    // The group is part of the id: for a moment a task that just ended can be listed under both groups.
    item.id = treeId('task', node.connection.name, group, t.id);
    item.description = taskDescription(t, now);
    // Another role's SQL and info: never trusted, never HTML, so a command: link in it stays text.
    const tooltip = new vscode.MarkdownString(taskTooltipMarkdown(t, now));
    tooltip.isTrusted = false;
    tooltip.supportHtml = false;
    item.tooltip = tooltip;
    item.iconPath = themeIcon(stateIcon(t.state));
    item.command = { command: 'pgTasks.openTask', title: 'Open Task', arguments: [node] };
    // TaskSummary says nothing about stored rows; only a done task can have a complete result to collect.
    item.contextValue = t.state === 'running' || t.state === 'queued' ? `task.${t.state}` : t.state === 'done' ? 'task.finished.result' : 'task.finished';
    return item;
  }
}
