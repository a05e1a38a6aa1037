import * as vscode from 'vscode';
import type { Ctx } from './ctx';

const ORIGINS_KEY = 'pgTasks.taskOrigins';
/** Submitted tasks whose file is remembered; older ones fall back to a search of the open editors. */
const ORIGINS_CAP = 500;
const SCHEME = 'pgtask';

/**
 * "Go to Error": puts the cursor where PostgreSQL says a task's statement failed. It prefers the file the task
 * was run from (remembered at submission, per workspace) or any open editor that still holds the statement
 * verbatim; only when neither does it show the statement in a read-only document, which, unlike an untitled
 * one, never asks to be saved when closed.
 */
export class ErrorLocations implements vscode.Disposable {
  private readonly contents = new Map<string, string>();
  private readonly changed = new vscode.EventEmitter<vscode.Uri>();
  private readonly registration: vscode.Disposable;

  constructor(private readonly ctx: Ctx) {
    this.registration = vscode.workspace.registerTextDocumentContentProvider(SCHEME, {
      onDidChange: this.changed.event,
      provideTextDocumentContent: (uri) => this.contents.get(uri.toString()) ?? '',
    });
  }

  /** Remembers which file a task came from (called right after it was submitted). */
  async remember(connection: string, id: number, uri: vscode.Uri): Promise<void> {
    const all = this.ctx.extCtx.workspaceState.get<[string, string][]>(ORIGINS_KEY, []);
    const next = [...all.filter(([k]) => k !== key(connection, id)), [key(connection, id), uri.toString()] as [string, string]];
    await this.ctx.extCtx.workspaceState.update(ORIGINS_KEY, next.slice(-ORIGINS_CAP));
  }

  /**
   * Opens the statement with the cursor at `position` (1-based characters, as the server counts them, with
   * \r\n as one), or at its start when there is none.
   */
  async show(connection: string, id: number, step: number, sql: string, position: number | undefined): Promise<void> {
    const found = (await this.inOrigin(connection, id, sql)) ?? this.inOpenEditors(sql);
    let doc: vscode.TextDocument;
    let start: vscode.Position;
    if (found) {
      ({ doc, start } = found);
    } else {
      const uri = vscode.Uri.from({ scheme: SCHEME, path: `/${safe(connection)}/task-${id}-step-${step}.sql` });
      this.contents.set(uri.toString(), sql.replace(/\r\n/g, '\n'));
      this.changed.fire(uri);
      doc = await vscode.workspace.openTextDocument(uri);
      start = new vscode.Position(0, 0);
    }
    const at = offsetPosition(start, sql, position);
    const editor = await vscode.window.showTextDocument(doc, { viewColumn: vscode.ViewColumn.Beside, preview: true });
    const range = position ? (doc.getWordRangeAtPosition(at) ?? new vscode.Range(at, at)) : new vscode.Range(at, at);
    editor.selection = new vscode.Selection(range.start, range.end);
    editor.revealRange(range, vscode.TextEditorRevealType.InCenterIfOutsideViewport);
  }

  dispose(): void {
    this.registration.dispose();
    this.changed.dispose();
    this.contents.clear();
  }

  private async inOrigin(connection: string, id: number, sql: string) {
    const origin = new Map(this.ctx.extCtx.workspaceState.get<[string, string][]>(ORIGINS_KEY, [])).get(key(connection, id));
    if (!origin) return undefined;
    try {
      return locate(await vscode.workspace.openTextDocument(vscode.Uri.parse(origin)), sql);
    } catch (e) {
      // The file was moved or deleted since: the open editors and the read-only copy still work.
      this.ctx.log.trace(`task #${id}: its file ${origin} is gone: ${String(e)}`);
      return undefined;
    }
  }

  private inOpenEditors(sql: string) {
    for (const doc of vscode.workspace.textDocuments) {
      if (doc.uri.scheme === SCHEME) continue;
      const found = locate(doc, sql);
      if (found) return found;
    }
    return undefined;
  }
}

const key = (connection: string, id: number) => `${connection}\u0000${id}`;
const safe = (name: string) => name.replace(/[^\w.-]+/g, '_');

/** Where the statement's text starts in the document, if the document still holds it verbatim. */
function locate(doc: vscode.TextDocument, sql: string): { doc: vscode.TextDocument; start: vscode.Position } | undefined {
  const text = doc.getText();
  const lf = sql.replace(/\r\n/g, '\n');
  for (const variant of [sql, lf, lf.replace(/\n/g, '\r\n')]) {
    const at = variant ? text.indexOf(variant) : -1;
    if (at >= 0) return { doc, start: doc.positionAt(at) };
  }
  return undefined;
}

/** The position `position` characters into `sql` (1-based, code points, \r\n as one), counted from `start`. */
function offsetPosition(start: vscode.Position, sql: string, position: number | undefined): vscode.Position {
  if (!position || position < 1) return start;
  const before = Array.from(sql.replace(/\r\n/g, '\n')).slice(0, position - 1).join('');
  const lines = before.split('\n');
  const last = lines[lines.length - 1];
  return lines.length === 1 ? start.translate(0, last.length) : new vscode.Position(start.line + lines.length - 1, last.length);
}
