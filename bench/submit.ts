/**
 * Submit latency and time until the user's SQL executes, against the bare recipe, one submit at a time; and 50
 * submits from 10 clients at once.
 *
 * Each run submits `insert into bench_mark values ('<tag>', clock_timestamp())` as alice (an ordinary role)
 * through a connected pg Client in autocommit:
 *   - bgtask: the extension's own query, `select bgtask.run_task($1::text, $2::text, $3::jsonb)`;
 *   - recipe: `select public.bench_recipe($1, $2)` — dblink_connect(conninfo with alice's password),
 *     dblink_send_query(the same SQL), dblink_disconnect.
 * "Submit" is the client-side time until the query returns. "Until executing" is from the same start (local wall
 * clock, corrected by the measured server clock offset) to the clock_timestamp() the statement itself stored:
 * the moment the worker (or the recipe's backend) is executing the user's SQL. Between runs everything settles
 * (task ended, no supervisor/worker/recipe backend left), so each run starts from the same idle state.
 */
import type { Client } from 'pg';
import { queries } from '../src/core/generated/sql';
import { markSql, type BenchDb } from './db';
import { interleave, median, ratioResult, wallMs, type BenchOptions, type CaseResult } from './lib';

export async function benchSubmit(b: BenchDb, o: BenchOptions): Promise<CaseResult[]> {
  const warmup = o.quick ? 3 : 5;
  const runs = o.quick ? 10 : 30;
  const alice = await b.client('alice');
  const pid = Number((await alice.query('select pg_backend_pid() as p')).rows[0].p);
  const conninfo = b.recipeConninfo('alice');
  const exec: Record<'bgtask' | 'recipe', number[]> = { bgtask: [], recipe: [] };
  const cpu: Record<'bgtask' | 'recipe', number[]> = { bgtask: [], recipe: [] };
  let recording = false;

  const one = async (kind: 'bgtask' | 'recipe'): Promise<number> => {
    const { tag, sql } = markSql(kind);
    const c0 = b.cpuMs([pid]);
    const t0 = wallMs();
    if (kind === 'bgtask') await alice.query(queries.submitText, [sql, null, '{}']);
    else await alice.query('select public.bench_recipe($1, $2)', [sql, conninfo]);
    const submitted = wallMs() - t0;
    const at = await b.markTime(tag);
    if (recording) exec[kind].push(at - t0);
    await b.settle();
    if (recording) cpu[kind].push(b.cpuMs([pid]) - c0);
    return submitted;
  };
  // interleave() records from the first measured run on; mirror that for the execution times.
  let count = 0;
  const wrap = (kind: 'bgtask' | 'recipe') => async () => {
    recording = count++ >= 2 * warmup;
    return one(kind);
  };
  o.log(`submit: ${warmup} warm-up + ${runs} runs each, bgtask and recipe taking turns`);
  const r = await interleave({ bgtask: wrap('bgtask'), recipe: wrap('recipe') }, { warmup, runs });

  // Where the time goes: the task's own timestamps of the latest runs (server clock).
  const [phases] = await b.db.sql<Record<string, number>>(`
    with t as (
      select t.id, t.submitted_at, t.start_time, s.start_time as step_start, s.end_time as step_end, t.end_time
      from bgtask.tbl_task t join bgtask.tbl_task_step s on s.task_id = t.id and s.n = 1
      where t.sql like 'insert into public.bench_mark%' order by t.id desc limit $1)
    select percentile_cont(0.5) within group (order by extract(epoch from start_time - submitted_at) * 1000) as submitted_to_claimed,
           percentile_cont(0.5) within group (order by extract(epoch from step_start - start_time) * 1000) as claimed_to_step_start,
           percentile_cont(0.5) within group (order by extract(epoch from step_end - step_start) * 1000) as step,
           percentile_cont(0.5) within group (order by extract(epoch from end_time - step_end) * 1000) as step_end_to_done
    from t`, [runs]);
  const phaseNote = `bgtask phases (medians, server clock): submitted_at→claimed ${fmtN(phases.submitted_to_claimed)} ms, claimed→step start ${fmtN(phases.claimed_to_step_start)} ms (worker login + setup), step ${fmtN(phases.step)} ms, step end→done ${fmtN(phases.step_end_to_done)} ms`;

  // A mean (the counters tick every 10 ms), without the top tenth: a pooled session of the harness that idles out
  // during a run is charged to that run.
  const trimmed = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b).slice(0, Math.max(1, Math.ceil(xs.length * 0.9))); return s.reduce((a, x) => a + x, 0) / s.length; };
  const cpuNote = `server CPU per task (all backends, submit to settled; trimmed mean): bgtask ${trimmed(cpu.bgtask).toFixed(1)} ms, recipe ${trimmed(cpu.recipe).toFixed(1)} ms`;
  return [
    ratioResult({
      id: 'submit', name: 'submit latency: run_task returns (alice, autocommit)', samples: r.bgtask,
      baselineName: 'recipe connect+send+disconnect', baseline: r.recipe, maxRatio: 1.5, target: '≤ 1.5×',
      notes: [`${runs} runs each after ${warmup} warm-up, alternating; client-side time of the query`],
    }),
    ratioResult({
      id: 'start', name: 'submit → worker executing the SQL', samples: exec.bgtask,
      baselineName: 'recipe backend executing', baseline: exec.recipe, maxRatio: 3, target: '≤ 3×',
      notes: ['from the client\'s submit start to the clock_timestamp() the statement itself inserted', phaseNote, cpuNote],
      extra: { phases },
    }),
  ];
}

