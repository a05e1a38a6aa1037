import type { Pool, PoolClient, QueryResultRow } from 'pg';
import { escapeIdentifier } from 'pg';
import { to as copyTo } from 'pg-copy-streams';
import { Transform, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { StringDecoder } from 'node:string_decoder';
import { queries } from './generated/sql';
import { TaskError, toTaskError } from './errors';
import { Logger, silentLogger } from './logger';
import type { ResultColumn, ResultPage, StepDetail, TaskDetail, TaskOptions, TaskState, TaskSummary } from './models';

/** Values exactly as PostgreSQL prints them: the grid and exports show what psql would. */
const rawText = { getTypeParser: () => (value: string) => value };

const num = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v));

/**
 * The task API over a pool of connections to one database: submit, list, inspect, cancel, read and export
 * results, purge. Every call is one or a few bound-parameter queries from sql/queries; errors come out as
 * TaskError with a reason the UI can act on.
 */
export class TaskClient {
  constructor(
    private readonly pool: Pool,
    private readonly log: Logger = silentLogger,
  ) {}

  /** Submits SQL as one step (the text as it is) or a list of statements (one autocommit step each). */
  async submit(sql: string | string[], opts: { info?: string | null; options?: TaskOptions } = {}): Promise<number> {
    if (typeof sql === 'string' ? sql.trim() === '' : sql.length === 0) {
      throw new TaskError('There is no SQL to run: the selection is empty.', 'badInput');
    }
    const query = typeof sql === 'string' ? queries.submitText : queries.submitSteps;
    const row = await this.one(query, [sql, opts.info ?? null, JSON.stringify(opts.options ?? {})]);
    const id = Number(row.id);
    this.log.info(`task #${id} submitted (${typeof sql === 'string' ? 1 : sql.length} step(s))`);
    return id;
  }

  /** A page of tasks, newest first; pass the last id of the previous page as beforeId. */
  async list(opts: { beforeId?: number; pageSize?: number; states?: TaskState[] } = {}): Promise<TaskSummary[]> {
    const res = await this.query(queries.listTasks, [opts.beforeId ?? null, opts.pageSize ?? 100, opts.states ?? null]);
    return res.rows.map((r) => ({
      id: Number(r.id),
      owner: r.owner,
      state: r.state,
      info: r.info,
      sql: r.sql,
      submittedAt: r.submitted_at,
      startTime: r.start_time,
      endTime: r.end_time,
      stepCount: r.step_count,
      stepCurrent: r.step_current,
      rowsAffected: num(r.rows_affected),
      error: r.error,
      exitReason: r.exit_reason,
      cancelRequested: r.cancel_requested,
      waitEventType: r.wait_event_type,
      waitEvent: r.wait_event,
      workerState: r.worker_state,
      blockedBy: r.blocked_by,
      progress: r.progress,
    }));
  }

  /** One task with its steps, or undefined when it does not exist or belongs to another role. */
  async get(id: number): Promise<TaskDetail | undefined> {
    const t = (await this.query(queries.getTask, [id])).rows[0];
    if (!t) return undefined;
    const steps = (await this.query(queries.getTaskSteps, [id])).rows.map(
      (s): StepDetail => ({
        n: s.n,
        sql: s.sql,
        returnsRows: s.returns_rows,
        state: s.state,
        startTime: s.start_time,
        endTime: s.end_time,
        commandTag: s.command_tag,
        rowsAffected: num(s.rows_affected),
        error: s.error,
        capture: s.capture,
        resultTable: s.result_table,
        resultRows: num(s.result_rows),
        resultStored: num(s.result_stored),
      }),
    );
    return {
      id: Number(t.id),
      owner: t.owner,
      loginRole: t.login_role,
      state: t.state,
      info: t.info,
      sql: t.sql,
      clientInfo: t.client_info,
      options: t.options,
      submittedAt: t.submitted_at,
      startTime: t.start_time,
      endTime: t.end_time,
      stepCount: t.step_count,
      stepCurrent: t.step_current,
      error: t.error,
      rowsAffected: num(t.rows_affected),
      cancelRequested: t.cancel_requested,
      exitReason: t.exit_reason,
      steps,
    };
  }

  /** Asks a task to stop; false when it is not visible to this role or has already ended. */
  async cancel(id: number): Promise<boolean> {
    return (await this.one(queries.cancelTask, [id])).cancelled === true;
  }

  /** Records lost tasks (supervisor gone) and starts queued ones that have a slot; returns how many were lost. */
  async reap(): Promise<number> {
    return Number((await this.one(queries.reap, [])).lost);
  }

  /** Deletes ended tasks older than the interval (server default: the retention setting), in batches. */
  async purge(olderThan: string | null = null, batch = 1000): Promise<number> {
    let total = 0;
    for (;;) {
      const n = Number((await this.one(queries.purge, [olderThan, batch])).purged);
      total += n;
      if (n < batch) return total;
    }
  }

  /** Stores the session role's password in its loopback user mapping (sent as a bind parameter only). */
  async setPassword(password: string): Promise<string> {
    return (await this.one(queries.setPassword, [password])).message;
  }

  /** Whether the session role has a user mapping on bgtask_loopback (it may still be wrong). */
  async hasPassword(): Promise<boolean> {
    return (await this.one(queries.hasPassword, [])).has_password === true;
  }

