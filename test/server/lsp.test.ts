// The server as an editor sees it: a child process speaking LSP over stdio (the product uses Node IPC, the
// same protocol). Checks the status notification, diagnostics (and their debounce after an incremental
// edit), code lenses, hover and the custom pgTasks/statements request on a real document.
// PG_TASKS_SERVER=dist/server.js runs the same test against the esbuild bundle instead of the sources.
import assert from 'node:assert/strict';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createMessageConnection, StreamMessageReader, StreamMessageWriter, type MessageConnection } from 'vscode-jsonrpc/node';
import type { CodeLens, Hover, InitializeResult, PublishDiagnosticsParams } from 'vscode-languageserver-protocol';
import { ServerStatusNotification, StatementsRequest } from '../../src/core/protocol/lsp';

const root = join(__dirname, '..', '..');
const URI = 'file:///work/lsp-test.sql';
const TIMEOUT_MS = 20_000;

const text = [
  '-- report',
  "SELECT 'naïve 😀' AS s, id FROM t;",
  'VACUUM (ANALYZE) t;',
  "UPDATE t SET a = 1 WHERE b = 'x' frm;",
  '\\set x 1',
  'BEGIN;',
  'DELETE FROM t RETURNING id;',
  'COMMIT;',
].join('\n');

let child: ChildProcessWithoutNullStreams;
let conn: MessageConnection;
const diagnostics: PublishDiagnosticsParams[] = [];
const waiters: { check: () => boolean; resolve: () => void }[] = [];
const stderr: string[] = [];

