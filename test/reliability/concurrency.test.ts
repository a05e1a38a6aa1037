// Issue 4, case 7: many submits at once. 50 submits of `select pg_sleep(0.2)` as alice from 10 clients at the same
// time — 8 plain pg Clients with 5 submits each in flight, and 2 TaskClients (the extension's API, each over its own
// pool of 4 connections) with 5 each — against alice's limit of 4 running tasks (the default).
// The second half of case 7, "kill a supervisor while others are queued: the queue still drains", is in
// test/core/limits.test.ts ('a killed supervisor: … the queue drains'); the smaller 12-task burst there is the
// first regression test of _free_slots.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Client, Pool } from 'pg';
import { TaskClient } from '../../src/core/taskClient';
import { BgtaskDb, startBgtaskDb } from '../harness/bgtaskDb';
import { connect, figure, nothingLeft, since, submitWith, waitUntil } from './helpers';

let db: BgtaskDb;
before(async () => {
  db = await startBgtaskDb();
});
after(async () => db?.close());

const LIMIT = 4;

describe('many at once', () => {
  test('(7) 50 concurrent submits from 10 clients with a limit of 4: none fails, ≤ 4 run, the queued hold no backend, 50/50 done, all released', async () => {
    assert.equal(Number((await db.sql(`select bgtask._max_running('alice') as m`))[0].m), LIMIT, 'alice runs under the default limit');
    const since0 = Number((await db.sql('select coalesce(max(id), 0) as m from bgtask.tbl_task'))[0].m);
    const logBefore = (await db.server.readLog()).length;

    // ---- the sampler, every ~20 ms: the backends, then the rows in a later snapshot ----
    // In this order a backend's task is seen in the state it had when, or after, the backend was seen: a worker
    // logs in only after its task's claim committed, so a worker next to a queued row is a real fault. (Rows read
    // first, in the same statement, could be older than the backend list on a loaded machine: a worker that had
    // just logged in showed next to its task's row from before the claim.)
    const sampler = await connect(db, 'postgres');
    let sampling = true;
    const seen = { samples: 0, maxRunning: 0, maxQueued: 0, maxBackends: 0, maxWorking: 0, maxExcess: -Infinity, maxLaunching: 0, maxLeaving: 0,
                   queuedWithWorker: [] as string[], duplicates: [] as string[], worst: '', fullest: '' };
    const sample = (async () => {
      while (sampling) {
        const { rows: [{ apps }] } = await sampler.query(
          `select coalesce(array_agg(application_name), '{}') as apps from pg_stat_activity where application_name like 'bgtask %'`);
        const { rows: [r] } = await sampler.query(`
          with t as (select id, state from bgtask.tbl_task where owner = 'alice' and id > $1),
               b as (select a.application_name as app, t.state,
                            substring(a.application_name from '^bgtask (supervisor|worker) ') as kind
                     from unnest($2::text[]) as a(application_name)
                     left join t on t.id = substring(a.application_name from '^bgtask \\w+ (\\d+)')::bigint)
          select (select count(*) from t where state = 'running')::int as running,
                 (select count(*) from t where state = 'queued')::int as queued,
                 (select count(*) from b)::int as backends,
                 (select count(*) from b where coalesce(state in ('running', 'queued'), true))::int as working,
                 array(select app || ' [' || coalesce(state, '?') || ']' from b order by app) as list,
                 array(select app from b where state = 'queued' and kind = 'worker') as queued_workers,
                 array(select app from b where state = 'queued' and kind = 'supervisor' and app ~ '^bgtask supervisor \\d+$') as launching,
                 (select count(*) from b where state is distinct from 'running' and state is distinct from 'queued' or app ~ 'leaving$')::int as leaving`, [since0, apps]);
        seen.samples++;
        seen.maxRunning = Math.max(seen.maxRunning, r.running);
        seen.maxQueued = Math.max(seen.maxQueued, r.queued);
        seen.maxBackends = Math.max(seen.maxBackends, r.backends);
        if (r.working > seen.maxWorking) {
          seen.maxWorking = r.working;
          seen.fullest = `${r.running} running, ${r.queued} queued: ${r.list.join(', ')}`;
        }
        seen.maxLaunching = Math.max(seen.maxLaunching, r.launching.length);
        seen.maxLeaving = Math.max(seen.maxLeaving, r.leaving);
        seen.queuedWithWorker.push(...r.queued_workers);
        seen.duplicates.push(...r.launching.filter((a: string, i: number) => r.launching.indexOf(a) !== i));
        if (r.backends - 2 * r.running > seen.maxExcess) {
          seen.maxExcess = r.backends - 2 * r.running;
          seen.worst = `${r.running} running, ${r.queued} queued: ${r.list.join(', ')}`;
        }
        await new Promise((res) => setTimeout(res, 20));
      }
    })();

    const clients: Client[] = [];
    const pools: Pool[] = [];
    const started = Date.now();
    try {
      for (let i = 0; i < 8; i++) clients.push(await connect(db, 'alice'));
      for (let i = 0; i < 2; i++) {
        const p = new Pool({ ...db.server.connectionConfig('alice', db.password('alice'), db.database), max: 4 });
        p.on('error', () => undefined);
        pools.push(p);
      }
      const taskClients = pools.map((p) => new TaskClient(p));
      const failures: string[] = [];
      const submitted = Date.now();
      // Every submit is issued at once: 5 queued on each plain client (pg sends them one after another on its
      // connection), 5 at a time through each TaskClient's pool.
      const attempts = [
        ...clients.flatMap((c, ci) => [0, 1, 2, 3, 4].map((k) => submitWith(c, 'select pg_sleep(0.2)', { info: `client ${ci} #${k}` }))),
        ...taskClients.flatMap((tc, ti) => [0, 1, 2, 3, 4].map((k) => tc.submit('select pg_sleep(0.2)', { info: `taskClient ${ti} #${k}` }))),
      ];
      const results = await Promise.allSettled(attempts);
      const submitMs = Date.now() - submitted;
      for (const r of results) if (r.status === 'rejected') failures.push(String((r.reason as Error)?.message ?? r.reason));
      assert.deepEqual(failures, [], 'every submit succeeds');
      const ids = results.map((r) => (r as PromiseFulfilledResult<number>).value);
      assert.equal(new Set(ids).size, 50);

      const ended = [];
      for (const id of ids) ended.push(await db.waitFor(id, { timeoutMs: 60_000 }));
      const notDone = ended.filter((t) => t.state !== 'done').map((t) => `#${t.id} ${t.state} ${JSON.stringify(t.error)} ${t.exitReason}`);
      assert.deepEqual(notDone, [], 'all 50 end done');
      await nothingLeft(db);
      const elapsed = Date.now() - started;
      sampling = false;
      await sample;

      // Released: no dblink connection left in any submitting session, and the engine holds no backend.
      for (const c of clients) assert.equal((await c.query('select dblink_get_connections() as c')).rows[0].c, null);
      // Never "another command is already in progress" (nor any other error) — in a task or in the server log.
      const log = (await db.server.readLog()).slice(logBefore);
      assert.doesNotMatch(log, /another command is already in progress/);
      assert.equal((await db.sql(`select count(*)::int as n from bgtask.tbl_task where id > $1 and error is not null`, [since0]))[0].n, 0);
      // At most 4 at a time, by the rows and by the run intervals (no instant with 5 tasks between start and end).
      const spans = ended.map((t) => [t.startTime!.getTime(), t.endTime!.getTime()]);
      const overlap = Math.max(...spans.map(([s]) => spans.filter(([a, b]) => a <= s && s < b).length));

      figure(`50 concurrent submits from 10 clients (8 pg Clients × 5, 2 TaskClients × 5), limit 4: 0 failed, 50/50 done, ` +
             `max running ${seen.maxRunning} (by run intervals ${overlap}), max queued ${seen.maxQueued}, ` +
             `queued tasks with a worker ${seen.queuedWithWorker.length}, max supervisors launching for queued tasks ${seen.maxLaunching}, ` +
             `max bgtask backends ${seen.maxBackends} (for running or waiting tasks ${seen.maxWorking}), max backends beyond 2 × running ${seen.maxExcess} ` +
             `(max ending/leaving supervisors ${seen.maxLeaving}); submits ${submitMs} ms, all ${elapsed} ms, ${seen.samples} samples`);
      console.log(`worst sample: ${seen.worst}`);
      console.log(`fullest sample: ${seen.fullest}`);

      assert.ok(seen.samples >= 20, `only ${seen.samples} samples`);
      assert.ok(seen.maxRunning <= LIMIT, `${seen.maxRunning} of alice's tasks ran at once`);
      assert.ok(overlap <= LIMIT, `${overlap} run intervals overlap`);
      assert.ok(seen.maxRunning >= LIMIT - 1, `the limit was never approached (max ${seen.maxRunning})`);
      assert.ok(seen.maxQueued >= 20, `only ${seen.maxQueued} waited at once: the burst did not test the queue`);
      assert.deepEqual(seen.queuedWithWorker, [], 'a queued task never has a worker');
      assert.deepEqual(seen.duplicates, [], 'never two supervisors for one queued task');
      assert.ok(seen.maxLaunching <= LIMIT, `${seen.maxLaunching} supervisors on their way for queued tasks; at most one per slot`);
      // The slack beyond two backends per running task is the hand-over: supervisors launched for a free slot (at
      // most one per slot) and supervisors that have just recorded their outcome and are starting the next task
      // (at most one per slot). Documented bound: backends ≤ 2 × running + 2 × limit, and the backends of running
      // and waiting tasks never more than a full set of running tasks holds, 2 × limit. A supervisor whose task
      // has ended is not among them: it has given up its slot and exits once it has launched the next supervisor,
      // which can claim the slot and log its worker in before the old process is gone from pg_stat_activity.
      // (Before _free_slots counted uncommitted submits' supervisors this burst made 22 backends, 17 beyond
      // 2 × running; when it missed a submit that named its supervisor and committed between two of its reads,
      // a fifth supervisor came for the 4 slots: 9.)
      assert.ok(seen.maxExcess <= 2 * LIMIT, `${seen.maxExcess} bgtask backends beyond 2 × running: ${seen.worst}`);
      assert.ok(seen.maxWorking <= 2 * LIMIT, `${seen.maxWorking} bgtask backends of running or waiting tasks for a limit of ${LIMIT}: ${seen.fullest}`);
      assert.ok(elapsed >= (50 / LIMIT) * 200, `50 tasks of 0.2 s, 4 at a time, cannot end in ${elapsed} ms`);
      console.log(`case time ${since(started)}`);
    } finally {
      sampling = false;
      await sample.catch(() => undefined);
      await sampler.end();
      for (const c of clients) await c.end().catch(() => undefined);
      for (const p of pools) await p.end().catch(() => undefined);
    }
    // The submitting sessions themselves are gone once closed: alice holds no session at all.
    await waitUntil('alice\'s sessions to end', async () =>
      (await db.sql(`select count(*)::int as n from pg_stat_activity where usename = 'alice'`))[0].n === 0, 10_000);
  });
});
