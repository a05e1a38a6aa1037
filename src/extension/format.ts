/**
 * Pure text helpers of the Task Explorer, the status bar and the notifications: durations, counts, relative
 * times, one-line SQL previews, state icons and tooltips. No `vscode` import (directly or through another
 * module): test/core/unit/format.test.ts runs them under plain node, and tsconfig.core.json type-checks that
 * test without @types/vscode.
 *
 * Task text (`sql`, `info`, error messages) is foreign data: an admin sees other roles' tasks. Everything meant
 * for markdown goes through escapeMarkdown or codeFence, and everything meant for a notification through
 * notificationText.
 */
import type { TaskErrorInfo, TaskState, TaskSummary } from '../core/models';

/**
 * The states of a Connection (src/extension/connections.ts). Repeated here because that module imports
 * `vscode`; the tree passes `connection.state` in, so a state added there fails to compile until handled here.
 */
export type ConnectionStateName = 'checking' | 'ready' | 'noSchema' | 'outdated' | 'newer' | 'noDblink' | 'noPassword' | 'error';

/** A codicon id and, optionally, the id of a theme colour for it. */
export interface IconSpec {
  id: string;
  color?: string;
}

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

/** How long a task ran (or has run so far, with `now`); undefined when it never started. */
export function taskElapsed(t: Pick<TaskSummary, 'startTime' | 'endTime'>, now: Date): number | undefined {
  if (!t.startTime) return undefined;
  return (t.endTime ?? now).getTime() - t.startTime.getTime();
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

/** Cuts text to at most `max` characters (code points, so no half emoji), ending with "…" when cut. */
export function truncate(text: string, max: number): string {
  const chars = Array.from(text);
  if (chars.length <= max) return text;
  return `${chars.slice(0, Math.max(0, max - 1)).join('').trimEnd()}…`;
}

/** Collapses all whitespace (newlines included) to single spaces, trims, and truncates. */
export function oneLine(text: string, max = 80): string {
  return truncate(text.replace(/\s+/g, ' ').trim(), max);
}

/**
 * A one-line preview of SQL: comments dropped (`--` and nested `/* *\/`), whitespace collapsed, truncated
 * with "…". Quoted text (strings, E'' strings, identifiers, dollar quotes) is kept, so `'--'` survives.
 */
export function sqlPreview(sql: string, max = 80): string {
  let out = '';
  let i = 0;
  const n = sql.length;
  while (i < n) {
    const c = sql[i];
    const next = sql[i + 1];
    if (c === '-' && next === '-') {
      while (i < n && sql[i] !== '\n') i++;
      out += ' ';
    } else if (c === '/' && next === '*') {
      let depth = 1;
      i += 2;
      while (i < n && depth > 0) {
        if (sql[i] === '/' && sql[i + 1] === '*') {
          depth++;
          i += 2;
        } else if (sql[i] === '*' && sql[i + 1] === '/') {
          depth--;
          i += 2;
        } else {
          i++;
        }
      }
      out += ' ';
    } else if (c === "'" || c === '"') {
      // E'…' strings allow backslash escapes; elsewhere a doubled quote is the only escape.
      const backslash = c === "'" && /(^|[^\w$])[eE]$/.test(sql.slice(Math.max(0, i - 2), i));
      let j = i + 1;
      while (j < n) {
        if (backslash && sql[j] === '\\') j += 2;
        else if (sql[j] === c && sql[j + 1] === c) j += 2;
        else if (sql[j] === c) break;
        else j++;
      }
      out += sql.slice(i, j + 1);
      i = j + 1;
    } else if (c === '$') {
      const tag = /^\$([A-Za-z_][A-Za-z0-9_]*)?\$/.exec(sql.slice(i));
      const identChar = i > 0 && /[\w$]/.test(sql[i - 1]);
      if (tag && !identChar) {
        const end = sql.indexOf(tag[0], i + tag[0].length);
        const stop = end < 0 ? n : end + tag[0].length;
        out += sql.slice(i, stop);
        i = stop;
      } else {
        out += c;
        i++;
      }
    } else {
      out += c;
      i++;
    }
  }
  return oneLine(out, max);
}

/** What a task is called in lists: its info, else a preview of its SQL. */
export function taskTitle(t: Pick<TaskSummary, 'info' | 'sql'>, max = 80): string {
  const info = t.info?.trim();
  return info ? oneLine(info, max) : sqlPreview(t.sql, max);
}

/** The tree label: "#12 nightly rollup". */
export function taskLabel(t: Pick<TaskSummary, 'id' | 'info' | 'sql'>): string {
  return `#${t.id} ${taskTitle(t)}`;
}

/** The codicon of a task state, with the theme colour that carries its meaning. */
export function stateIcon(state: TaskState): IconSpec {
  switch (state) {
    case 'running':
      return { id: 'loading~spin' };
    case 'queued':
      return { id: 'clock' };
    case 'done':
      return { id: 'pass', color: 'testing.iconPassed' };
    case 'failed':
      return { id: 'error', color: 'testing.iconFailed' };
    case 'cancelled':
      return { id: 'circle-slash' };
    case 'lost':
      return { id: 'warning', color: 'problemsWarningIcon.foreground' };
  }
}

/** What pg_stat_progress_* says, shortened: "create index: building index 42%". */
export function progressText(progress: Record<string, unknown> | null): string | undefined {
  if (!progress || typeof progress.kind !== 'string') return undefined;
  const kind = progress.kind.replace(/_/g, ' ');
  const phase = typeof progress.phase === 'string' ? `: ${progress.phase}` : '';
  const pairs: [string, string][] = [['blocks_done', 'blocks_total'], ['tuples_done', 'tuples_total'], ['heap_blks_scanned', 'heap_blks_total'], ['bytes_processed', 'bytes_total']];
  for (const [done, total] of pairs) {
    const d = Number(progress[done]);
    const t = Number(progress[total]);
    if (Number.isFinite(d) && Number.isFinite(t) && t > 0) return `${kind}${phase} ${Math.min(100, Math.floor((100 * d) / t))}%`;
  }
  return `${kind}${phase}`;
}

/** The tree description: "3 min · IO DataFileRead", "queued 2 min ago", "12 s · 1,000 rows · 2 h ago". */
export function taskDescription(t: TaskSummary, now: Date): string {
  const parts: string[] = [];
  const elapsed = taskElapsed(t, now);
  switch (t.state) {
    case 'running': {
      if (t.cancelRequested) parts.push('cancelling…');
      if (elapsed !== undefined) parts.push(formatDuration(elapsed));
      if (t.stepCount > 1 && t.stepCurrent) parts.push(`step ${t.stepCurrent}/${t.stepCount}`);
      const progress = progressText(t.progress);
      if (t.blockedBy && t.blockedBy.length > 0) parts.push(`blocked by pid ${t.blockedBy.join(', ')}`);
      else if (progress) parts.push(progress);
      else if (t.waitEvent) parts.push([t.waitEventType, t.waitEvent].filter(Boolean).join(' '));
      return parts.join(' · ');
    }
    case 'queued':
      return t.cancelRequested ? 'cancelling…' : `queued ${formatRelative(t.submittedAt, now)}`;
    case 'done':
      if (elapsed !== undefined) parts.push(formatDuration(elapsed));
      if (t.rowsAffected !== null) parts.push(plural(t.rowsAffected, 'row'));
      break;
    case 'failed':
      if (elapsed !== undefined) parts.push(formatDuration(elapsed));
      parts.push(t.error?.sqlstate ? `error ${t.error.sqlstate}` : 'failed');
      break;
    case 'cancelled':
      parts.push(elapsed !== undefined ? `cancelled after ${formatDuration(elapsed)}` : 'cancelled before it started');
      break;
    case 'lost':
      parts.push(elapsed !== undefined ? `lost after ${formatDuration(elapsed)}` : 'lost');
      break;
  }
  const ended = t.endTime ?? undefined;
  if (ended) parts.push(formatRelative(ended, now));
  return parts.join(' · ');
}

/** Backslash-escapes every ASCII punctuation character, so text renders literally in markdown (CommonMark §2.4). */
export function escapeMarkdown(text: string): string {
  return text.replace(/[!-/:-@[-`{-~]/g, '\\$&');
}

/** A fenced markdown code block that the code cannot close early: the fence is longer than any backtick run in it. */
export function codeFence(code: string, language = ''): string {
  const longest = Math.max(0, ...Array.from(code.matchAll(/`+/g), (m) => m[0].length));
  const fence = '`'.repeat(Math.max(3, longest + 1));
  return `${fence}${language}\n${code}\n${fence}`;
}

/** Keeps the head of long SQL for a tooltip: at most `maxLines` lines and `maxChars` characters. */
export function sqlHead(sql: string, maxLines = 30, maxChars = 3000): string {
  const lines = sql.replace(/\s+$/, '').split('\n');
  let head = lines.slice(0, maxLines).join('\n');
  const cut = lines.length > maxLines || head.length > maxChars;
  if (head.length > maxChars) head = Array.from(head).slice(0, maxChars).join('');
  return cut ? `${head}\n…` : head;
}

/** The error as one line: "22012 division by zero (step 2)". */
export function errorLine(e: TaskErrorInfo): string {
  return `${e.sqlstate ? `${e.sqlstate} ` : ''}${e.message}${e.step ? ` (step ${e.step})` : ''}`;
}

/**
 * The lines of a task's tooltip, as plain text. Each becomes a markdown line after escapeMarkdown; the SQL
 * follows in a code block (see taskTooltipMarkdown).
 */
export function taskTooltipLines(t: TaskSummary, now: Date): string[] {
  const lines = [`#${t.id} · ${t.state}${t.cancelRequested && (t.state === 'running' || t.state === 'queued') ? ' (cancel requested)' : ''} · owner ${t.owner}`];
  if (t.info?.trim()) lines.push(t.info.trim());
  lines.push(`Submitted ${formatTimestamp(t.submittedAt)} (${formatRelative(t.submittedAt, now)})`);
  if (t.startTime) lines.push(`Started ${formatTimestamp(t.startTime)}`);
  if (t.endTime) lines.push(`Ended ${formatTimestamp(t.endTime)} (${formatRelative(t.endTime, now)})`);
  const elapsed = taskElapsed(t, now);
  if (elapsed !== undefined) lines.push(`${t.endTime ? 'Ran for' : 'Running for'} ${formatDuration(elapsed)}`);
  if (t.stepCount > 1) lines.push(t.stepCurrent ? `Step ${t.stepCurrent} of ${t.stepCount}` : `${t.stepCount} steps`);
  if (t.state === 'running') {
    if (t.waitEvent) lines.push(`Waiting on ${[t.waitEventType, t.waitEvent].filter(Boolean).join(' ')}`);
    if (t.blockedBy && t.blockedBy.length > 0) lines.push(`Blocked by pid ${t.blockedBy.join(', ')}`);
    const progress = progressText(t.progress);
    if (progress) lines.push(`Progress: ${progress}`);
  }
  if (t.rowsAffected !== null) lines.push(`${plural(t.rowsAffected, 'row')} affected`);
  if (t.error) {
    lines.push(`Error: ${errorLine(t.error)}`);
    if (t.error.detail) lines.push(`Detail: ${t.error.detail}`);
    if (t.error.hint) lines.push(`Hint: ${t.error.hint}`);
  }
  if (t.exitReason && t.exitReason !== 'finished' && t.exitReason !== 'a step failed') lines.push(`Why: ${t.exitReason}`);
  return lines;
}

/** The whole tooltip as untrusted markdown: escaped lines with hard breaks, then the SQL in a code block. */
export function taskTooltipMarkdown(t: TaskSummary, now: Date): string {
  const text = taskTooltipLines(t, now)
    .flatMap((l) => l.split(/\r?\n/))
    .map(escapeMarkdown)
    .join('  \n');
  return `${text}\n\n${codeFence(sqlHead(t.sql), 'sql')}`;
}

/**
 * Text for a notification. VS Code turns `[label](command:…)` in a notification into a link that runs the
 * command, so a task's info or error message could otherwise carry one into an admin's editor: this breaks
 * the `](` pair, collapses the text to one line and truncates it.
 */
export function notificationText(text: string, max = 200): string {
  return oneLine(text.replace(/\]\s*\(/g, '] ('), max);
}

/** The notification for a task that ended, and how loud it should be. */
export function finishMessage(t: TaskSummary, now: Date): { text: string; severity: 'info' | 'warning' | 'error' } {
  const title = notificationText(taskTitle(t, 120), 120);
  const elapsed = taskElapsed(t, now);
  const took = elapsed !== undefined ? ` in ${formatDuration(elapsed)}` : '';
  switch (t.state) {
    case 'done':
      return { text: `Task #${t.id} finished${took}: ${title}`, severity: 'info' };
    case 'failed':
      return { text: notificationText(`Task #${t.id} failed: ${t.error ? errorLine(t.error) : t.exitReason ?? 'unknown error'}`, 300), severity: 'error' };
    case 'cancelled':
      return { text: `Task #${t.id} was cancelled${elapsed !== undefined ? ` after ${formatDuration(elapsed)}` : ''}: ${title}`, severity: 'info' };
    case 'lost':
      return { text: notificationText(`Task #${t.id} was lost: ${t.exitReason ?? 'its supervisor session ended'} (${title})`, 300), severity: 'warning' };
    default:
      return { text: `Task #${t.id} is ${t.state}: ${title}`, severity: 'info' };
  }
}

/** "5 background tasks ended while VS Code was closed: 4 done, 1 failed". */
export function summaryMessage(states: TaskState[], whileClosed: boolean): string {
  const order: TaskState[] = ['done', 'failed', 'cancelled', 'lost'];
  const counts = order.map((s) => [s, states.filter((x) => x === s).length] as const).filter(([, c]) => c > 0);
  return `${plural(states.length, 'background task')} ended${whileClosed ? ' while VS Code was closed' : ''}: ${counts.map(([s, c]) => `${formatCount(c)} ${s}`).join(', ')}`;
}

/** Status bar text: "$(loading~spin) 3 tasks running", "· 2 queued"; empty when nothing runs or waits. */
export function statusBarText(running: number, queued: number): string {
  if (running === 0 && queued === 0) return '';
  if (running === 0) return `$(clock) ${plural(queued, 'task')} queued`;
  return `$(loading~spin) ${plural(running, 'task')} running${queued > 0 ? ` · ${formatCount(queued)} queued` : ''}`;
}

/** The codicon of a connection: a database when ready, else what kind of trouble it is in. */
export function connectionIcon(state: ConnectionStateName): IconSpec {
  switch (state) {
    case 'ready':
      return { id: 'database' };
    case 'checking':
      return { id: 'loading~spin' };
    case 'noSchema':
    case 'outdated':
    case 'noPassword':
    case 'noDblink':
      return { id: 'warning', color: 'problemsWarningIcon.foreground' };
    case 'newer':
    case 'error':
      return { id: 'error', color: 'problemsErrorIcon.foreground' };
  }
}

/** What a connection needs explained; versions and the problem are optional. */
export interface ConnectionFacts {
  state: ConnectionStateName;
  label: string;
  problem?: string;
  installedVersion?: number;
  latestVersion?: number;
}

/** The short text beside a connection's name: its address when ready, else what is wrong. */
export function connectionDescription(c: ConnectionFacts): string {
  switch (c.state) {
    case 'ready':
      return c.label;
    case 'checking':
      return 'connecting…';
    case 'noSchema':
      return 'bgtask schema not installed';
    case 'outdated':
      return 'bgtask schema needs an upgrade';
    case 'newer':
      return 'bgtask schema newer than this extension';
    case 'noDblink':
      return 'dblink not available';
    case 'noPassword':
      return 'password for background tasks not set';
    case 'error':
      return oneLine(c.problem ?? 'cannot connect', 80);
  }
}

/** What is wrong with a connection and what to do about it, in sentences (tooltip and message lines). */
export function connectionAdvice(c: ConnectionFacts): string {
  const versions = c.installedVersion !== undefined && c.latestVersion !== undefined ? ` (installed v${c.installedVersion}, this extension v${c.latestVersion})` : '';
  switch (c.state) {
    case 'ready':
      return 'Connected; background tasks can run here.';
    case 'checking':
      return 'Connecting and checking the bgtask schema…';
    case 'noSchema':
      return 'The bgtask schema is not installed in this database. Install it (needs a superuser or a database owner with dblink).';
    case 'outdated':
      return `The bgtask schema is older than this extension${versions}. Upgrade it.`;
    case 'newer':
      return `The bgtask schema is newer than this extension knows${versions}. Update the extension.`;
    case 'noDblink':
      return 'The dblink extension is neither installed nor available on this server. Ask an administrator to install the PostgreSQL contrib package, then refresh.';
    case 'noPassword':
      return 'Background tasks log in again through dblink, which needs your password stored in the database. Set it to run tasks.';
    case 'error':
      return `Cannot use this connection: ${c.problem ?? 'unknown error'}. Check the connection settings and the server, then retry.`;
  }
}

/** The connection tooltip, as plain text: name, address, the advice. */
export function connectionTooltip(name: string, c: ConnectionFacts): string {
  return `${name} — ${c.label}\n${connectionAdvice(c)}`;
}

/** What node's socket error codes mean to someone who just wants to reach the server (no final stop: callers add text). */
const NETWORK_ERRORS: Record<string, string> = {
  ECONNREFUSED: 'connection refused; check that the server is running and listens on that host and port',
  ETIMEDOUT: 'timed out; check the host, the port, and any firewall or VPN in between',
  ENOTFOUND: 'host name not found; check the host',
  EAI_AGAIN: 'host name lookup failed; check the network or DNS',
  EHOSTUNREACH: 'host unreachable; check the network or VPN',
  ENETUNREACH: 'network unreachable; check the network or VPN',
  ECONNRESET: 'the connection was reset; retry in a moment',
};

/**
 * A failure as a sentence a DBA can act on. Socket errors arrive as "connect ECONNREFUSED 127.0.0.1:5432",
 * with the errno where a SQLSTATE would be (toTaskError keeps any string `code`), so they are recognised by
 * that code; server messages are already good English and pass through unchanged.
 */
export function problemText(message: string, code?: string): string {
  const net = code ? NETWORK_ERRORS[code] : undefined;
  if (net) {
    const where = /(?:\d{1,3}(?:\.\d{1,3}){3}|\[[0-9a-fA-F:]+\]|[A-Za-z0-9_.-]+):\d+\b/.exec(message)?.[0];
    return `Cannot reach the server${where ? ` at ${where}` : ''}: ${net}`;
  }
  if (code === '57P03' || code === '57P01') return `${message.replace(/\.$/, '')}; retry in a moment`;
  if (/^Connection terminated/i.test(message)) return 'The server closed the connection (did it restart?); retry in a moment';
  return message;
}

/** Whether `code` is a SQLSTATE (five digits and capitals, at least one digit) rather than a socket errno. */
export function isSqlState(code: string | undefined): code is string {
  return code !== undefined && /^[0-9A-Z]{5}$/.test(code) && /\d/.test(code);
}
