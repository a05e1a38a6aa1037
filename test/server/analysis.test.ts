// The language features without a connection: diagnostics at exact ranges (UTF-16, after non-ASCII text),
// psql-only input, step hints, code lenses, hover, the statements request, the per-statement cache and the
// debounce. The real parser (libpg-query) is used throughout.
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import type { Diagnostic } from 'vscode-languageserver';
import { TextDocument } from 'vscode-languageserver-textdocument';
import { silentLogger } from '../../src/core/logger';
import { DocumentAnalyzer, errorSpan } from '../../src/server/analysis';
import { META_MESSAGE } from '../../src/server/features';
import { loadPgParser, type PgParser } from '../../src/server/pgParser';
import { SqlService } from '../../src/server/service';

let parser: PgParser;
before(async () => {
  parser = await loadPgParser();
});

const URI = 'file:///work/test.sql';

function service(delayMs = 200): { svc: SqlService; published: { uri: string; version?: number; diagnostics: Diagnostic[] }[] } {
  const published: { uri: string; version?: number; diagnostics: Diagnostic[] }[] = [];
  const svc = new SqlService(parser, (uri, version, diagnostics) => published.push({ uri, version, diagnostics }), silentLogger, delayMs);
  return { svc, published };
}

/** A diagnostic's message (LSP 3.18 also allows markup; the server sends plain strings). */
const messageOf = (d: Diagnostic) => (typeof d.message === 'string' ? d.message : d.message.value);

/** The text a diagnostic's range covers. */
const covered = (doc: TextDocument, d: Diagnostic) => doc.getText(d.range);

describe('diagnostics', () => {
  test('one per broken statement, at the token PostgreSQL names, in UTF-16 columns after emoji', () => {
    const text = [
      'select 1;',
      "select 'é😀😀' frm t; -- the error is at t",
      '\\set x 1',
      'selec 2;',
      'select (1 + 2) + (3 +', // at end of input
      '  4 frm;',
    ].join('\n');
    const doc = TextDocument.create(URI, 'sql', 1, text);
    const { svc, published } = service();
    svc.opened(doc);
    assert.equal(published.length, 1);
    const diags = published[0].diagnostics;
    assert.deepEqual(
      diags.map((d) => [d.severity, d.source, d.range.start.line, covered(doc, d), d.message]),
      [
        [1, 'PostgreSQL', 1, 't', 'syntax error at or near "t"'],
        [2, 'PG Tasks', 2, '\\set x 1', META_MESSAGE],
        [1, 'PostgreSQL', 3, 'selec', 'syntax error at or near "selec"'],
        [1, 'PostgreSQL', 5, 'frm', 'syntax error at or near "frm"'],
      ],
    );
    assert.equal(diags[0].range.start.character, "select 'é😀😀' frm ".length); // 18 UTF-16 units, not 16 code points
  });

  test('an error at the end of input underlines the last token; an unterminated string its first line', () => {
    const doc = TextDocument.create(URI, 'sql', 1, "select (1\n\nselect 'abc;\nmore");
    const { svc, published } = service();
    svc.opened(doc);
    const d = published[0].diagnostics;
    assert.equal(d.length, 1, 'the open quote swallows the rest: one statement, one error');
    assert.match(messageOf(d[0]), /syntax error at or near "select"/);
    const doc2 = TextDocument.create(URI, 'sql', 1, "select 1 +\n  2 *");
    const s2 = service();
    s2.svc.opened(doc2);
    assert.equal(covered(doc2, s2.published[0].diagnostics[0]), '*');
    const doc3 = TextDocument.create(URI, 'sql', 1, "select 1;\nselect 'abc\nmore");
    const s3 = service();
    s3.svc.opened(doc3);
    const d3 = s3.published[0].diagnostics[0];
    assert.match(messageOf(d3), /unterminated quoted string/);
    assert.equal(covered(doc3, d3), "'abc");
  });

  test('errorSpan is never empty and stays on the error line', () => {
    assert.deepEqual(errorSpan('select', 'syntax error at end of input', 6), { start: 0, end: 6 });
    assert.deepEqual(errorSpan('x', 'something odd', 0), { start: 0, end: 1 });
    assert.deepEqual(errorSpan('select 1 frm\nt', 'syntax error at or near "zzz"', 9), { start: 9, end: 12 });
  });

  test('psql-only input and step hints that will fail', () => {
    const text = ['BEGIN;', 'VACUUM t;', 'COMMIT;', 'COPY t FROM STDIN;', '1\t2', '\\.', 'START TRANSACTION;', 'update t set a = 1;'].join('\n');
    const doc = TextDocument.create(URI, 'sql', 1, text);
    const { svc, published } = service();
    svc.opened(doc);
    const d = published[0].diagnostics.map((x) => [x.severity, x.range.start.line, x.message]);
    assert.deepEqual(d, [
      [2, 3, 'COPY … FROM STDIN reads its data from psql: runs in psql only, not as a background task'],
      [2, 1, 'VACUUM cannot run inside a transaction block, and the BEGIN on line 1 is still open here: this step will fail.'],
      [2, 6, 'This transaction is never committed: run as a task, it is rolled back at the end and the task fails.'],
    ]);
  });

  test('without a parser there are no syntax errors, but psql warnings and lenses remain', () => {
    const published: Diagnostic[][] = [];
    const svc = new SqlService(undefined, (_u, _v, d) => published.push(d), silentLogger);
    const doc = TextDocument.create(URI, 'sql', 1, 'selec 1;\n\\gexec\n');
    svc.opened(doc);
    assert.deepEqual(published[0].map((d) => d.message), [META_MESSAGE]);
    assert.equal(svc.codeLenses(doc).length, 2);
  });
});

