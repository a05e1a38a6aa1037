/**
 * How a task reads in the Task Explorer: its title and label, the description beside it, its progress and
 * its tooltip. Task text (`sql`, `info`, error messages) is foreign data, since an admin sees other roles'
 * tasks: the tooltip's markdown escapes it (text.ts). No `vscode` import (see quantities.ts).
 */
import type { TaskSummary } from '../../core/models';
import { errorLine } from './problem';
import { formatDuration, formatRelative, formatTimestamp, plural } from './quantities';
import { codeFence, escapeMarkdown, oneLine, sqlHead, sqlPreview } from './text';

/** How long a task ran (or has run so far, with `now`); undefined when it never started. */
export function taskElapsed(t: Pick<TaskSummary, 'startTime' | 'endTime'>, now: Date): number | undefined {
  if (!t.startTime) return undefined;
  return (t.endTime ?? now).getTime() - t.startTime.getTime();
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