const fmtN = (v: unknown) => (v === null || v === undefined ? '?' : Number(v).toFixed(2));

/**
 * 50 submits from 10 clients at once (each client submits 5, one after another), against 50 recipe submits the
 * same way; the figure is the wall time until the last submit returned. alice's running-task limit is raised to
 * 100 for the gated figure, so every submit starts its supervisor at once, as every recipe submit starts its
 * backend; the same burst under the default limit (4: most tasks queue and launch later) is reported beside it.
 */
export async function benchConcurrent(b: BenchDb, o: BenchOptions): Promise<CaseResult[]> {
  const clientsN = 10;
  const perClient = 5;
  const warmup = 1;
  const runs = o.quick ? 3 : 7;
  const clients: Client[] = [];
  for (let i = 0; i < clientsN; i++) clients.push(await b.client('alice'));
  const pids = await Promise.all(clients.map(async (c) => Number((await c.query('select pg_backend_pid() as p')).rows[0].p)));
  const conninfo = b.recipeConninfo('alice');
  const perSubmit: Record<string, number[]> = { bgtask: [], recipe: [], limited: [] };
  const cpuUntilReturned: Record<string, number[]> = { bgtask: [], recipe: [], limited: [] };
  let recording = false;
  let count = 0;

  const burst = (kind: 'bgtask' | 'recipe' | 'limited') => async () => {
    recording = count++ >= 2 * warmup;
    const c0 = b.cpuMs(pids);
    const t0 = performance.now();
    await Promise.all(clients.map(async (c) => {
      for (let k = 0; k < perClient; k++) {
        const { sql } = markSql(`c-${kind}`);
        const s0 = performance.now();
        if (kind === 'recipe') await c.query('select public.bench_recipe($1, $2)', [sql, conninfo]);
        else await c.query(queries.submitText, [sql, null, '{}']);
        if (recording) perSubmit[kind].push(performance.now() - s0);
      }
    }));
    const took = performance.now() - t0;
    await b.settle();
    // Backends that ended count once the burst has settled: CPU of the whole burst, per task.
    if (recording) cpuUntilReturned[kind].push((b.cpuMs(pids) - c0) / (clientsN * perClient));
    return took;
  };

  await b.db.sql(`insert into bgtask.role_settings (role_name, max_running) values ('alice', 100)
                  on conflict (role_name) do update set max_running = excluded.max_running`);
  o.log(`concurrent: ${clientsN} clients × ${perClient} submits, ${warmup} warm-up + ${runs} bursts each`);
  let r: Record<'bgtask' | 'recipe', number[]>;
  try {
    r = await interleave({ bgtask: burst('bgtask'), recipe: burst('recipe') }, { warmup, runs });
  } finally {
    await b.db.sql(`delete from bgtask.role_settings where role_name = 'alice'`);
  }
  count = 0;
  const limited = await interleave({ limited: burst('limited') }, { warmup: 0, runs: Math.min(runs, 3) });
  const note = (k: string) => `per submit median ${median(perSubmit[k]).toFixed(1)} ms, server CPU per task ${median(cpuUntilReturned[k]).toFixed(1)} ms`;
  const profile = await profileBurst(b, clientsN, perClient);
  return [
    ratioResult({
      id: 'concurrent', name: '50 concurrent submits (10 clients), wall time', samples: r.bgtask,
      baselineName: '50 recipe submits', baseline: r.recipe, maxRatio: 2, target: '≤ 2×',
      notes: [
        `alice's running limit raised to 100 so every submit launches its supervisor (as the recipe launches a backend); bgtask ${note('bgtask')}, recipe ${note('recipe')}`,
        `same burst at the default limit of 4 (most tasks queue, no launch at submit): median ${median(limited.limited).toFixed(0)} ms, ${note('limited')}`,
        `the burst is CPU-bound on 2 cores: ${clientsN * perClient} tasks × ${median(cpuUntilReturned.bgtask).toFixed(0)} ms of server CPU ≈ ${(clientsN * perClient * median(cpuUntilReturned.bgtask) / 2).toFixed(0)} ms of both cores, against ${(clientsN * perClient * median(cpuUntilReturned.recipe) / 2).toFixed(0)} ms for the recipe`,
        `where the time goes (one more burst with track_functions = all; per call, wall-clock self time, which includes waiting for a lock or for a CPU): ${profile}`,
      ],
      extra: { limitedDefault: limited.limited, perSubmit, cpuPerTaskMs: cpuUntilReturned },
    }),
  ];
}

