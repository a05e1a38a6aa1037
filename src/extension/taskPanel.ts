import * as vscode from 'vscode';
import type { Connection } from './connections';
import type { Ctx } from './ctx';
import type { ErrorLocations } from './errorLocation';
import { commands } from './lazy';
import type { TaskPanel } from './taskPanelView';

const VIEW_TYPE = 'pgTasks.task';
const key = (connection: string, id: number) => `${connection}\u0000${id}`;

export interface TaskPanelsOptions {
  /** Re-runs a task; without it the panel runs the pgTasks.rerunTask command with a task node. */
  onRerun?: (connection: Connection, taskId: number) => unknown;
  /** Finds the failed statement in the user's file for "Go to Error". */
  errors?: ErrorLocations;
}

/**
 * The task webviews: one panel per (connection, task), restored after a reload by a serializer. Panels hold the
 * connection by name, because a settings change replaces the Connection object. A panel itself (TaskPanel, in
 * taskPanelView.ts) is in dist/commands.js, loaded when the first one opens (see lazy.ts).
 */
export class TaskPanels implements vscode.Disposable {
  private readonly panels = new Map<string, TaskPanel>();
  private readonly disposables: vscode.Disposable[] = [];
  private readonly webviewOptions: vscode.WebviewPanelOptions & vscode.WebviewOptions;

  constructor(
    private readonly ctx: Ctx,
    private readonly options: TaskPanelsOptions = {},
  ) {
    this.webviewOptions = {
      enableScripts: true,
      localResourceRoots: [vscode.Uri.joinPath(ctx.extensionUri, 'media', 'dist')],
      retainContextWhenHidden: false,
    };
    this.disposables.push(
      vscode.window.registerWebviewPanelSerializer(VIEW_TYPE, {
        deserializeWebviewPanel: async (panel, state: unknown) => {
          // The webview wrote this state, so it is checked like any message from it.
          const s = (typeof state === 'object' && state !== null ? state : {}) as { connection?: unknown; id?: unknown };
          if (typeof s.connection === 'string' && typeof s.id === 'number' && Number.isSafeInteger(s.id) && s.id > 0) {
            this.attach(panel, s.connection, s.id);
          } else {
            panel.dispose();
          }
        },
      }),
    );
  }

  /** Shows the task's panel, creating it or revealing the one already open. */
  async open(connection: Connection, taskId: number): Promise<void> {
    const existing = this.panels.get(key(connection.name, taskId));
    if (existing) existing.panel.reveal();
    else this.attach(vscode.window.createWebviewPanel(VIEW_TYPE, `Task #${taskId}`, vscode.ViewColumn.Active, this.webviewOptions), connection.name, taskId);
  }

  /** Re-reads every visible panel (after a purge, or when connections change). */
  refreshAll(): void {
    for (const p of this.panels.values()) if (p.panel.visible) void p.postTask();
  }

  /** Re-reads the task into its panel, if one is open (called on LISTEN events). */
  refresh(connectionName: string, taskId: number): void {
    const p = this.panels.get(key(connectionName, taskId));
    // A hidden panel has no webview (retainContextWhenHidden false); it asks again with 'ready' when shown.
    if (p?.panel.visible) void p.postTask();
  }

  private attach(panel: vscode.WebviewPanel, connection: string, taskId: number): void {
    panel.title = `Task #${taskId}`;
    panel.webview.options = this.webviewOptions;
    const k = key(connection, taskId);
    this.panels.get(k)?.panel.dispose(); // a restored panel of a task already open: keep one
    const p: TaskPanel = new (commands().TaskPanel)(panel, connection, taskId, this.ctx, this.options, () => this.panels.get(k) === p && this.panels.delete(k));
    this.panels.set(k, p);
  }

  dispose(): void {
    for (const p of [...this.panels.values()]) p.panel.dispose();
    this.panels.clear();
    for (const d of this.disposables.splice(0)) d.dispose();
  }
}
