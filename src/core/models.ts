/** The task model as the core hands it to the extension and the tests (bigint ids become numbers). */

/** Lifecycle: queued → running → done | failed | cancelled | lost. */
export type TaskState = 'queued' | 'running' | 'done' | 'failed' | 'cancelled' | 'lost';
export type StepState = 'pending' | 'running' | 'done' | 'failed' | 'cancelled' | 'skipped';

export const FINISHED_STATES: readonly TaskState[] = ['done', 'failed', 'cancelled', 'lost'];

/** The error a task or step recorded, as the server gave it (DESIGN.md §3). */
export interface TaskErrorInfo {
  sqlstate: string;
  message: string;
  detail?: string;
  hint?: string;
  context?: string;
  /** 1-based character offset into the step's SQL, for syntax errors. */
  position?: number;
  /** 1-based step number. */
  step?: number;
}

/** Options of bgtask.run_task (the `options jsonb` argument). */
export interface TaskOptions {
  stop_on_error?: boolean;
  statement_timeout?: string;
  lock_timeout?: string;
  max_rows?: number;
  unlogged?: boolean;
  /** One flag per step from the client's parser; null lets the worker find out. */
  returns_rows?: (boolean | null)[];
}

/** A row of bgtask.list_tasks(): the task and, while it runs, live data of its worker. */
export interface TaskSummary {
  id: number;
  owner: string;
  state: TaskState;
  info: string | null;
  sql: string;
  submittedAt: Date;
  startTime: Date | null;
  endTime: Date | null;
  stepCount: number;
  stepCurrent: number | null;
  rowsAffected: number | null;
  error: TaskErrorInfo | null;
  exitReason: string | null;
  cancelRequested: boolean;
  waitEventType: string | null;
  waitEvent: string | null;
  workerState: string | null;
  blockedBy: number[] | null;
  progress: Record<string, unknown> | null;
}

export interface StepDetail {
  n: number;
  sql: string;
  returnsRows: boolean | null;
  state: StepState;
  startTime: Date | null;
  endTime: Date | null;
  commandTag: string | null;
  rowsAffected: number | null;
  error: TaskErrorInfo | null;
  capture: string | null;
  resultTable: string | null;
  resultRows: number | null;
  resultStored: number | null;
}

export interface TaskDetail {
  id: number;
  owner: string;
  loginRole: string;
  state: TaskState;
  info: string | null;
  sql: string;
  clientInfo: Record<string, unknown>;
  options: TaskOptions;
  submittedAt: Date;
  startTime: Date | null;
  endTime: Date | null;
  stepCount: number;
  stepCurrent: number | null;
  error: TaskErrorInfo | null;
  rowsAffected: number | null;
  cancelRequested: boolean;
  exitReason: string | null;
  steps: StepDetail[];
}

/** A column of a result table, with its type as format_type() prints it. */
export interface ResultColumn {
  name: string;
  type: string;
}

/** A page of a step's result: rows as PostgreSQL prints each value (text), NULL as null. */
export interface ResultPage {
  columns: ResultColumn[];
  /** The `_row` of each row, 1-based, contiguous. */
  firstRow: number;
  rows: (string | null)[][];
  /** Rows stored for the step (the cap may have dropped more; see StepDetail.resultRows). */
  totalStored: number;
}
