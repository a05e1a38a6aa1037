/**
 * The bench's PostgreSQL: the test harness's throwaway cluster (test/harness/bgtaskDb.ts: scram on 127.0.0.1,
 * roles alice/bob ordinary, carol admin, the schema installed from sql/), plus what the baselines need:
 *   - public.bench_recipe(sql, conninfo): the recipe (DESIGN.md §1) — dblink_connect with a password conninfo,
 *     dblink_send_query, dblink_disconnect — as an ordinary role would write it;
 *   - public.bench_mark(tag, t): a statement inserts clock_timestamp() here to say "I am executing now".
 * The server runs with fsync on (the harness turns it off for tests): the engine commits between its steps, and
 * those commits cost what they cost on a real server.
 */
import * as fs from 'node:fs';
import { Client } from 'pg';
import { startBgtaskDb, type BgtaskDb, type Role } from '../test/harness/bgtaskDb';
import { sleep, wallMs, median } from './lib';

export const BENCH_PG_SETTINGS: Record<string, string> = {
  fsync: 'on',
  synchronous_commit: 'on',
  shared_buffers: '256MB',
  max_connections: '200',
  // Quieter log: a bench makes thousands of connections.
  log_min_messages: 'warning',
};

export interface BenchDb {
  db: BgtaskDb;
  /** `SELECT version()`. */
  version: string;
  /** server clock − local clock in ms (same host: ~0; measured so that cross-clock intervals are honest). */
  clockOffsetMs: number;
  /** A connected client for a role (ended by close()). */
  client(role: Role): Promise<Client>;
  /** The recipe's conninfo for a role: its own password in the text, as the recipe does. */
  recipeConninfo(role: Role): string;
  /** Waits until no task runs and no supervisor, worker or recipe backend is left. */
  settle(timeoutMs?: number): Promise<void>;
  /**
   * CPU time (user + system, ms) spent so far by the server: every backend that has exited (the postmaster's
   * reaped-children counters) plus the live backends `pids`. Differences of two readings count only PostgreSQL,
   * not the bench nor other processes on the machine (10 ms resolution).
   */
  cpuMs(pids: number[]): number;
  /** Polls bench_mark for a tag; returns its time as local wall-clock ms. */
  markTime(tag: string, timeoutMs?: number): Promise<number>;
  close(): Promise<void>;
}

export async function startBenchDb(log: (s: string) => void): Promise<BenchDb> {
  const t0 = performance.now();
  const db = await startBgtaskDb({ settings: BENCH_PG_SETTINGS });
  const clients: Client[] = [];
  try {
    await db.sql(`
      create table if not exists public.bench_mark (tag text primary key, t timestamptz not null);
      grant select, insert, delete on public.bench_mark to alice, bob, carol;
      create or replace function public.bench_recipe(p_sql text, p_conninfo text) returns void
      language plpgsql as $$
      declare
        v_link text := 'bench_recipe_' || pg_backend_pid();
      begin
        perform public.dblink_connect(v_link, p_conninfo);
        perform public.dblink_send_query(v_link, p_sql);
        perform public.dblink_disconnect(v_link);
      end
      $$;
      grant execute on function public.bench_recipe(text, text) to alice, bob, carol;`);
    const version = (await db.sql<{ v: string }>('select version() as v'))[0].v;
    const offsets: number[] = [];
    const c = await db.client('postgres');
    for (let i = 0; i < 21; i++) {
      const a = wallMs();
      const r = await c.query<{ t: number }>('select extract(epoch from clock_timestamp())::float8 * 1000 as t');
      const b = wallMs();
      offsets.push(Number(r.rows[0].t) - (a + b) / 2);
    }
    await c.end();
    const clockOffsetMs = median(offsets);
    // One long-lived superuser session for the bench's own polling (settle, marks): a pooled session that idles
    // out would end mid-case, and the postmaster's counters would then charge its CPU to whatever is measured.
    const monitor = await db.client('postgres');
    clients.push(monitor);
    const msql = async <T,>(text: string, values?: unknown[]) => (await monitor.query(text, values as any[])).rows as T[];
    log(`PostgreSQL up in ${((performance.now() - t0) / 1000).toFixed(1)} s: ${version.split(',')[0]}, port ${db.server.port}, clock offset ${clockOffsetMs.toFixed(3)} ms`);

    const bench: BenchDb = {
      db,
      version,
      clockOffsetMs,
      async client(role) {
        const cl = await db.client(role);
        clients.push(cl);
        return cl;
      },
      recipeConninfo(role) {
        const q = (s: string) => `'${s.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
        return `hostaddr=127.0.0.1 port=${db.server.port} dbname=${q(db.database)} user=${q(role)} password=${q(db.password(role))} application_name=bench_recipe`;
      },
      async settle(timeoutMs = 120_000) {
        const deadline = Date.now() + timeoutMs;
        for (;;) {
          const [r] = await msql<{ tasks: string; backends: string }>(`
            select (select count(*) from bgtask.tbl_task where state in ('queued', 'running')) as tasks,
                   (select count(*) from pg_stat_activity
                     where pid <> pg_backend_pid()
                       and (application_name like 'bgtask %' or application_name = 'bench_recipe'
                            or query like 'CALL bgtask.supervise%')) as backends`);
          if (Number(r.tasks) === 0 && Number(r.backends) === 0) return;
          if (Date.now() > deadline) throw new Error(`not settled after ${timeoutMs} ms: ${r.tasks} tasks active, ${r.backends} backends`);
          await sleep(5);
        }
      },
      cpuMs(pids) {
        const tick = 1000 / 100; // USER_HZ
        const fields = (pid: number) => {
          try {
            const st = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
            return st.slice(st.lastIndexOf(')') + 2).split(' ').map(Number); // fields from 3 (state) on
          } catch {
            return undefined;
          }
        };
        const pm = fields(db.server.pid ?? 0);
        // utime 14, stime 15, cutime 16, cstime 17 (1-based) → indexes 11..14 after the state field (3).
        let ticks = pm ? pm[13] + pm[14] : 0;
        for (const pid of pids) { const f = fields(pid); if (f) ticks += f[11] + f[12]; }
        return ticks * tick;
      },
      async markTime(tag, timeoutMs = 60_000) {
        const deadline = Date.now() + timeoutMs;
        for (;;) {
          const r = await msql<{ t: number }>('select extract(epoch from t)::float8 * 1000 as t from public.bench_mark where tag = $1', [tag]);
          if (r.length) return Number(r[0].t) - clockOffsetMs;
          if (Date.now() > deadline) throw new Error(`no mark ${tag} after ${timeoutMs} ms`);
          await sleep(2);
        }
      },
      async close() {
        for (const cl of clients) await cl.end().catch(() => undefined);
        await db.close();
      },
    };
    return bench;
  } catch (e) {
    await db.close();
    throw e;
  }
}

let tagSeq = 0;
/** A unique tag and the statement that records when it runs. */
export function markSql(prefix: string): { tag: string; sql: string } {
  const tag = `${prefix}-${process.pid}-${++tagSeq}`;
  return { tag, sql: `insert into public.bench_mark (tag, t) values ('${tag}', clock_timestamp())` };
}
