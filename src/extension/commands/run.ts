import * as vscode from 'vscode';
import type { LanguageClient } from 'vscode-languageclient/node';
import { classify } from '../../core/sqlClassify';
import { splitSql, statementAt, statementsInRange } from '../../core/sqlSplit';
import { config } from '../config';
import type { Ctx } from '../ctx';
import type { ErrorLocations } from '../errorLocation';
import type { FileConnections } from '../fileConnection';
import { sqlPreview } from '../format/text';
import { languageClient as languageClientModule } from '../lazy';
import { ensureReady, showProblem } from '../problems';

type Scope = 'selection' | 'statement' | 'file';

/** A statement to submit: its text, where it is, whether it returns rows, and the parser's syntax error. */
export interface RunStatement {
  text: string;
  kind: 'sql' | 'psql-meta' | 'empty';
  range: vscode.Range;
  returnsRows: boolean | null;
  parseError?: { message: string; range: vscode.Range } | null;
}

/**
 * The statements a run command submits: from the language server (the real PostgreSQL parser, so what is
 * submitted is exactly what it saw, with its syntax errors), or, while it is not running, from the same psql
 * splitter in process. Each statement becomes its own autocommit step.
 */
export async function statementsFor(doc: vscode.TextDocument, sel: vscode.Selection, scope: Scope, client: LanguageClient | undefined): Promise<RunStatement[]> {
  if (client?.isRunning()) {
    const where = scope === 'file' ? 'file' : scope === 'selection' ? new vscode.Range(sel.start, sel.end) : sel.active;
    // The client runs, so its module (dist/languageClient.js) is loaded already.
    return (await languageClientModule().statements(client, doc, where)).map((st) => ({ ...st, kind: st.kind }));
  }
  const toRange = (start: number, end: number) => new vscode.Range(doc.positionAt(start), doc.positionAt(end));
  const all = splitSql(doc.getText());
  let picked;
  if (scope === 'file') picked = all;
  else if (scope === 'selection') {
    const start = doc.offsetAt(sel.start);
    // A selection inside one statement submits just the selected text, as the user asked.
    picked = splitSql(doc.getText(sel)).map((st) => ({ ...st, start: st.start + start, end: st.end + start }));
    if (!picked.length) picked = statementsInRange(all, start, doc.offsetAt(sel.end));
  } else {
    const at = statementAt(all, doc.offsetAt(sel.active), doc.getText());
    picked = at ? [at] : [];
  }
  return picked.map((st) => ({ text: st.text, kind: st.kind, range: toRange(st.start, st.end), returnsRows: classify(st.text).returnsRows }));
}

const EMPTY: Record<Scope, string> = {
  selection: 'Select the SQL to run first: the selection is empty or only comments.',
  statement: 'Place the cursor on a statement first: there is no SQL statement here.',
  file: 'This file has no SQL statements to run.',
};

/**
 * Run Selection / Run Statement / Run File: pick the connection, ask for a description, submit, report. While
 * it asks, the statements about to run stay highlighted, so Ctrl+Alt+B on a blank line shows which one it took.
 */
