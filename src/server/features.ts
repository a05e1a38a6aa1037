import type { CodeLens, Diagnostic, Hover, Position, Range } from 'vscode-languageserver';
import type { TextDocument } from 'vscode-languageserver-textdocument';
import { LensCommands, type StatementInfo } from '../core/protocol/lsp';
import { spanOf, type Analysis, type AnalyzedStatement } from './analysis';

// LSP's DiagnosticSeverity values, spelled out so this module needs no runtime import.
const ERROR = 1;
const WARNING = 2;

export const META_MESSAGE = 'psql meta-command: runs in psql only, not as a background task';
const COPY_STDIN_MESSAGE = 'COPY … FROM STDIN reads its data from psql: runs in psql only, not as a background task';

/**
 * Syntax errors (one per broken statement, source "PostgreSQL"), psql-only input, and the two step hints that
 * mean a task will fail: a statement that refuses a transaction block inside an open BEGIN, and a BEGIN that
 * is never committed (the supervisor then rolls back and records the task as failed: DESIGN.md §3).
 */
export function diagnostics(a: Analysis, doc: TextDocument): Diagnostic[] {
  const out: Diagnostic[] = [];
  const range = (start: number, end: number): Range => ({ start: doc.positionAt(start), end: doc.positionAt(end) });
  for (const s of a.statements) {
    if (s.kind === 'psql-meta') {
      const eol = s.text.indexOf('\n');
      out.push({
        range: range(s.start, s.start + (eol < 0 ? s.text.length : eol)),
        severity: WARNING,
        source: 'PG Tasks',
        message: s.text.startsWith('\\') ? META_MESSAGE : COPY_STDIN_MESSAGE,
      });
    } else if (s.facts.error) {
      const e = s.facts.error;
      out.push({ range: range(s.start + e.start, s.start + e.end), severity: ERROR, source: 'PostgreSQL', message: e.message });
    }
  }
  for (const span of a.transactions) {
    const begin = a.statements[span.begin];
    const line = doc.positionAt(begin.start).line + 1;
    if (span.end === null) {
      out.push({
        range: range(begin.start, begin.start + begin.text.length),
        severity: WARNING,
        source: 'PG Tasks',
        message: 'This transaction is never committed: run as a task, it is rolled back at the end and the task fails.',
      });
    }
    for (let i = span.begin + 1; i < (span.end ?? a.statements.length); i++) {
      const s = a.statements[i];
      if (s.kind === 'sql' && s.facts.ownStep === 'autocommit') {
        out.push({
          range: range(s.start, s.start + firstLineLength(s.text)),
          severity: WARNING,
          source: 'PG Tasks',
          message: `${s.facts.keyword} cannot run inside a transaction block, and the BEGIN on line ${line} is still open here: this step will fail.`,
        });
      }
    }
  }
  return out;
}

/**
 * "▶ Run file in background" at the top, "▶ Run in background" over each SQL statement, and a plain-text
 * lens beside it for a statement that behaves differently as a background step.
 */
export function codeLenses(a: Analysis, doc: TextDocument): CodeLens[] {
  const sql = a.statements.filter((s) => s.kind === 'sql');
  if (sql.length === 0) return [];
  const top: Range = { start: { line: 0, character: 0 }, end: { line: 0, character: 0 } };
  const fileArgs: LensCommands.RunFileArgs = [doc.uri];
  const out: CodeLens[] = [
    { range: top, command: { title: `▶ Run file in background (${plural(sql.length, 'statement')})`, command: LensCommands.runFile, arguments: fileArgs } },
  ];
  a.statements.forEach((s, i) => {
    if (s.kind !== 'sql') return;
    const range: Range = { start: doc.positionAt(s.start), end: doc.positionAt(s.end) };
    const args: LensCommands.RunStatementArgs = [doc.uri, range];
    if (s.facts.error) {
      // Running it would only be refused (the run commands check the parser first): say why instead.
      out.push({ range, command: { title: `⚠ fix the syntax error to run: ${s.facts.error.message}`, command: '' } });
      return;
    }
    out.push({ range, command: { title: '▶ Run in background', command: LensCommands.runStatement, arguments: args } });
    const hint = lensHint(a, doc, i);
    if (hint) out.push({ range, command: { title: hint, command: '' } });
  });
  return out;
}

