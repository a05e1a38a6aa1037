/**
 * Every message between the task panel's host (src/extension/taskPanel.ts) and its webview (media/taskPanel.ts).
 * No runtime imports: media/ imports this file too. Both sides switch exhaustively on `type`; the host treats
 * every incoming message as untrusted input and validates it (isWebviewToHost).
 */

import type { TaskErrorInfo } from '../models';

/** A task as the panel shows it. Times are ISO strings; every text is foreign data, shown with textContent. */
export interface TaskView {
  connection: string;
  id: number;
  owner: string;
  state: 'queued' | 'running' | 'done' | 'failed' | 'cancelled' | 'lost';
  info: string | null;
  sql: string;
  submittedAt: string;
  startTime: string | null;
  endTime: string | null;
  stepCount: number;
  stepCurrent: number | null;
  rowsAffected: number | null;
  exitReason: string | null;
  cancelRequested: boolean;
  error: ErrorView | null;
  steps: StepView[];
  /** Live data of a running task's worker. */
  live: { waitEvent: string | null; blockedBy: number[] | null; progress: Record<string, unknown> | null } | null;
}

/** The error as the task row records it (one definition: src/core/models.ts). */
export type ErrorView = TaskErrorInfo;

export interface StepView {
  n: number;
  sql: string;
  state: 'pending' | 'running' | 'done' | 'failed' | 'cancelled' | 'skipped';
  startTime: string | null;
  endTime: string | null;
  commandTag: string | null;
  rowsAffected: number | null;
  capture: string | null;
  /** Rows the statement returned, and how many were stored (a cap may drop the rest). */
  resultRows: number | null;
  resultStored: number | null;
  hasResult: boolean;
  error: ErrorView | null;
}

export interface ColumnView {
  name: string;
  type: string;
}

/** Rows of a page: the panel asks for PAGE_ROWS at a time. */
export const PAGE_ROWS = 500;

/**
 * The step whose rows the panel opens on: the last one with collected rows, what a DBA usually came for. The
 * webview picks it and the host sends its first page with the task, so both use this one rule.
 */
export function stepWithRows(steps: readonly StepView[]): StepView | undefined {
  return [...steps].reverse().find((s) => s.hasResult);
}

/** A page of a step's result (values as PostgreSQL prints them; null is NULL). */
export interface RowsView {
  step: number;
  columns: ColumnView[];
  firstRow: number;
  rows: (string | null)[][];
  totalStored: number;
}

/** Host → webview. */
export type HostToWebview =
  /**
   * The task, on open and after every state change or refresh. The answer to 'ready' also brings the first page
   * of the step the panel opens on (the last one with rows), so the first rows paint without another round trip.
   */
  | { type: 'task'; task: TaskView; firstRows?: RowsView }
  /** Answer to fetchRows. */
  | ({ type: 'rows'; requestId: number } & RowsView)
  /** A request failed; shown inline, never as HTML. */
  | { type: 'error'; requestId?: number; message: string };

/** Webview → host. */
export type WebviewToHost =
  /** The webview has loaded (again) and wants the task. */
  | { type: 'ready' }
  | { type: 'refresh' }
  /** Rows afterRow+1 … afterRow+limit of step `step`. */
  | { type: 'fetchRows'; requestId: number; step: number; afterRow: number; limit: number }
  | { type: 'cancel' }
  | { type: 'rerun' }
  /** Export a step's result to a file the user picks. */
  | { type: 'export'; step: number; format: 'csv' | 'json' }
  /** Open the step's SQL in an editor with the cursor at the error position. */
  | { type: 'goToError' }
  | { type: 'copy'; text: string };

/** Validates a message from the webview (untrusted input). */
export function isWebviewToHost(m: unknown): m is WebviewToHost {
  if (typeof m !== 'object' || m === null || Array.isArray(m)) return false;
  const o = m as Record<string, unknown>;
  const int = (v: unknown) => typeof v === 'number' && Number.isInteger(v) && v >= 0;
  switch (o.type) {
    case 'ready':
    case 'refresh':
    case 'cancel':
    case 'rerun':
    case 'goToError':
      return true;
    case 'fetchRows':
      return int(o.requestId) && int(o.step) && int(o.afterRow) && int(o.limit) && (o.limit as number) <= 5000;
    case 'export':
      return int(o.step) && (o.format === 'csv' || o.format === 'json');
    case 'copy':
      return typeof o.text === 'string' && o.text.length <= 10_000_000;
    default:
      return false;
  }
}