export function runInBackground(ctx: Ctx, scope: Scope, languageClient: () => LanguageClient | undefined, where: { files: FileConnections; errors: ErrorLocations }) {
  const { files, errors } = where;
  // One decoration type for the extension's lifetime; each run sets and clears its ranges.
  const highlight = vscode.window.createTextEditorDecorationType({
    backgroundColor: new vscode.ThemeColor('editor.findMatchHighlightBackground'),
    border: '1px solid',
    borderColor: new vscode.ThemeColor('editor.findMatchHighlightBorder'),
    isWholeLine: false,
  });
  ctx.subscriptions.push(highlight);
  return async (uri?: vscode.Uri, range?: vscode.Range): Promise<number | undefined> => {
    let editor = vscode.window.activeTextEditor;
    if (uri && editor?.document.uri.toString() !== uri.toString()) {
      editor = await vscode.window.showTextDocument(uri);
    }
    if (!editor) {
      void vscode.window.showWarningMessage('PG Tasks: open an SQL file first.');
      return undefined;
    }
    // A code lens passes its statement's range: run exactly that, without moving the user's cursor or selection.
    const selection = range ? new vscode.Selection(range.start, range.end) : editor.selection;
    const found = await statementsFor(editor.document, selection, range ? 'selection' : scope, languageClient());
    const statements = found.filter((st) => st.kind === 'sql');
    const meta = found.filter((st) => st.kind === 'psql-meta');
    const broken = statements.find((st) => st.parseError);
    if (broken?.parseError) {
      // The parser saw a syntax error: submitting would only record a failed task. Show where it is.
      editor.selection = new vscode.Selection(broken.parseError.range.start, broken.parseError.range.end);
      editor.revealRange(broken.parseError.range, vscode.TextEditorRevealType.InCenterIfOutsideViewport);
      const a = await vscode.window.showErrorMessage(
        `PG Tasks: nothing was submitted: ${broken.parseError.message} (line ${broken.parseError.range.start.line + 1}).`,
        'Show Problems',
      );
      if (a) await vscode.commands.executeCommand('workbench.actions.view.problems');
      return undefined;
    }
    if (meta.length) {
      editor.selection = new vscode.Selection(meta[0].range.start, meta[0].range.end);
      editor.revealRange(meta[0].range, vscode.TextEditorRevealType.InCenterIfOutsideViewport);
      void vscode.window.showWarningMessage(`PG Tasks: nothing was submitted: ${meta[0].text.split('\n')[0].trim()} is a psql meta-command, which only psql understands. Leave it out of what you run.`);
      return undefined;
    }
    if (statements.length === 0) {
      void vscode.window.showWarningMessage(`PG Tasks: ${EMPTY[scope]}`);
      return undefined;
    }
    const shown = editor;
    shown.setDecorations(highlight, statements.map((st) => st.range));
    try {
      const connection = await files.forDocument(shown.document);
      if (!connection || !(await ensureReady(ctx, connection))) return undefined;
      let info: string | undefined = '';
      if (config.askForDescription()) {
        info = await vscode.window.showInputBox({
          title: `Run ${statements.length === 1 ? 'the highlighted statement' : `${statements.length} highlighted statements`} in the background on ${connection.name}`,
          prompt: 'Optional: a description to find the task by later',
          placeHolder: sqlPreview(statements[0].text, 80),
        });
        if (info === undefined) return undefined;
      }
      const options = { ...config.taskOptions(), returns_rows: statements.map((st) => st.returnsRows) };
      let id: number;
      try {
        id = await vscode.window.withProgress({ location: vscode.ProgressLocation.Window, title: 'PG Tasks: submitting' }, () =>
          connection.tasks.submit(statements.map((st) => st.text), { info: info || null, options }),
        );
      } catch (e) {
        await showProblem(ctx, 'the task was not submitted', e, connection);
        return undefined;
      }
      // For "Go to Error" later: the file the statements came from. Losing it only costs a search.
      errors.remember(connection.name, id, shown.document.uri).catch((e: unknown) => ctx.log.warn(`task #${id}: origin not remembered: ${String(e)}`));
      const what = info ? `: ${info.trim()}` : statements.length > 1 ? ` (${statements.length} statements)` : '';
      void vscode.window.showInformationMessage(`PG Tasks: task #${id} submitted on ${connection.name}${what}. It runs on the server even if VS Code closes.`, 'Open', 'Cancel Task').then(async (a) => {
        const node = { kind: 'task', connection, task: { id, state: 'running', sql: '', info: info || null } };
        if (a === 'Open') await vscode.commands.executeCommand('pgTasks.openTask', node);
        if (a === 'Cancel Task') await vscode.commands.executeCommand('pgTasks.cancelTask', node);
      });
      return id;
    } finally {
      shown.setDecorations(highlight, []);
    }
  };
}