function lensHint(a: Analysis, doc: TextDocument, i: number): string | undefined {
  const s = a.statements[i];
  const span = spanOf(a, i);
  if (s.facts.ownStep === 'autocommit' && !(span && span.begin !== i)) return 'runs as its own autocommit step';
  if (span?.begin === i && span.end !== null) {
    return `one transaction across ${plural(span.end - span.begin + 1, 'step')} (to line ${doc.positionAt(a.statements[span.end].start).line + 1})`;
  }
  return undefined;
}

/** Hover over a statement: its kind, whether its rows are collected, and how it runs as a step. */
export function hover(a: Analysis, doc: TextDocument, position: Position): Hover | null {
  const offset = doc.offsetAt(position);
  const i = indexContaining(a.statements, offset);
  if (i < 0) return null;
  const s = a.statements[i];
  const range: Range = { start: doc.positionAt(s.start), end: doc.positionAt(s.end) };
  const lines: string[] = [];
  if (s.kind === 'psql-meta') {
    lines.push(`**${md(s.facts.keyword || s.text.split(/\s/)[0])}**: ${s.text.startsWith('\\') ? META_MESSAGE : COPY_STDIN_MESSAGE}.`);
    return { contents: { kind: 'markdown', value: lines.join('\n\n') }, range };
  }
  const f = s.facts;
  const step = a.statements.slice(0, i + 1).filter((x) => x.kind === 'sql').length;
  const total = a.statements.filter((x) => x.kind === 'sql').length;
  const kinds = f.parserKinds.length ? ` (\`${f.parserKinds.join('`, `')}\`)` : '';
  if (f.error) {
    // What the first word is says nothing while the statement does not parse.
    lines.push(`Syntax error: ${md(f.error.message)}. Nothing is submitted until it parses.`);
    return { contents: { kind: 'markdown', value: lines.join('\n\n') }, range };
  }
  lines.push(`**${md(f.keyword || 'SQL')}** statement${kinds}: step ${step} of ${total} when the file runs.`);
  lines.push(
    f.returnsRows === true
      ? 'Returns rows: the task collects them as its result.'
      : f.returnsRows === false
        ? 'Returns no rows.'
        : 'May return rows (only running it tells); any rows are collected.',
  );
  const span = spanOf(a, i);
  const lineOf = (k: number) => doc.positionAt(a.statements[k].start).line + 1;
  if (f.ownStep === 'autocommit') {
    lines.push(
      span && span.begin !== i
        ? `Cannot run inside a transaction block, and the BEGIN on line ${lineOf(span.begin)} is still open here: this step will fail.`
        : 'Runs as its own autocommit step: PostgreSQL refuses it inside a transaction block.',
    );
  }
  if (span?.begin === i) {
    lines.push(
      span.end === null
        ? 'Opens a transaction that is never committed: the task fails and it is rolled back.'
        : `Opens one transaction across ${plural(span.end - span.begin + 1, 'step')}, up to line ${lineOf(span.end)}; each statement is still its own step.`,
    );
  } else if (span && span.end === i) {
    lines.push(`Ends the transaction opened on line ${lineOf(span.begin)}.`);
  } else if (span) {
    lines.push(`Runs inside the transaction opened on line ${lineOf(span.begin)}.`);
  }
  return { contents: { kind: 'markdown', value: lines.join('\n\n') }, range };
}

/** A statement as the custom request returns it. */
export function statementInfo(s: AnalyzedStatement, doc: TextDocument): StatementInfo {
  const f = s.facts;
  return {
    text: s.text,
    range: { start: doc.positionAt(s.start), end: doc.positionAt(s.end) },
    kind: s.kind,
    keyword: f.keyword,
    returnsRows: f.returnsRows,
    ownStep: f.ownStep,
    transaction: f.transaction,
    parserKinds: f.parserKinds,
    parseError: f.error && {
      message: f.error.message,
      range: { start: doc.positionAt(s.start + f.error.start), end: doc.positionAt(s.start + f.error.end) },
    },
  };
}

/** Index of the statement with start <= offset < end (the `;` included), or -1. */
export function indexContaining(statements: readonly AnalyzedStatement[], offset: number): number {
  let lo = 0;
  let hi = statements.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (statements[mid].start <= offset) lo = mid + 1;
    else hi = mid;
  }
  const s = statements[lo - 1];
  return s && offset < Math.max(s.end, s.start + 1) ? lo - 1 : -1;
}

function firstLineLength(text: string): number {
  const n = text.indexOf('\n');
  return n < 0 ? text.length : n;
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

/** Escapes text for markdown (a PostgreSQL message quotes the user's token, which may hold `*` or `_`). */
function md(text: string): string {
  return text.replace(/[\\`*_{}[\]()#+\-.!<>|~]/g, '\\$&');
}
