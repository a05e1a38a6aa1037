/**
 * Shared pieces of `npm run bench` (bench/run.ts): options, statistics, the result record of a case, the table.
 * Benchmarks are a script, not tests (DESIGN.md §6): every figure is printed with the baseline measured in the
 * same run, and nothing here fails a build; the exit code says only whether the script itself worked.
 */
import * as os from 'node:os';

export interface BenchOptions {
  /** Smaller sizes and fewer runs, for a smoke run (about two minutes). */
  quick: boolean;
  /** Case ids (or groups) to run; empty: all. */
  only: string[];
  log: (s: string) => void;
}

/** One line of the final table. */
export interface CaseResult {
  /** Stable id, e.g. 'submit'. */
  id: string;
  /** What was measured, as printed in the table. */
  name: string;
  unit: 'ms' | 'MB' | '%';
  /** Median and 95th percentile of the measured samples (ms unless `unit` says otherwise). */
  median: number;
  p95: number;
  samples: number[];
  baseline?: { name: string; median: number; p95: number; samples: number[] };
  /** median / baseline median. */
  ratio?: number;
  /** The target as written in issue 7, e.g. '≤ 1.5×', '≤ 10 ms'. */
  target: string;
  /** Whether the target is met; null: reported only (never gating), or could not be measured. */
  ok: boolean | null;
  /** What the reader should know: how it was measured, causes of a miss. */
  notes: string[];
  extra?: Record<string, unknown>;
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Wall-clock milliseconds with sub-millisecond resolution (same clock as the server's clock_timestamp()). */
export const wallMs = () => performance.timeOrigin + performance.now();

export function quantile(xs: number[], q: number): number {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  // Nearest rank: p95 of 20 samples is the 19th, of 5 samples the 5th (the maximum).
  const rank = Math.max(1, Math.ceil(q * s.length));
  return s[rank - 1];
}
export const median = (xs: number[]) => {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
export const p95 = (xs: number[]) => quantile(xs, 0.95);

/** A result measured against a baseline: ratio of the medians, gated by `maxRatio`. */
export function ratioResult(r: {
  id: string; name: string; samples: number[]; baselineName: string; baseline: number[]; maxRatio: number; target: string;
  notes?: string[]; extra?: Record<string, unknown>; unit?: CaseResult['unit'];
}): CaseResult {
  const m = median(r.samples);
  const b = median(r.baseline);
  const ratio = m / b;
  return {
    id: r.id, name: r.name, unit: r.unit ?? 'ms', median: m, p95: p95(r.samples), samples: r.samples,
    baseline: { name: r.baselineName, median: b, p95: p95(r.baseline), samples: r.baseline },
    ratio, target: r.target, ok: Number.isFinite(ratio) ? ratio <= r.maxRatio : null, notes: r.notes ?? [], extra: r.extra,
  };
}

/** A result with an absolute limit on the median (`limit` null: reported only). */
export function absoluteResult(r: {
  id: string; name: string; samples: number[]; limit: number | null; target: string; notes?: string[];
  extra?: Record<string, unknown>; unit?: CaseResult['unit'];
}): CaseResult {
  const m = median(r.samples);
  return {
    id: r.id, name: r.name, unit: r.unit ?? 'ms', median: m, p95: p95(r.samples), samples: r.samples,
    target: r.target, ok: r.limit === null || !Number.isFinite(m) ? null : m <= r.limit, notes: r.notes ?? [], extra: r.extra,
  };
}

/** A case that could not be measured (the reason goes in the table and the report). */
export function skippedResult(id: string, name: string, target: string, why: string): CaseResult {
  return { id, name, unit: 'ms', median: NaN, p95: NaN, samples: [], target, ok: null, notes: [`not measured: ${why}`] };
}

/**
 * Runs `fn` `warmup` times unrecorded, then `runs` times, and returns the values it returned (or its duration in
 * ms when it returns nothing). With several functions, they take turns run by run, so that a drift of the machine
 * (another process, the page cache, autovacuum) hits each side alike.
 */
export async function interleave<T extends string>(
  fns: Record<T, () => Promise<number | void>>, opts: { warmup: number; runs: number; between?: () => Promise<void> },
): Promise<Record<T, number[]>> {
  const keys = Object.keys(fns) as T[];
  const out = Object.fromEntries(keys.map((k) => [k, [] as number[]])) as Record<T, number[]>;
  for (let i = 0; i < opts.warmup + opts.runs; i++) {
    // Alternate the order too: A B, B A, A B…
    const order = i % 2 ? [...keys].reverse() : keys;
    for (const k of order) {
      const t0 = performance.now();
      const v = await fns[k]();
      const took = performance.now() - t0;
      if (i >= opts.warmup) out[k].push(typeof v === 'number' ? v : took);
      await opts.between?.();
    }
  }
  return out;
}

// ---- formatting ----

export function fmt(v: number, unit: CaseResult['unit'] = 'ms'): string {
  if (!Number.isFinite(v)) return '—';
  if (unit === 'MB') return `${v.toFixed(2)} MB`;
  if (unit === '%') return `${v.toFixed(2)} %`;
  if (v >= 10_000) return `${(v / 1000).toFixed(2)} s`;
  if (v >= 100) return `${v.toFixed(0)} ms`;
  if (v >= 10) return `${v.toFixed(1)} ms`;
  return `${v.toFixed(2)} ms`;
}

export function markdownTable(results: CaseResult[]): string {
  const rows = [
    ['case', 'median', 'p95', 'baseline (median)', 'ratio', 'target', 'ok?'],
    ['---', '--:', '--:', '---', '--:', '---', ':-:'],
  ];
  for (const r of results) {
    rows.push([
      r.name,
      fmt(r.median, r.unit),
      fmt(r.p95, r.unit),
      r.baseline ? `${r.baseline.name}: ${fmt(r.baseline.median, r.unit)}` : '—',
      r.ratio !== undefined && Number.isFinite(r.ratio) ? `${r.ratio.toFixed(2)}×` : '—',
      r.target,
      r.ok === null ? (Number.isFinite(r.median) ? 'reported' : 'not run') : r.ok ? 'yes' : '**NO**',
    ]);
  }
  return rows.map((cells) => `| ${cells.map((c) => c.replace(/\|/g, '\\|')).join(' | ')} |`).join('\n');
}

export function machine(pgVersion?: string): Record<string, string | number> {
  const cpus = os.cpus();
  return {
    cpuModel: cpus[0]?.model ?? 'unknown',
    cores: cpus.length,
    memoryGb: Math.round(os.totalmem() / 2 ** 30),
    os: `${os.type()} ${os.release()}`,
    node: process.version,
    loadAverage: os.loadavg().map((x) => x.toFixed(2)).join(' '),
    ...(pgVersion ? { postgres: pgVersion } : {}),
  };
}
