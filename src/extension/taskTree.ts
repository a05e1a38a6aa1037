import * as vscode from 'vscode';
import type { Logger } from '../core/logger';
import { FINISHED_STATES, type TaskSummary } from '../core/models';
import type { TaskEvent } from '../core/taskWatcher';
import { config } from './config';
import type { Connection } from './connections';
import type { Ctx } from './ctx';
import { connectionAdvice, connectionDescription, connectionTooltip, type ConnectionFacts } from './format/connection';
import { connectionIcon, stateIcon, type IconSpec } from './format/icons';
import { problemText } from './format/problem';
import { taskDescription, taskLabel, taskTooltipMarkdown } from './format/task';
import type { ConnectionNode, GroupNode, LoadMoreNode, MessageNode, TaskNode, TreeNode } from './nodes';
import { describeError } from './problems';

/** What the Task Explorer needs of the connections; ConnectionManager is one. */
export interface TaskSource {
  list(): readonly Connection[];
  readonly onDidChange: vscode.Event<Connection | undefined>;
  readonly onDidChangeTasks: vscode.Event<{ connection: Connection; event: TaskEvent }>;
}

/** Queued and running tasks shown at most; more would mean a runaway script, and the tooltip of the last row says so. */
const RUNNING_CAP = 200;
/** Task events come in bursts (a script of 50 steps, a reap): one reload per burst. */
const DEBOUNCE_MS = 150;
/** Durations and wait events of running tasks change without events; re-read them this often, only while visible. */
const LIVE_MS = 5_000;
/** reap() records lost tasks and starts queued ones; once a minute is plenty, and it writes. */
const REAP_EVERY_MS = 60_000;

interface GroupData {
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

interface ConnData {
  node: ConnectionNode;
  running: GroupData;
  finished: GroupData;
  lastReap: number;
  reaping: Promise<void> | undefined;
  pending: { running: boolean; finished: boolean };
}

const themeIcon = (i: IconSpec) => new vscode.ThemeIcon(i.id, i.color ? new vscode.ThemeColor(i.color) : undefined);
const errorText = (e: unknown) => (e instanceof Error ? e.message : String(e));
/** Tree item ids that no connection name can make collide (names may contain any character). */
const treeId = (...parts: (string | number)[]) => JSON.stringify(parts);

/**
 * The Task Explorer: connection → Running (live) / Finished (paged, newest first). Groups load lazily when
 * VS Code asks for their children; task events and a 5 s timer (only while the view is visible and something
 * runs) mark them stale and ask VS Code to ask again.
 */
export class TaskTreeProvider implements vscode.TreeDataProvider<TreeNode>, vscode.Disposable {
  private readonly changed = new vscode.EventEmitter<TreeNode | undefined>();
  readonly onDidChangeTreeData = this.changed.event;
  private readonly conns = new Map<Connection, ConnData>();
  /** Nodes VS Code has been given; firing a change for any other node would refer to nothing. */
  private readonly shown = new WeakSet<TreeNode>();
  private readonly parents = new WeakMap<TreeNode, TreeNode>();
  private readonly messageIcons = new WeakMap<MessageNode, string>();
  private readonly subscriptions: vscode.Disposable[] = [];
  private debounceTimer: NodeJS.Timeout | undefined;
  private liveTimer: NodeJS.Timeout | undefined;
  private visible = false;
  private disposed = false;

  constructor(
    private readonly source: TaskSource,
    private readonly log: Logger,
    private readonly pageSize: () => number,
  ) {
    this.subscriptions.push(
      source.onDidChange((c) => (c ? this.refresh(c) : this.refresh())),
      source.onDidChangeTasks(({ connection, event }) => this.onTaskEvent(connection, event)),
    );
  }

  /** Reloads one connection (its state and both groups), or everything. */
  refresh(connection?: Connection): void {
    if (!connection) {
      const alive = new Set(this.source.list());
      for (const c of this.conns.keys()) if (!alive.has(c)) this.conns.delete(c);
      for (const d of this.conns.values()) d.running.stale = d.finished.stale = true;
      this.changed.fire(undefined);
      return;
    }
    const d = this.data(connection);
    d.running.stale = d.finished.stale = true;
    this.fire(d.node);
  }

