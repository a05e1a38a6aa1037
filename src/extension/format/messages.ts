/**
 * What the notifications and the status bar say about tasks. A task's info or error message is foreign data
 * (an admin sees other roles' tasks): everything meant for a notification goes through notificationText. No
 * `vscode` import (see quantities.ts).
 */
import type { TaskState, TaskSummary } from '../../core/models';
import { errorLine } from './problem';
import { formatCount, formatDuration, plural } from './quantities';
import { taskElapsed, taskTitle } from './task';
import { oneLine } from './text';

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