/** Resolves once `check` holds, re-checked on every notification; fails after a timeout. */
function until(what: string, check: () => boolean): Promise<void> {
  if (check()) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}; server stderr: ${stderr.join('')}`)), TIMEOUT_MS);
    waiters.push({ check, resolve: () => (clearTimeout(timer), resolve()) });
  });
}

function notify(): void {
  for (const w of waiters.splice(0)) {
    if (w.check()) w.resolve();
    else waiters.push(w);
  }
}

let status: ServerStatusNotification.Params | undefined;

before(async () => {
  const bundle = process.env.PG_TASKS_SERVER;
  const args = bundle ? [resolve(root, bundle)] : ['--import', 'tsx', join(root, 'src/server/server.ts')];
  child = spawn(process.execPath, [...args, '--stdio'], { cwd: root });
  child.stderr.on('data', (d: Buffer) => stderr.push(d.toString()));
  child.on('exit', notify);
  conn = createMessageConnection(new StreamMessageReader(child.stdout), new StreamMessageWriter(child.stdin));
  conn.onNotification('textDocument/publishDiagnostics', (p: PublishDiagnosticsParams) => {
    diagnostics.push(p);
    notify();
  });
  conn.onNotification(ServerStatusNotification.method, (p: ServerStatusNotification.Params) => {
    status = p;
    notify();
  });
  conn.onNotification('window/logMessage', () => undefined);
  conn.listen();
  const init: InitializeResult = await conn.sendRequest('initialize', {
    processId: process.pid,
    rootUri: null,
    capabilities: { textDocument: { publishDiagnostics: { versionSupport: true } } },
  });
  assert.deepEqual(init.capabilities.codeLensProvider, { resolveProvider: false });
  assert.equal(init.capabilities.hoverProvider, true);
  await conn.sendNotification('initialized', {});
  await until('the status notification', () => status !== undefined);
  await conn.sendNotification('textDocument/didOpen', { textDocument: { uri: URI, languageId: 'sql', version: 1, text } });
});

after(async () => {
  try {
    await conn.sendRequest('shutdown');
    await conn.sendNotification('exit');
    await until('the server to exit', () => child.exitCode !== null);
    assert.equal(child.exitCode, 0, 'exit after shutdown is a clean exit');
  } finally {
    if (child.exitCode === null) child.kill();
    conn.dispose();
  }
});

describe('the language server over stdio', () => {
  test('reports the parser as ready, with its load time', () => {
    assert.equal(status?.state, 'ready');
    if (status?.state !== 'ready') return;
    assert.ok(status.pgVersion >= 180000, `PostgreSQL 18 grammar, got ${status.pgVersion}`);
    console.log(`server: libpg-query WASM loaded in ${status.wasmLoadMs.toFixed(1)} ms`);
  });

  test('publishes the syntax error and the psql warning at exact ranges', async () => {
    await until('diagnostics for version 1', () => diagnostics.some((d) => d.version === 1));
    const d = diagnostics.find((x) => x.version === 1)!.diagnostics;
    assert.deepEqual(
      d.map((x) => [x.severity, x.source, x.message, x.range]),
      [
        [1, 'PostgreSQL', 'syntax error at or near "frm"', { start: { line: 3, character: 33 }, end: { line: 3, character: 36 } }],
        [2, 'PG Tasks', 'psql meta-command: runs in psql only, not as a background task', { start: { line: 4, character: 0 }, end: { line: 4, character: 8 } }],
      ],
    );
  });

  test('serves code lenses: the file, each statement, and the step hints', async () => {
    const lenses: CodeLens[] = await conn.sendRequest('textDocument/codeLens', { textDocument: { uri: URI } });
    assert.deepEqual(
      lenses.map((l) => [l.range.start.line, l.command?.title, l.command?.command]),
      [
        [0, '▶ Run file in background (6 statements)', 'pgTasks.runFile'],
        [1, '▶ Run in background', 'pgTasks.runStatement'],
        [2, '▶ Run in background', 'pgTasks.runStatement'],
        [2, 'runs as its own autocommit step', ''],
        // The statement with the syntax error gets the reason instead of a lens that could only be refused.
        [3, '⚠ fix the syntax error to run: syntax error at or near "frm"', ''],
        [5, '▶ Run in background', 'pgTasks.runStatement'],
        [5, 'one transaction across 3 steps (to line 8)', ''],
        [6, '▶ Run in background', 'pgTasks.runStatement'],
        [7, '▶ Run in background', 'pgTasks.runStatement'],
      ],
    );
    assert.deepEqual(lenses[0].command?.arguments, [URI]);
    // The emoji is two UTF-16 units: the statement ends at character 34 of its line.
    assert.deepEqual(lenses[1].command?.arguments, [URI, { start: { line: 1, character: 0 }, end: { line: 1, character: 34 } }]);
  });

  test('answers hover with the kind and the rows', async () => {
    const h: Hover = await conn.sendRequest('textDocument/hover', { textDocument: { uri: URI }, position: { line: 6, character: 3 } });
    const value = typeof h.contents === 'object' && 'value' in h.contents ? h.contents.value : '';
    assert.match(value, /\*\*DELETE\*\* statement \(`DeleteStmt`\): step 5 of 6/);
    assert.match(value, /Returns rows: the task collects them/);
    assert.match(value, /Runs inside the transaction opened on line 6/);
  });

  test('answers pgTasks/statements for the file and for a position', async () => {
    const all: StatementsRequest.Result = await conn.sendRequest(StatementsRequest.method, { textDocument: { uri: URI } });
    assert.equal(all.version, 1);
    assert.deepEqual(
      all.statements.map((s) => [s.kind, s.keyword, s.returnsRows, s.ownStep, s.transaction, s.parseError !== null]),
      [
        ['sql', 'SELECT', true, null, null, false],
        ['sql', 'VACUUM', false, 'autocommit', null, false],
        ['sql', 'UPDATE', false, null, null, true],
        ['psql-meta', '\\set', null, null, null, false],
        ['sql', 'BEGIN', false, null, 'begin', false],
        ['sql', 'DELETE', true, null, null, false],
        ['sql', 'COMMIT', false, null, 'commit', false],
      ],
    );
    const one: StatementsRequest.Result = await conn.sendRequest(StatementsRequest.method, {
      textDocument: { uri: URI },
      position: { line: 1, character: 10 },
    });
    assert.deepEqual(one.statements.map((s) => s.text), ["SELECT 'naïve 😀' AS s, id FROM t"]);
    await assert.rejects(conn.sendRequest(StatementsRequest.method, { textDocument: { uri: 'file:///not-open.sql' } }), /not an open SQL document/);
  });

  test('an incremental edit that fixes the error clears it (after the debounce)', async () => {
    await conn.sendNotification('textDocument/didChange', {
      textDocument: { uri: URI, version: 2 },
      contentChanges: [{ range: { start: { line: 3, character: 32 }, end: { line: 3, character: 36 } }, text: '' }],
    });
    // A request right after the edit sees the new version at once, without waiting for the debounce.
    const all: StatementsRequest.Result = await conn.sendRequest(StatementsRequest.method, { textDocument: { uri: URI } });
    assert.equal(all.version, 2);
    assert.equal(all.statements[2].text, "UPDATE t SET a = 1 WHERE b = 'x'");
    assert.equal(all.statements[2].parseError, null);
    await until('diagnostics for version 2', () => diagnostics.some((d) => d.version === 2));
    const d = diagnostics.find((x) => x.version === 2)!.diagnostics;
    assert.deepEqual(d.map((x) => x.source), ['PG Tasks']);
  });

  test('closing the document clears its diagnostics', async () => {
    const before = diagnostics.length;
    await conn.sendNotification('textDocument/didClose', { textDocument: { uri: URI } });
    await until('diagnostics after close', () => diagnostics.length > before);
    assert.deepEqual(diagnostics[diagnostics.length - 1].diagnostics, []);
  });
});
