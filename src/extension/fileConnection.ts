import * as vscode from 'vscode';
import type { Connection } from './connections';
import type { Ctx } from './ctx';
import { notReadyDetail } from './pick';

const MEMORY_KEY = 'pgTasks.fileConnections';
/** Run commands are offered for these languages (package.json's `editorLangId` clauses say the same). */
const SQL_LANGUAGES = new Set(['sql', 'postgres', 'pgsql']);
/** Not in the palette on purpose: it only makes sense from the status bar item of an SQL editor. */
export const CHOOSE_COMMAND = 'pgTasks.chooseConnectionForFile';

/**
 * Which connection each SQL file runs on, remembered per workspace, and a status bar item that shows it for
 * the active editor: without it a choice made once could never be seen or changed.
 */
export class FileConnections implements vscode.Disposable {
  private readonly item: vscode.StatusBarItem;
  private readonly subscriptions: vscode.Disposable[] = [];

  constructor(private readonly ctx: Ctx) {
    this.item = vscode.window.createStatusBarItem('pgTasks.fileConnection', vscode.StatusBarAlignment.Right, 100);
    this.item.name = 'PG Tasks: Connection of this file';
    this.item.command = CHOOSE_COMMAND;
    this.subscriptions.push(
      this.item,
      vscode.commands.registerCommand(CHOOSE_COMMAND, async (uri?: vscode.Uri) => {
        const doc = uri ? await vscode.workspace.openTextDocument(uri) : vscode.window.activeTextEditor?.document;
        if (doc) await this.choose(doc);
      }),
      vscode.window.onDidChangeActiveTextEditor(() => this.render()),
      ctx.connections.onDidChange(() => this.render()),
    );
    this.render();
  }

  /** The connection remembered for this file, the only one there is, or the user's pick (then remembered). */
  async forDocument(doc: vscode.TextDocument): Promise<Connection | undefined> {
    const remembered = this.remembered(doc);
    if (remembered) return remembered;
    if (this.ctx.connections.list().length === 1) return this.ctx.connections.list()[0];
    return this.choose(doc);
  }

  /** Asks which connection the file runs on and remembers the answer. */
  async choose(doc: vscode.TextDocument): Promise<Connection | undefined> {
    const all = this.ctx.connections.list();
    if (all.length === 0) {
      const add = await vscode.window.showInformationMessage('PG Tasks: there is no connection yet.', 'Add Connection');
      if (add) await vscode.commands.executeCommand('pgTasks.addConnection');
      return undefined;
    }
    const current = this.remembered(doc);
    const file = vscode.workspace.asRelativePath(doc.uri);
    const picked = await vscode.window.showQuickPick(
      all.map((c) => ({
        label: `${c === current ? '$(check) ' : ''}${c.name}`,
        description: c.resolved.label,
        detail: notReadyDetail(c),
        connection: c,
      })),
      { title: `Run ${file} on which connection?`, placeHolder: 'Remembered for this file; click the connection in the status bar to change it' },
    );
    if (!picked) return undefined;
    const memory = this.ctx.extCtx.workspaceState.get<Record<string, string>>(MEMORY_KEY, {});
    await this.ctx.extCtx.workspaceState.update(MEMORY_KEY, { ...memory, [doc.uri.toString()]: picked.connection.name });
    this.render();
    return picked.connection;
  }

  dispose(): void {
    for (const s of this.subscriptions.splice(0)) s.dispose();
  }

  private remembered(doc: vscode.TextDocument): Connection | undefined {
    const name = this.ctx.extCtx.workspaceState.get<Record<string, string>>(MEMORY_KEY, {})[doc.uri.toString()];
    return name ? this.ctx.connections.get(name) : undefined;
  }

  private render(): void {
    const doc = vscode.window.activeTextEditor?.document;
    const all = this.ctx.connections.list();
    if (!doc || !SQL_LANGUAGES.has(doc.languageId) || all.length === 0) {
      this.item.hide();
      return;
    }
    const c = this.remembered(doc) ?? (all.length === 1 ? all[0] : undefined);
    this.item.text = `$(database) ${c ? c.name : 'PG Tasks: no connection'}`;
    this.item.tooltip = c
      ? `Background tasks from this file run on ${c.name} (${c.resolved.label}). Click to choose another connection.`
      : 'Background tasks from this file: no connection chosen yet. Click to choose one.';
    this.item.show();
  }
}
