import * as vscode from 'vscode';
import type { Logger } from '../core/logger';
import type { TaskEvent } from '../core/taskWatcher';
import { config } from './config';
import type { Connection } from './connections';
import type { Ctx } from './ctx';
import type { GroupNode, LoadMoreNode, TreeNode } from './nodes';
import { TaskTreeData } from './taskTreeData';
import { TaskTreeNodes } from './taskTreeNodes';

/** What the Task Explorer needs of the connections; ConnectionManager is one. */
export interface TaskSource {
  list(): readonly Connection[];
  readonly onDidChange: vscode.Event<Connection | undefined>;
  readonly onDidChangeTasks: vscode.Event<{ connection: Connection; event: TaskEvent }>;
}

/**
 * The Task Explorer: connection → Running (live) / Finished (paged, newest first). Groups load lazily when
 * VS Code asks for their children; task events and a 5 s timer (only while the view is visible and something
 * runs) mark them stale and ask VS Code to ask again. What is loaded and when is TaskTreeData's; what each row
 * is and looks like is TaskTreeNodes'; this class answers VS Code and keeps track of what it has been given.
 */
export class TaskTreeProvider implements vscode.TreeDataProvider<TreeNode>, vscode.Disposable {
  private readonly changed = new vscode.EventEmitter<TreeNode | undefined>();
  readonly onDidChangeTreeData = this.changed.event;
  private readonly data: TaskTreeData;
  private readonly nodes = new TaskTreeNodes();
  /** Nodes VS Code has been given; firing a change for any other node would refer to nothing. */
  private readonly shown = new WeakSet<TreeNode>();
  private readonly parents = new WeakMap<TreeNode, TreeNode>();
  private readonly subscriptions: vscode.Disposable[] = [];

  constructor(private readonly source: TaskSource, log: Logger, pageSize: () => number) {
    this.data = new TaskTreeData({
      connections: () => source.list(),
      log,
      pageSize,
      changed: (node) => (node ? this.fire(node) : this.changed.fire(undefined)),
    });
    this.subscriptions.push(
      source.onDidChange((c) => (c ? this.refresh(c) : this.refresh())),
      source.onDidChangeTasks(({ connection, event }) => this.data.onTaskEvent(connection, event)),
    );
  }

  /** Reloads one connection (its state and both groups), or everything. */
  refresh(connection?: Connection): void {
    this.data.refresh(connection);
  }

  /** Appends the next page of finished tasks of a connection. */
  loadMore(connection: Connection): Promise<void> {
    return this.data.loadMore(connection);
  }

  /** Called by the view: polls only while someone can see the result. */
  setVisible(visible: boolean): void {
    this.data.setVisible(visible);
  }

  getTreeItem(node: TreeNode): vscode.TreeItem {
    return this.nodes.treeItem(node, this.parents.get(node));
  }

  async getChildren(node?: TreeNode): Promise<TreeNode[]> {
    let children: TreeNode[];
    if (!node) children = this.source.list().map((c) => this.data.get(c).node);
    else if (node.kind === 'connection') children = this.nodes.connectionChildren(this.data.get(node.connection));
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
    this.data.dispose();
    for (const s of this.subscriptions) s.dispose();
    this.changed.dispose();
  }

  private fire(node: TreeNode): void {
    if (this.shown.has(node)) this.changed.fire(node);
    else if (node.kind === 'connection') this.changed.fire(undefined);
  }

  private async groupChildren(node: GroupNode): Promise<TreeNode[]> {
    const c = node.connection;
    const d = this.data.get(c);
    const g = node.group === 'running' ? d.running : d.finished;
    await this.data.ensureLoaded(c, g);
    return this.nodes.groupChildren(node, d, g);
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