  /** The verified result table of a step and its columns (without _row), or undefined when it has none. */
  async resultColumns(taskId: number, n: number): Promise<{ table: string; columns: ResultColumn[] } | undefined> {
    const found = await this.one(queries.resultTable, [taskId, n]);
    const table: string | null = found.result_table;
    if (!table) return undefined;
    if (found.row_security) {
      throw new TaskError(`The result table of task #${taskId} step ${n} has row-level security turned on, so it is not read: a policy's functions would run in this session.`, 'notPermitted',
        { hint: `Someone who can act as the task's owner changed ${table}; its owner may turn it off (ALTER TABLE … DISABLE ROW LEVEL SECURITY, NO FORCE ROW LEVEL SECURITY).` });
    }
    const columns = (await this.query(queries.resultColumns, [table])).rows
      .filter((c) => c.name !== '_row')
      .map((c) => ({ name: c.name as string, type: c.type as string }));
    return { table, columns };
  }

  /** Rows afterRow+1 … afterRow+limit of a step's result, read by a range of _row (keyset, never OFFSET). */
  async readResultPage(taskId: number, n: number, afterRow: number, limit: number): Promise<ResultPage> {
    const result = await this.resultColumns(taskId, n);
    if (!result) throw new TaskError(`Task #${taskId} step ${n} has no collected rows.`, 'notFound');
    const text = this.template(queries.resultPage, result.table, result.columns, ', ');
    // One query at a time through the pool: holding a client while asking the pool for another deadlocks a
    // pool of one.
    let res;
    try {
      res = await this.pool.query({ text, values: [afterRow, limit], rowMode: 'array', types: rawText });
    } catch (e) {
      throw toTaskError(e);
    }
    const detail = await this.query(queries.getTaskSteps, [taskId]);
    const stored = Number(detail.rows.find((s) => s.n === n)?.result_stored ?? res.rowCount ?? 0);
    return { columns: result.columns, firstRow: afterRow + 1, rows: res.rows.map((r: unknown[]) => r.slice(1) as (string | null)[]), totalStored: stored };
  }

  /**
   * Streams a step's result to `out` as CSV (with a header) or a JSON array, straight from COPY … TO STDOUT: no
   * row is held in memory. Returns the number of rows written. `out` is ended (or destroyed on failure).
   */
  async exportResult(taskId: number, n: number, format: 'csv' | 'json', out: Writable): Promise<number> {
    const result = await this.resultColumns(taskId, n);
    if (!result) throw new TaskError(`Task #${taskId} step ${n} has no collected rows.`, 'notFound');
    const text = this.template(format === 'csv' ? queries.exportCsv : queries.exportJson, result.table, result.columns, '');
    const client = await this.pool.connect();
    let failed: Error | undefined;
    try {
      const source = client.query(copyTo(text));
      if (format === 'csv') {
        await pipeline(source, out);
      } else {
        await pipeline(source, jsonArray(), out);
      }
      return Number(source.rowCount ?? 0);
    } catch (e) {
      failed = e instanceof Error ? e : new Error(String(e));
      throw toTaskError(e);
    } finally {
      // A COPY cut short (the file could not be written) leaves the connection mid-protocol, with pg's reader
      // detached by pg-copy-streams: the next query on it would hang forever. Discard it instead of pooling it.
      client.release(failed);
    }
  }

  private template(text: string, table: string, columns: ResultColumn[], lead: string): string {
    const list = columns.map((c) => escapeIdentifier(c.name)).join(', ');
    // The table comes from bgtask.result_table() as a regclass already quoted where needed. One pass with a
    // function: a column named "%TABLE%" must not be substituted again, and "$&" or "$$" in a name are not
    // replacement patterns.
    return text
      .replace(/^--.*\n/gm, '')
      .replace(/%COLUMNS%|%TABLE%/g, (m) => (m === '%TABLE%' ? table : list === '' ? '' : lead + list));
  }

  private async query(text: string, values: unknown[]) {
    try {
      return await this.pool.query(text, values);
    } catch (e) {
      throw toTaskError(e);
    }
  }

  private async one(text: string, values: unknown[]): Promise<QueryResultRow> {
    const res = await this.query(text, values);
    if (res.rows.length !== 1) throw new TaskError(`expected one row, got ${res.rows.length}`, 'unknown');
    return res.rows[0];
  }
}

/** Turns JSON Lines into one JSON array, splitting lines across chunks. */
function jsonArray(): Transform {
  // COPY data arrives in socket-sized pieces that can cut a multi-byte character in two: decode with a
  // StringDecoder, which keeps the partial bytes for the next chunk.
  const decoder = new StringDecoder('utf8');
  let pending = '';
  let first = true;
  const emit = (line: string, push: (s: string) => void) => {
    if (line === '') return;
    push((first ? '[\n' : ',\n') + line);
    first = false;
  };
  return new Transform({
    transform(chunk: Buffer, _enc, done) {
      const lines = (pending + decoder.write(chunk)).split('\n');
      pending = lines.pop() ?? '';
      for (const l of lines) emit(l, (s) => this.push(s));
      done();
    },
    flush(done) {
      emit(pending + decoder.end(), (s) => this.push(s));
      this.push(first ? '[]\n' : '\n]\n');
      done();
    },
  });
}

export type { PoolClient };
