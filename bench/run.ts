/**
 * `npm run bench` (node --import tsx bench/run.ts): the performance figures of issue 7, each against a baseline
 * measured in the same run. A script, not a test: it starts its own throwaway PostgreSQL (test/harness), runs
 * each case with warm-up and several runs, prints median, p95 and the ratio, ends with a Markdown table, and
 * writes bench-results/report.json. It exits 0 when every case ran, whether or not targets were met (a miss is
 * reported, with its cause where the bench can tell); 1 when a case could not run; 2 on a bad argument.
 *
 *   npm run bench                       # everything, about 5 minutes on 2 cores
 *   npm run bench -- --quick            # smaller sizes and fewer runs (a smoke run, about a minute)
 *   npm run bench -- --only submit,list # some cases: submit start concurrent overhead capture page list lsp
 *                                       #   package webview (activation and the task panel)
 * BGTASK_PG_MAJOR / BGTASK_PGBIN pick the PostgreSQL binaries, as for the tests (default: 18 from npm).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { BENCH_PG_SETTINGS, startBenchDb, type BenchDb } from './db';
import { benchCapture, benchListing, benchOverhead, benchResultPage } from './engine';
import { benchPackage, removeProductionBuild, REPO_ROOT } from './extension';
import { fmt, machine, markdownTable, type BenchOptions, type CaseResult } from './lib';
import { benchLsp } from './lsp';
import { benchConcurrent, benchSubmit } from './submit';
import { benchWebview } from './webview';

const CASES = ['submit', 'start', 'concurrent', 'overhead', 'capture', 'page', 'list', 'lsp', 'package', 'webview'] as const;
type CaseId = (typeof CASES)[number];
const ALIASES: Record<string, CaseId[]> = {
  activation: ['webview'], vsix: ['package'], 'bundle-load': ['package'], listing: ['list'], engine: ['overhead', 'capture', 'page'],
  db: ['submit', 'start', 'concurrent', 'overhead', 'capture', 'page', 'list'],
};

class UsageError extends Error {}

function parseArgs(argv: string[]): BenchOptions & { selected: Set<CaseId> } {
  const only: string[] = [];
  let quick = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--quick') quick = true;
    else if (a === '--only') only.push(...(argv[++i] ?? '').split(','));
    else if (a.startsWith('--only=')) only.push(...a.slice(7).split(','));
    else if (a === '--help' || a === '-h') {
      console.log(`usage: npm run bench -- [--quick] [--only ${CASES.join(',')}]`);
      process.exit(0);
    } else throw new UsageError(`unknown argument ${a} (try --help)`);
  }
  const selected = new Set<CaseId>();
  for (const raw of only.map((s) => s.trim()).filter(Boolean)) {
    const ids = (CASES as readonly string[]).includes(raw) ? [raw as CaseId] : ALIASES[raw];
    if (!ids) throw new UsageError(`unknown case '${raw}'; cases: ${CASES.join(', ')}`);
    for (const id of ids) selected.add(id);
  }
  if (!selected.size) for (const c of CASES) selected.add(c);
  const t0 = performance.now();
  const log = (s: string) => console.log(`[${((performance.now() - t0) / 1000).toFixed(0).padStart(4)} s] ${s}`);
  return { quick, only, selected, log };
}

function printResult(r: CaseResult, log: (s: string) => void): void {
  const base = r.baseline ? ` | baseline ${r.baseline.name}: median ${fmt(r.baseline.median, r.unit)}, p95 ${fmt(r.baseline.p95, r.unit)} | ratio ${r.ratio?.toFixed(2)}×` : '';
  const verdict = r.ok === null ? 'reported' : r.ok ? 'ok' : 'MISSED';
  log(`${r.name}: median ${fmt(r.median, r.unit)}, p95 ${fmt(r.p95, r.unit)}${base} | target ${r.target}: ${verdict}`);
  for (const n of r.notes) log(`    ${n.replace(/\n/g, '\n      ')}`);
}

async function main(): Promise<number> {
  const opts = parseArgs(process.argv.slice(2));
  const { selected, log } = opts;
  const started = new Date();
  const loadAtStart = os.loadavg().map((x) => x.toFixed(2)).join(' ');
  const t0 = performance.now();
  log(`bench: ${[...selected].join(', ')}${opts.quick ? ' (--quick)' : ''}`);
  const results: CaseResult[] = [];
  const failures: string[] = [];
  const add = (rs: CaseResult[]) => { for (const r of rs) { results.push(r); printResult(r, log); } };
  const attempt = async (name: string, fn: () => Promise<void>) => {
    try {
      await fn();
    } catch (e) {
      failures.push(`${name}: ${e instanceof Error ? e.message : String(e)}`);
      log(`${name} FAILED: ${e instanceof Error ? e.stack : String(e)}`);
    }
  };

  // No database needed: the language server, and the production build (used by package and webview).
  if (selected.has('lsp')) await attempt('lsp', async () => add(await benchLsp(opts)));
  if (selected.has('package')) await attempt('package', async () => add(await benchPackage(opts)));

  const needsDb = CASES.filter((c) => !['lsp', 'package'].includes(c)).some((c) => selected.has(c));
  let b: BenchDb | undefined;
  let pgVersion: string | undefined;
  try {
    if (needsDb) {
      b = await startBenchDb(log);
      pgVersion = b.version;
      const db = b;
      if (selected.has('submit') || selected.has('start')) {
        await attempt('submit', async () => add((await benchSubmit(db, opts)).filter((r) => selected.has(r.id as CaseId))));
      }
      if (selected.has('concurrent')) await attempt('concurrent', async () => add(await benchConcurrent(db, opts)));
      let lastTask: number | undefined;
      if (selected.has('overhead')) await attempt('overhead', async () => add(await benchOverhead(db, opts)));
      if (selected.has('capture')) await attempt('capture', async () => { const c = await benchCapture(db, opts); lastTask = c.lastTask; add(c.results); });
      if (selected.has('page')) await attempt('page', async () => add(await benchResultPage(db, opts, lastTask)));
      // The webview before the listing, so the Task Explorer does not page through a million fake tasks.
      if (selected.has('webview')) await attempt('webview', async () => add(await benchWebview(db, opts)));
      if (selected.has('list')) await attempt('list', async () => add(await benchListing(db, opts)));
    }
  } finally {
    await b?.close().catch(() => undefined);
    removeProductionBuild();
  }

  const totalS = (performance.now() - t0) / 1000;
  const command = `npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`;
  const env = machine(pgVersion);
  const table = markdownTable(results);
  console.log(`\n## Performance (${command}; ${totalS.toFixed(0)} s)\n`);
  console.log(`Machine: ${env.cores} cores, ${env.cpuModel}, ${env.memoryGb} GB; ${env.os}; Node ${env.node}${pgVersion ? `; ${pgVersion.split(',')[0]}` : ''}; load average at start ${loadAtStart}, at end ${env.loadAverage}\n`);
  console.log(table);
  const missed = results.filter((r) => r.ok === false);
  if (missed.length) console.log(`\nMissed: ${missed.map((r) => r.id).join(', ')} (causes in the notes above and in the report)`);
  if (failures.length) console.log(`\nFailed to run:\n${failures.map((f) => `- ${f}`).join('\n')}`);

  const outDir = path.join(REPO_ROOT, 'bench-results');
  fs.mkdirSync(outDir, { recursive: true });
  const report = {
    command, quick: opts.quick, startedAt: started.toISOString(), seconds: Math.round(totalS), machine: { ...env, loadAverageAtStart: loadAtStart },
    postgresSettings: needsDb ? BENCH_PG_SETTINGS : undefined,
    results, failures, table,
  };
  fs.writeFileSync(path.join(outDir, 'report.json'), JSON.stringify(report, null, 2) + '\n');
  console.log(`\nreport: ${path.relative(process.cwd(), path.join(outDir, 'report.json'))}`);
  return failures.length ? 1 : 0;
}

main().then((code) => { process.exitCode = code; }, (e) => { console.error(e instanceof UsageError ? e.message : e); process.exitCode = e instanceof UsageError ? 2 : 1; });
