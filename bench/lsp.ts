/**
 * The SQL language server on a 1 MB script (test/server/corpus.ts, the same text test/server/bench.test.ts uses):
 * the first analysis of a document (src/server/analysis.ts: our splitter, then libpg-query per statement, as the
 * server does on open) against libpg-query's own parseSync of the whole file; then the re-analysis after a
 * one-line edit, typed at spots all over the file (only the edited statement is parsed again).
 */
import { TextDocument } from 'vscode-languageserver-textdocument';
import { silentLogger } from '../src/core/logger';
import { DocumentAnalyzer } from '../src/server/analysis';
import { diagnostics } from '../src/server/features';
import { loadPgParser } from '../src/server/pgParser';
import { SqlService } from '../src/server/service';
import { bigScript } from '../test/server/corpus';
import { absoluteResult, interleave, median, ratioResult, type BenchOptions, type CaseResult } from './lib';

export async function benchLsp(o: BenchOptions): Promise<CaseResult[]> {
  const parser = await loadPgParser();
  const { parseSync } = await import('libpg-query');
  const text = bigScript(1024 * 1024);
  const bytes = Buffer.byteLength(text);
  const runs = o.quick ? 5 : 11;
  o.log(`lsp: ${(bytes / 2 ** 20).toFixed(2)} MiB script, 1 warm-up + ${runs} runs each, alternating`);
  let statements = 0;
  const r = await interleave({
    analysis: async () => {
      const t0 = performance.now();
      const a = new DocumentAnalyzer(parser).analyze(text, 1);
      const ms = performance.now() - t0;
      statements = a.statements.length;
      if (a.statements.some((s) => s.facts.error)) throw new Error('the corpus should parse');
      return ms;
    },
    parseSync: async () => {
      const t0 = performance.now();
      const res = parseSync(text);
      const ms = performance.now() - t0;
      if (res.stmts?.length !== statements && statements) throw new Error(`parseSync saw ${res.stmts?.length} statements, the analysis ${statements}`);
      return ms;
    },
  }, { warmup: 1, runs });

  // The whole server path on open: analysis plus diagnostics for the document, as SqlService.opened() does.
  const openMs: number[] = [];
  for (let i = 0; i < Math.min(runs, 5); i++) {
    const svc = new SqlService(parser, () => undefined, silentLogger);
    const doc = TextDocument.create(`file:///big${i}.sql`, 'sql', 1, text);
    const t0 = performance.now();
    svc.opened(doc);
    openMs.push(performance.now() - t0);
    svc.dispose();
  }

  // One-line edits inside statements all over the file, one after another, each re-analysed (and diagnosed,
  // as the server does when the edits pause).
  const analyzer = new DocumentAnalyzer(parser);
  const svcDoc = TextDocument.create('file:///edit.sql', 'sql', 1, text);
  let current = analyzer.analyze(text, 1);
  const edits = o.quick ? 15 : 40;
  const editMs: number[] = [];
  let reparsed = 0;
  for (let k = 1; k <= edits; k++) {
    const s = current.statements[Math.floor((current.statements.length * k) / (edits + 1))];
    const at = s.start + s.text.indexOf(' ') + 1;
    const next = current.text.slice(0, at) + `x${k}_` + current.text.slice(at); // unique, never a cache hit
    TextDocument.update(svcDoc, [{ range: { start: svcDoc.positionAt(at), end: svcDoc.positionAt(at) }, text: `x${k}_` }], k + 1);
    const t0 = performance.now();
    current = analyzer.analyze(next, k + 1);
    diagnostics(current, svcDoc);
    editMs.push(performance.now() - t0);
    reparsed = Math.max(reparsed, current.timing.parsed);
  }
  return [
    ratioResult({
      id: 'lsp-first', name: 'language server: first analysis of a 1 MB file', samples: r.analysis,
      baselineName: 'libpg-query parseSync, whole file', baseline: r.parseSync, maxRatio: 1.3, target: '≤ 1.3×',
      notes: [
        `${(bytes / 2 ** 20).toFixed(2)} MiB, ${statements} statements; WASM load ${parser.loadMs.toFixed(0)} ms (once per server, not included)`,
        `server open path (analysis + diagnostics): median ${median(openMs).toFixed(0)} ms`,
      ],
    }),
    absoluteResult({
      id: 'lsp-edit', name: 'language server: re-analysis after a one-line edit (1 MB file)', samples: editMs, limit: 20, target: '≤ 20 ms',
      notes: [`${edits} edits at spots all over the file, each re-split around the edit, re-parsed (at most ${reparsed} statement(s)) and diagnosed`],
    }),
  ];
}