/**
 * One more burst with track_functions = all on fresh sessions, for the report: the engine's functions by self time
 * (which includes waiting for locks), per call.
 */
async function profileBurst(b: BenchDb, clientsN: number, perClient: number): Promise<string> {
  await b.db.sql(`alter database ${b.db.database} set track_functions = 'all'`);
  await b.db.sql(`insert into bgtask.role_settings (role_name, max_running) values ('alice', 100)
                  on conflict (role_name) do update set max_running = excluded.max_running`);
  const clients: Client[] = [];
  let waits = '';
  try {
    for (let i = 0; i < clientsN; i++) clients.push(await b.db.client('alice'));
    await b.db.sql('select pg_stat_reset()');
    // Meanwhile, sample what every backend of the database is doing (wait event, or on a CPU / runnable).
    const sampler = await b.db.client('postgres');
    const samples = new Map<string, number>();
    let sampling = true;
    const sampling$ = (async () => {
      while (sampling) {
        const rows = (await sampler.query(`
          select case when application_name like 'bgtask supervisor%' then 'supervisor'
                      when application_name like 'bgtask worker%' then 'worker'
                      when application_name = '' or application_name like 'bench%' then 'submitter'
                      else 'other' end as who,
                 coalesce(wait_event_type || ':' || wait_event, 'running')
                   || coalesce(' (' || (select case l.classid::bigint when 1650947170 then 'role slot lock'
                                                                   when 1650947169 then 'task lock'
                                                                   else 'key ' || l.classid end
                                        from pg_locks l where l.pid = a.pid and not l.granted and l.locktype = 'advisory' limit 1) || ')', '') as what
          from pg_stat_activity a
          where datname = current_database() and backend_type = 'client backend' and pid <> pg_backend_pid()
            and state = 'active'`)).rows;
        for (const r of rows) samples.set(`${r.who} ${r.what}`, (samples.get(`${r.who} ${r.what}`) ?? 0) + 1);
        await new Promise((res) => setTimeout(res, 2));
      }
    })();
    await Promise.all(clients.map(async (c) => {
      for (let k = 0; k < perClient; k++) await c.query(queries.submitText, [markSql('p').sql, null, '{}']);
    }));
    sampling = false;
    await sampling$;
    await sampler.end();
    const total = [...samples.values()].reduce((a, x) => a + x, 0);
    waits = [...samples].sort((x, y) => y[1] - x[1]).slice(0, 6).map(([k, n]) => `${k} ${((100 * n) / total).toFixed(0)} %`).join(', ');
    await b.settle();
  } finally {
    for (const c of clients) await c.end().catch(() => undefined);
    await b.db.sql(`alter database ${b.db.database} reset track_functions`);
    await b.db.sql(`delete from bgtask.role_settings where role_name = 'alice'`);
  }
  // Ended sessions flush their function statistics as they exit.
  let rows: { f: string; calls: string; self: number; total: number }[] = [];
  for (let i = 0; i < 20; i++) {
    await new Promise((r) => setTimeout(r, 100));
    rows = await b.db.sql(`select funcname as f, calls, self_time / calls as self, total_time / calls as total
                           from pg_stat_user_functions where schemaname = 'bgtask' order by self_time desc limit 6`);
    if (rows.some((r) => r.f === '_submit')) break;
  }
  return `${rows.map((r) => `${r.f} ${Number(r.self).toFixed(1)} ms self / ${Number(r.total).toFixed(1)} ms total × ${r.calls}`).join('; ')}. Active backends sampled every ~2 ms until the last submit returned (who, wait event or running): ${waits}`;
}