  /** Appends the next page of finished tasks of a connection. */
  async loadMore(connection: Connection): Promise<void> {
    const g = this.data(connection).finished;
    await this.ensureLoaded(connection, g);
    const loaded = g.tasks;
    const last = loaded?.at(-1);
    if (!loaded || !last) return;
    const pageSize = this.pageSize();
    g.limit = loaded.length + pageSize;
    try {
      const page = await connection.tasks.list({ beforeId: last.id, pageSize, states: [...FINISHED_STATES] });
      // A refresh that started meanwhile reloads g.limit rows, this page included; let it win.
      if (g.stale || g.loading || g.tasks !== loaded) return;
      g.tasks = [...loaded, ...page];
      g.full = page.length >= pageSize;
      this.fire(g.node);
    } catch (e) {
      // A failed click: say so where the user looks, and keep the tasks already listed.
      this.log.warn(`${connection.name}: cannot load more finished tasks: ${errorText(e)}`);
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

  getTreeItem(node: TreeNode): vscode.TreeItem {
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
        return this.taskItem(node);
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

  async getChildren(node?: TreeNode): Promise<TreeNode[]> {
    let children: TreeNode[];
    if (!node) children = this.source.list().map((c) => this.data(c).node);
    else if (node.kind === 'connection') children = this.connectionChildren(node.connection);
    else if (node.kind === 'group') children = await this.groupChildren(node);
    else children = [];
    for (const child of children) {
      this.shown.add(child);
      if (node) this.parents.set(child, node);
    }
    return children;
  }

  getParent(node: TreeNode): TreeNode | undefined {
    return this.parents.get(node);
  }

  dispose(): void {
    this.disposed = true;
    clearTimeout(this.debounceTimer);
    clearTimeout(this.liveTimer);
    this.liveTimer = undefined;
    for (const s of this.subscriptions) s.dispose();
    this.changed.dispose();
  }

  private data(c: Connection): ConnData {
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

  private fire(node: TreeNode): void {
    if (this.shown.has(node)) this.changed.fire(node);
    else if (node.kind === 'connection') this.changed.fire(undefined);
  }

  private markStale(g: GroupData): void {
    g.stale = true;
    this.fire(g.node);
  }

  private onTaskEvent(c: Connection, e: TaskEvent): void {
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

  private async ensureLoaded(c: Connection, g: GroupData): Promise<void> {
    while (g.stale || (g.tasks === undefined && g.error === undefined)) {
      if (!g.loading) {
        g.stale = false;
        g.loading = this.load(c, g).finally(() => (g.loading = undefined));
      }
      await g.loading;
    }
  }

  private async load(c: Connection, g: GroupData): Promise<void> {
    const d = this.data(c);
    if (Date.now() - d.lastReap >= REAP_EVERY_MS) {
      d.lastReap = Date.now();
      d.reaping = c.tasks.reap().then(
        (lost) => (lost > 0 ? this.log.info(`${c.name}: ${lost} lost task(s) recorded`) : undefined),
        // Listing works without it, and the next reload a minute later tries again.
        (e: unknown) => this.log.warn(`${c.name}: reap failed: ${errorText(e)}`),
      );
    }
    await d.reaping;
    try {
      if (g.node.group === 'running') {
        g.tasks = await c.tasks.list({ states: ['queued', 'running'], pageSize: RUNNING_CAP });
        g.full = g.tasks.length >= RUNNING_CAP;
      } else {
        g.limit = Math.max(g.limit, this.pageSize());
        g.tasks = await c.tasks.list({ states: [...FINISHED_STATES], pageSize: g.limit });
        g.full = g.tasks.length >= g.limit;
      }
      g.error = undefined;
    } catch (e) {
      this.log.warn(`${c.name}: cannot list ${g.node.group} tasks: ${errorText(e)}`);
      g.tasks = undefined;
      g.error = errorText(e);
    }
    this.updateLiveTimer();
  }

  private message(c: Connection, text: string, icon: string, command?: MessageNode['command'], tooltip?: string): MessageNode {
    const node: MessageNode = { kind: 'message', connection: c, text, ...(command && { command }), ...(tooltip && { tooltip }) };
    this.messageIcons.set(node, icon);
    return node;
  }

  private facts(c: Connection): ConnectionFacts {
    // The problem as a sentence ("Cannot reach the server at …: connection refused…"), not "connect ECONNREFUSED".
    const problem = c.problem && problemText(c.problem.message, c.problem.sqlstate);
    return { state: c.state, label: c.resolved.label, problem, installedVersion: c.schema?.installedVersion, latestVersion: c.schema?.latestVersion };
  }

  /**
   * What a connection shows while it cannot run tasks: the one action that fixes it, its tooltip saying why
   * (the connection row's description already names the trouble, and a sidebar is too narrow for sentences).
   */
  private connectionChildren(c: Connection): TreeNode[] {
    const d = this.data(c);
    const args = [d.node];
    const advice = connectionAdvice(this.facts(c));
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

  private async groupChildren(node: GroupNode): Promise<TreeNode[]> {
    const c = node.connection;
    const d = this.data(c);
    const g = node.group === 'running' ? d.running : d.finished;
    await this.ensureLoaded(c, g);
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

  private connectionItem(node: ConnectionNode): vscode.TreeItem {
    const c = node.connection;
    const facts = this.facts(c);
    const item = new vscode.TreeItem(c.name, vscode.TreeItemCollapsibleState.Expanded);
    item.id = treeId('connection', c.name);
    item.description = connectionDescription(facts);
    item.tooltip = connectionTooltip(c.name, facts);
    item.iconPath = themeIcon(connectionIcon(c.state));
    item.contextValue = `connection.${c.state}`;
    return item;
  }

  private taskItem(node: TaskNode): vscode.TreeItem {
    const t = node.task;
    const now = new Date();
    const group = this.parents.get(node)?.kind === 'group' ? (this.parents.get(node) as GroupNode).group : t.state;
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

/** Creates the Task Explorer view and its Load More command; the returned provider's refresh() serves the Refresh command. */
export function registerTaskTree(ctx: Ctx): TaskTreeProvider {
  const provider = new TaskTreeProvider(ctx.connections, ctx.log, () => config.finishedPageSize());
  const view = vscode.window.createTreeView('pgTasks.tasks', { treeDataProvider: provider, showCollapseAll: true });
  provider.setVisible(view.visible);
  ctx.subscriptions.push(
    provider,
    view,
    view.onDidChangeVisibility((e) => provider.setVisible(e.visible)),
    vscode.commands.registerCommand('pgTasks.loadMore', (node?: LoadMoreNode) => (node?.kind === 'loadMore' ? provider.loadMore(node.connection) : undefined)),
  );
  return provider;
}
