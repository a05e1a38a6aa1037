// Timings on a 1 MB script (printed; the assertions are generous so a slow CI machine does not flake):
// the WASM load, the first analysis against libpg-query's own parseSync of the whole file, and the re-analysis
// after an edit, which must re-parse only the edited statement (target ≤ 20 ms).
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { TextDocument } from 'vscode-languageserver-textdocument';
import { silentLogger } from '../../src/core/logger';
import { splitSql } from '../../src/core/sqlSplit';
import { DocumentAnalyzer } from '../../src/server/analysis';
import { codeLenses, diagnostics } from '../../src/server/features';
import { loadPgParser, type PgParser } from '../../src/server/pgParser';
import { SqlService } from '../../src/server/service';
import { bigScript } from './corpus';

const ms = (n: number) => `${n.toFixed(1)} ms`;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

let parser: PgParser;
const text = bigScript(1024 * 1024);

before(async () => {
  parser = await loadPgParser();
});

describe('1 MB script', () => {
  test('first analysis, whole-file parseSync, and edits', async () => {
    const { parseSync } = await import('libpg-query');
    const bytes = Buffer.byteLength(text);
    const analyzer = new DocumentAnalyzer(parser);

    let t0 = performance.now();
    const first = analyzer.analyze(text, 1);
    const firstMs = performance.now() - t0;
    assert.equal(first.statements.filter((s) => s.facts.error).length, 0, 'the corpus is valid SQL');

    t0 = performance.now();
    const whole = parseSync(text);
    const wholeMs = performance.now() - t0;
    assert.equal(whole.stmts?.length, first.statements.length, 'the parser and the splitter see the same statements');

    // Warm numbers, for comparison (a second document of the same text parses everything again).
    t0 = performance.now();
    new DocumentAnalyzer(parser).analyze(text, 1);
    const warmMs = performance.now() - t0;
    t0 = performance.now();
    parseSync(text);
    const wholeWarmMs = performance.now() - t0;

    // Typing inside statements all over the file, one edit after another.
    let current = text;
    const editMs: number[] = [];
    const n = first.statements.length;
    for (let k = 1; k <= 25; k++) {
      const s = analyzer.analyze(current, k).statements[Math.floor((n * k) / 26)];
      const at = s.start + s.text.indexOf(' ') + 1;
      current = current.slice(0, at) + `x${k}_` + current.slice(at); // unique, so never a cache hit
      t0 = performance.now();
      const a = analyzer.analyze(current, 100 + k);
      editMs.push(performance.now() - t0);
      assert.equal(a.timing.parsed, 1, `edit ${k} re-parses one statement`);
    }

    // Worst case: an opened quote moves every later boundary, so the whole file is split again.
    const at = text.length >> 1;
    t0 = performance.now();
    const quoted = analyzer.analyze(current.slice(0, at) + "'" + current.slice(at), 1000);
    const quoteMs = performance.now() - t0;

    t0 = performance.now();
    splitSql(text);
    const splitMs = performance.now() - t0;

    console.log(
      [
        `1 MB script: ${bytes} bytes, ${n} statements`,
        `  WASM load (libpg-query 18.1.5):          ${ms(parser.loadMs)}`,
        `  first analysis (split + parse each):      ${ms(firstMs)} (split ${ms(first.timing.splitMs)}, parse+classify ${ms(first.timing.factsMs)})`,
        `  libpg-query parseSync of the whole file:  ${ms(wholeMs)} cold, ${ms(wholeWarmMs)} warm (our analysis warm: ${ms(warmMs)})`,
        `  edit inside a statement (25 edits):       median ${ms(median(editMs))}, max ${ms(Math.max(...editMs))}`,
        `  edit that opens a quote (full re-split):  ${ms(quoteMs)} (${quoted.timing.parsed} statements re-parsed)`,
        `  full splitSql, warm:                      ${ms(splitMs)}`,
      ].join('\n'),
    );
    assert.ok(median(editMs) <= 200, `edit re-analysis took ${ms(median(editMs))}`);
  });

  test('the service path after an edit: analysis, diagnostics, lenses', () => {
    const published: number[] = [];
    const svc = new SqlService(parser, (_u, v) => published.push(v ?? -1), silentLogger);
    const doc = TextDocument.create('file:///big.sql', 'sql', 1, text);
    let t0 = performance.now();
    svc.opened(doc);
    const openMs = performance.now() - t0;
    const a1 = svc.analysis(doc);
    const mid = a1.statements[a1.statements.length >> 1];
    const times: number[] = [];
    for (let v = 2; v < 12; v++) {
      const pos = doc.positionAt(mid.start + 6 + v);
      TextDocument.update(doc, [{ range: { start: pos, end: pos }, text: 'y' }], v);
      t0 = performance.now();
      const a = svc.analysis(doc);
      diagnostics(a, doc);
      times.push(performance.now() - t0);
    }
    t0 = performance.now();
    const lenses = codeLenses(svc.analysis(doc), doc);
    const lensMs = performance.now() - t0;
    console.log(
      `  service: open ${ms(openMs)}; edit → analysis + diagnostics median ${ms(median(times))}; ${lenses.length} code lenses in ${ms(lensMs)}`,
    );
    assert.deepEqual(published, [1]);
    assert.ok(median(times) <= 200);
  });
});