describe('code lenses and hover', () => {
  const text = ['-- nightly', 'SELECT * FROM t;', '', 'VACUUM (ANALYZE) t;', 'BEGIN;', 'UPDATE t SET a = 1;', 'COMMIT;', '\\set x 1'].join('\n');

  test('run file at the top, run over each statement, hints beside', () => {
    const doc = TextDocument.create(URI, 'sql', 3, text);
    const { svc } = service();
    const lenses = svc.codeLenses(doc).map((l) => [l.range.start.line, l.command?.title, l.command?.command, l.command?.arguments]);
    const stmt = (line: number, endChar: number) => [URI, { start: { line, character: 0 }, end: { line, character: endChar } }];
    assert.deepEqual(lenses, [
      [0, '▶ Run file in background (5 statements)', 'pgTasks.runFile', [URI]],
      [1, '▶ Run in background', 'pgTasks.runStatement', stmt(1, 16)],
      [3, '▶ Run in background', 'pgTasks.runStatement', stmt(3, 19)],
      [3, 'runs as its own autocommit step', '', undefined],
      [4, '▶ Run in background', 'pgTasks.runStatement', stmt(4, 6)],
      [4, 'one transaction across 3 steps (to line 7)', '', undefined],
      [5, '▶ Run in background', 'pgTasks.runStatement', stmt(5, 19)],
      [6, '▶ Run in background', 'pgTasks.runStatement', stmt(6, 7)],
    ]);
  });

  test('hover tells the kind, the rows and the step behaviour', () => {
    const doc = TextDocument.create(URI, 'sql', 3, text);
    const { svc } = service();
    const at = (line: number, character: number) => {
      const h = svc.hover(doc, { line, character });
      return h && typeof h.contents === 'object' && 'value' in h.contents ? h.contents.value : null;
    };
    assert.match(at(1, 3) ?? '', /\*\*SELECT\*\* statement \(`SelectStmt`\): step 1 of 5[^]*Returns rows: the task collects them/);
    assert.match(at(3, 0) ?? '', /\*\*VACUUM\*\*[^]*Returns no rows[^]*own autocommit step/);
    assert.match(at(4, 2) ?? '', /Opens one transaction across 3 steps, up to line 7/);
    assert.match(at(5, 2) ?? '', /Runs inside the transaction opened on line 5/);
    assert.match(at(7, 1) ?? '', /runs in psql only/);
    assert.equal(at(0, 2), null, 'a comment outside statements has no hover');
  });
});

