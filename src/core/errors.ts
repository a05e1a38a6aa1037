/**
 * Typed errors of the core and the one place where SQLSTATEs are mapped to reasons the UI can act on.
 * Every message shown to a user is one sentence plus, where the server gave one, its hint.
 */

/** Why a task operation failed, as the UI needs to know it (each maps to a button that helps). */
export type TaskErrorReason =
  | 'noDblink' // dblink is not installed or available: install it
  | 'noSchema' // the bgtask schema is missing: install it
  | 'schemaTooOld' // the schema is older than this client: upgrade it
  | 'schemaTooNew' // the schema is newer than this client: update the extension
  | 'noPassword' // the role has no user mapping: set its password
  | 'passwordRefused' // the stored or given password was refused
  | 'loopbackMismatch' // bgtask_loopback points at another database: repair it
  | 'notPermitted' // the role lacks a privilege (not a member of bgtask_user…)
  | 'readOnly' // standby or read-only transaction
  | 'badInput' // empty SQL, bad options
  | 'syntax' // the SQL does not parse
  | 'connection' // the client could not reach the server, or lost it
  | 'notFound' // no such task, or not visible to this role
  | 'unknown';

/** A failed task operation: a reason to act on, the server's SQLSTATE and hint when there was one. */
export class TaskError extends Error {
  override readonly name = 'TaskError';
  constructor(
    message: string,
    readonly reason: TaskErrorReason,
    readonly options: { sqlstate?: string; hint?: string; detail?: string; cause?: unknown } = {},
  ) {
    super(message, { cause: options.cause });
  }
  get sqlstate(): string | undefined {
    return this.options.sqlstate;
  }
  get hint(): string | undefined {
    return this.options.hint;
  }
}

/** SQLSTATE classes and codes that mean the connection itself failed (retry or reconnect). */
export const CONNECTION_CODES: ReadonlySet<string> = new Set(['08000', '08001', '08003', '08004', '08006', '57P01', '57P02', '57P03']);

interface PgErrorLike {
  code?: string;
  message?: string;
  hint?: string;
  detail?: string;
}

/** A server error: a five-character SQLSTATE (Node's socket errors have codes too, such as ECONNREFUSED). */
function isPgError(e: unknown): e is PgErrorLike & Error {
  return e instanceof Error && /^[0-9A-Z]{5}$/.test((e as PgErrorLike).code ?? '');
}

/** Turns whatever a query threw into a TaskError with a reason. */
export function toTaskError(e: unknown): TaskError {
  if (e instanceof TaskError) return e;
  if (!isPgError(e)) {
    const message = e instanceof Error ? e.message : String(e);
    const netCodes = ['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'ENOTFOUND', 'EHOSTUNREACH', 'EPIPE'];
    const code = (e as { code?: string } | undefined)?.code;
    const reason: TaskErrorReason = code && netCodes.includes(code) ? 'connection' : /Connection terminated|connection/i.test(message) ? 'connection' : 'unknown';
    return new TaskError(message, reason, { cause: e });
  }
  const code = e.code ?? '';
  const message = e.message ?? String(e);
  const opts = { sqlstate: code, hint: e.hint, detail: e.detail, cause: e };
  return new TaskError(message, reasonFor(code, message), opts);
}

/** The reason for a SQLSTATE (and, where PostgreSQL reuses one code for several things, the message). */
export function reasonFor(code: string, message: string): TaskErrorReason {
  if (code === '28P01' || code === '28000' && /refused/.test(message)) return 'passwordRefused';
  // No mapping of the role's own (none at all, or one for PUBLIC that logs in as someone else): storing the
  // role's password creates it.
  if (code === '28000') return /no password stored|logged in as/.test(message) ? 'noPassword' : 'notPermitted';
  if (code === '55000' && /loopback/.test(message)) return 'loopbackMismatch';
  if (code === '42883' && /dblink/.test(message)) return 'noDblink';
  // A bgtask function this client calls that the database does not have: its schema is older.
  if (code === '42883' && /bgtask\./.test(message)) return 'schemaTooOld';
  if (code === '3F000' && /bgtask/.test(message)) return 'noSchema';
  if (code === '42P01' && /bgtask\./.test(message)) return 'noSchema';
  if (code === '42501') return 'notPermitted';
  if (code === '25006') return 'readOnly';
  if (code === '22023' || code === '22P02') return 'badInput';
  if (code === '42601') return 'syntax';
  if (CONNECTION_CODES.has(code) || code.startsWith('08')) return 'connection';
  return 'unknown';
}
