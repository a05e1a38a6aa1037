/**
 * Durations, times and counts as people read them, independent of the locale. Like everything in
 * src/extension/format/, no `vscode` import (directly or through another module): test/core/unit/format.test.ts
 * runs these helpers under plain node, and tsconfig.core.json type-checks that test without @types/vscode.
 */

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

const pad2 = (n: number) => String(n).padStart(2, '0');

/**
 * A duration as people read it: "340 ms", "12 s", "2 min 3 s", "1 h 02 min", "3 d 04 h". Two units at most;
 * the smaller one is zero-padded once the larger is hours or days, so columns of durations line up.
 * Negative values (clock skew between the server and this machine) count as zero.
 */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) ms = 0;
  if (ms < SECOND) return `${Math.floor(ms)} ms`;
  if (ms < MINUTE) return `${Math.floor(ms / SECOND)} s`;
  if (ms < HOUR) {
    const min = Math.floor(ms / MINUTE);
    const s = Math.floor((ms % MINUTE) / SECOND);
    return s === 0 ? `${min} min` : `${min} min ${s} s`;
  }
  if (ms < DAY) return `${Math.floor(ms / HOUR)} h ${pad2(Math.floor((ms % HOUR) / MINUTE))} min`;
  return `${Math.floor(ms / DAY)} d ${pad2(Math.floor((ms % DAY) / HOUR))} h`;
}

/** "just now", "5 min ago", "3 h ago", "yesterday", "4 days ago", then the date. A future time reads "just now". */
export function formatRelative(then: Date, now: Date): string {
  const ms = now.getTime() - then.getTime();
  if (ms < MINUTE) return 'just now';
  if (ms < HOUR) return `${Math.floor(ms / MINUTE)} min ago`;
  if (ms < DAY) return `${Math.floor(ms / HOUR)} h ago`;
  const days = Math.floor(ms / DAY);
  if (days === 1) return 'yesterday';
  if (days < 30) return `${days} days ago`;
  return formatTimestamp(then).slice(0, 10);
}

/** Local time as "2024-01-02 03:04:05", independent of the locale. */
export function formatTimestamp(d: Date): string {
  return `${d.getFullYear()}-${pad2(d.getMonth() + 1)}-${pad2(d.getDate())} ${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}`;
}

/** An integer with comma thousands separators ("1,234,567"), independent of the locale. */
export function formatCount(n: number): string {
  return String(Math.trunc(n)).replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}

/** "1 row", "1,000 rows". */
export function plural(n: number, one: string, many = `${one}s`): string {
  return `${formatCount(n)} ${n === 1 ? one : many}`;
}