describe('the statements request', () => {
  const text = 'select 1;  select 2;\n\nselect 3\n  from t;\n-- end\n';
  const doc = TextDocument.create(URI, 'sql', 7, text);

  test('whole file, position and range', () => {
    const { svc } = service();
    const all = svc.statements(doc, { textDocument: { uri: URI } });
    assert.equal(all.version, 7);
    assert.deepEqual(all.statements.map((s) => s.text), ['select 1', 'select 2', 'select 3\n  from t']);
    assert.deepEqual(all.statements[2].range, { start: { line: 2, character: 0 }, end: { line: 3, character: 9 } });
    assert.equal(all.statements[0].returnsRows, true);
    assert.deepEqual(all.statements[0].parserKinds, ['SelectStmt']);
    const pos = (line: number, character: number) =>
      svc.statements(doc, { textDocument: { uri: URI }, position: { line, character } }).statements.map((s) => s.text);
    assert.deepEqual(pos(0, 3), ['select 1']);
    assert.deepEqual(pos(0, 9), ['select 1'], 'just after the ; of the line');
    assert.deepEqual(pos(1, 0), ['select 3\n  from t'], 'a blank line before a statement');
    assert.deepEqual(pos(3, 4), ['select 3\n  from t']);
    const sel = svc.statements(doc, {
      textDocument: { uri: URI },
      range: { start: { line: 0, character: 11 }, end: { line: 2, character: 8 } },
    });
    assert.deepEqual(sel.statements.map((s) => [s.text, s.range.start]), [
      ['select 2', { line: 0, character: 11 }],
      ['select 3', { line: 2, character: 0 }],
    ]);
    const empty = svc.statements(doc, { textDocument: { uri: URI }, range: { start: { line: 0, character: 2 }, end: { line: 0, character: 2 } } });
    assert.deepEqual(empty.statements.map((s) => s.text), ['select 1'], 'an empty range is a position');
  });

  test('a broken statement carries its error', () => {
    const { svc } = service();
    const d = TextDocument.create(URI, 'sql', 1, 'selec 1;');
    const [s] = svc.statements(d, { textDocument: { uri: URI } }).statements;
    assert.equal(s.parseError?.message, 'syntax error at or near "selec"');
    assert.deepEqual(s.parseError?.range, { start: { line: 0, character: 0 }, end: { line: 0, character: 5 } });
  });
});

describe('the per-document cache', () => {
  test('an edit re-parses only the statements whose text changed; moving statements re-parses none', () => {
    const analyzer = new DocumentAnalyzer(parser);
    const base = Array.from({ length: 300 }, (_, i) => `select ${i} from t${i};`).join('\n');
    assert.equal(analyzer.analyze(base, 1).timing.parsed, 300);
    const edited = base.replace('select 150 from', 'select 150, 151 from');
    assert.equal(analyzer.analyze(edited, 2).timing.parsed, 1);
    const moved = '\n\n-- header\n' + edited;
    const a = analyzer.analyze(moved, 3);
    assert.equal(a.timing.parsed, 0);
    assert.equal(a.statements[0].start, moved.indexOf('select 0'));
    const split = moved.replace('select 7 from t7;', 'select 7; from t7;');
    assert.equal(analyzer.analyze(split, 4).timing.parsed, 2);
  });
});

describe('debounce', () => {
  test('several quick edits publish once, for the last version', async () => {
    const { svc, published } = service(30);
    const doc = TextDocument.create(URI, 'sql', 1, 'select 1;');
    svc.opened(doc);
    const got = new Promise<void>((resolve) => {
      const push = published.push.bind(published);
      published.push = (...items) => {
        const n = push(...items);
        resolve();
        return n;
      };
    });
    for (const [v, t] of [[2, 'select 1 +;'], [3, 'select 1 + 2;'], [4, 'selec 1 + 2;']] as const) {
      TextDocument.update(doc, [{ text: t }], v);
      svc.changed(doc);
    }
    await got;
    assert.deepEqual(published.map((p) => p.version), [1, 4]);
    assert.match(messageOf(published[1].diagnostics[0]), /"selec"/);
    svc.closed(URI);
    assert.deepEqual(published[2], { uri: URI, version: undefined, diagnostics: [] });
  });
});

describe('incremental analysis', () => {
  test('after random edits it equals a fresh analysis of the same text', () => {
    let seed = 7;
    const random = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
    const pieces = ["'", ';', 'x', '\n', 'BEGIN;', 'COMMIT;', 'VACUUM t;', '\\set a 1\n', '/*', '*/', 'selec', '$$'];
    let text = Array.from({ length: 400 }, (_, i) => (i % 5 === 0 ? `BEGIN;\nselect ${i};\nCOMMIT;` : `select 'é${i}' from t${i};`)).join('\n');
    const analyzer = new DocumentAnalyzer(parser);
    analyzer.analyze(text, 0);
    const strip = (a: ReturnType<DocumentAnalyzer['analyze']>) => ({ statements: a.statements, transactions: a.transactions });
    for (let v = 1; v <= 150; v++) {
      const at = Math.floor(random() * text.length);
      text = random() < 0.6
        ? text.slice(0, at) + pieces[Math.floor(random() * pieces.length)] + text.slice(at)
        : text.slice(0, at) + text.slice(at + 1 + Math.floor(random() * 20));
      assert.deepEqual(strip(analyzer.analyze(text, v)), strip(new DocumentAnalyzer(parser).analyze(text, v)), `edit ${v}`);
    }
  });
});
