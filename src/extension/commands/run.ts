import * as vscode from 'vscode';
import { classify, splitSql, statementAt, statementsInRange, type SqlStatement } from '../../core/sqlSplit';
import { config } from '../config';
import type { Connection } from '../connections';
import type { Ctx } from '../ctx';
import { pickConnection } from '../pick';
import { ensureReady, showProblem } from '../problems';

type Scope = 'selection' | 'statement' | 'file';

/**
 * The statements a run command submits. Splitting follows psql (quotes, dollar quotes, nested comments),
 * so each statement becomes its own autocommit step, with the parser's "returns rows" flag.
 */
export function statementsFor(editor: vscode.TextEditor, scope: Scope): SqlStatement[] {
  const doc = editor.document;
  const all = splitSql(doc.getText());
  if (scope === 'file') return all;
  if (scope === 'selection') {
    const sel = editor.selection;
    const start = doc.offsetAt(sel.start);
    const end = doc.offsetAt(sel.end);
    // A selection inside one statement submits just the selected text, as the user asked.
    const inSelection = splitSql(doc.getText(sel)).map((s) => ({ ...s, start: s.start + start, end: s.end + start }));
    return inSelection.length ? inSelection : statementsInRange(all, start, end);
  }
  const at = statementAt(all, doc.offsetAt(editor.selection.active));
  return at ? [at] : [];
}

const EMPTY: Record<Scope, string> = {
  selection: 'Select the SQL to run first: the selection is empty or only comments.',
  statement: 'Place the cursor on a statement first: there is no SQL statement here.',
  file: 'This file has no SQL statements to run.',
};

/** Run Selection / Run Statement / Run File: pick the connection, ask for a description, submit, report. */
export function runInBackground(ctx: Ctx, scope: Scope) {
  return async (uri?: vscode.Uri, range?: vscode.Range): Promise<number | undefined> => {
    let editor = vscode.window.activeTextEditor;
    if (uri && editor?.document.uri.toString() !== uri.toString()) {
      editor = await vscode.window.showTextDocument(uri);
    }
    if (!editor) {
      void vscode.window.showWarningMessage('PG Tasks: open an SQL file first.');
      return undefined;
    }
    if (range) editor.selection = new vscode.Selection(range.start, range.end);
    const statements = statementsFor(editor, range ? 'selection' : scope).filter((s) => s.kind === 'sql');
    const meta = statementsFor(editor, range ? 'selection' : scope).filter((s) => s.kind === 'psql-meta');
    if (meta.length) {
      void vscode.window.showWarningMessage(`PG Tasks: psql meta-commands cannot run on the server (${meta[0].text.split('\n')[0]}). Remove them from what you run.`);
      return undefined;
    }
    if (statements.length === 0) {
      void vscode.window.showWarningMessage(`PG Tasks: ${EMPTY[scope]}`);
      return undefined;
    }
    const connection = await connectionFor(ctx, editor.document);
    if (!connection || !(await ensureReady(ctx, connection))) return undefined;
    let info: string | undefined = '';
    if (config.askForDescription()) {
      info = await vscode.window.showInputBox({
        title: `Run ${statements.length === 1 ? 'statement' : `${statements.length} statements`} in the background on ${connection.name}`,
        prompt: 'A description helps you find the task later (optional). Enter to submit, Escape to cancel.',
        placeHolder: statements[0].text.replace(/\s+/g, ' ').slice(0, 80),
      });
      if (info === undefined) return undefined;
    }
    const options = { ...config.taskOptions(), returns_rows: statements.map((s) => classify(s.text).returnsRows) };
    let id: number;
    try {
      id = await vscode.window.withProgress({ location: vscode.ProgressLocation.Window, title: 'PG Tasks: submitting' }, () =>
        connection.tasks.submit(statements.map((s) => s.text), { info: info || null, options }),
      );
    } catch (e) {
      await showProblem(ctx, 'the task was not submitted', e, connection);
      return undefined;
    }
    void vscode.window.showInformationMessage(`PG Tasks: task #${id} started on ${connection.name}.`, 'Open', 'Cancel Task').then(async (a) => {
      const node = { kind: 'task', connection, task: { id, state: 'running', sql: '', info: info || null } };
      if (a === 'Open') await vscode.commands.executeCommand('pgTasks.openTask', node);
      if (a === 'Cancel Task') await vscode.commands.executeCommand('pgTasks.cancelTask', node);
    });
    return id;
  };
}

/** The connection remembered for this file, the only one, or the user's pick (then remembered). */
async function connectionFor(ctx: Ctx, doc: vscode.TextDocument): Promise<Connection | undefined> {
  const key = 'pgTasks.fileConnections';
  const memory = ctx.extCtx.workspaceState.get<Record<string, string>>(key, {});
  const remembered = memory[doc.uri.toString()];
  const found = remembered ? ctx.connections.get(remembered) : undefined;
  if (found) return found;
  const picked = await pickConnection(ctx, undefined, 'Run on which connection?');
  if (picked) await ctx.extCtx.workspaceState.update(key, { ...memory, [doc.uri.toString()]: picked.name });
  return picked;
}
