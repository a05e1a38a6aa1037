// Limits and failures of the engine (sql/000001_init.sql) on a real server: the per-role limit queues the excess
// without holding backends; a killed supervisor, a killed worker and a server restart each end with the outcome
// recorded and nothing left `running`; a queued task cancelled never runs; role-level and server-wide timeouts
// do not kill the engine's own backends, while a task's own statement_timeout still applies (DESIGN.md §3, §8).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Client } from 'pg';
import { BgtaskDb, Role, startBgtaskDb } from '../harness/bgtaskDb';
import { waitUntil } from '../harness/wait';

let db: BgtaskDb;
before(async () => {
  db = await startBgtaskDb();
  // Role-level idle_session_timeout and the server restart end pooled sessions: an unheard pool 'error' event
  // would end the test process.
  for (const r of ['postgres', 'alice', 'bob', 'carol'] as const) db.pool(r).on('error', () => undefined);
  await db.sql(`create table canary (v int); grant insert on canary to alice, bob;
                create table locked (v int); insert into locked values (1); grant select on locked to alice`);
});
after(async () => db?.close());

// ---- helpers ----
async function connect(role: Role): Promise<Client> {
  const c = await db.client(role);
  c.on('error', () => undefined); // sessions that the server ends on purpose (timeouts, terminate, restart)
  return c;
}

type Queryable = { query(text: string, values?: unknown[]): Promise<{ rows: any[] }> };
const submitWith = async (c: Queryable, sql: string | string[], options: object = {}) =>
  Number((await c.query(`select bgtask.run_task($1::${Array.isArray(sql) ? 'text[]' : 'text'}, null, $2::jsonb) as id`, [sql, JSON.stringify(options)])).rows[0].id);
const submitAs = (role: Role, sql: string | string[], options: object = {}) => submitWith(db.pool(role), sql, options);

const bgtaskBackends = async () => (await db.sql(`select count(*)::int as n from pg_stat_activity where application_name like 'bgtask %'`))[0].n as number;
const noBgtaskBackends = () => waitUntil('every bgtask backend to go away', async () => (await bgtaskBackends()) === 0);
const backendOf = async (kind: 'supervisor' | 'worker', id: number) =>
  (await db.sql(`select pid, wait_event from pg_stat_activity where application_name = $1`, [`bgtask ${kind} ${id}`]))[0] as { pid: number; wait_event: string | null } | undefined;
const workerSleeping = (id: number) => waitUntil(`worker of task #${id} in pg_sleep`, async () => {
  const w = await backendOf('worker', id);
  return w?.wait_event === 'PgSleep' ? w.pid : undefined;
});
const lastId = async () => Number((await db.sql('select coalesce(max(id), 0) as m from bgtask.tbl_task'))[0].m);

describe('the per-role limit', () => {
  test('12 tasks from 4 connections: at most 4 run at once, the queued hold no backend, all end done', async () => {
    const since = await lastId();
    const sampler = await db.client('postgres');
    let sampling = true;
    let maxRunning = 0;
    // Backends beyond two per running task are of two kinds: supervisors of queued tasks on their way to a free
    // slot (launched at submit, or by an ending supervisor), and supervisors of ended tasks that start the next
    // ones. A queued task must hold a backend only for a slot that is free: running + launching ≤ the limit (plus
    // the submits that raced each other's count), and never two supervisors for one task. Before the fixes in
    // _free_slots a burst made a supervisor for every queued task, and duplicates (8–10 extra backends).
    let maxExcess = -Infinity;
    let maxClaiming = 0;
    let duplicates: string[] = [];
    let worst = '';
    let samples = 0;
    const sample = (async () => {
      while (sampling) {
        // One statement, one snapshot: a task that claims its slot between two reads would count twice.
        const { rows: all } = await sampler.query(`
          select a.application_name as app, t.state,
                 (select count(*) from bgtask.tbl_task x where x.owner = 'alice' and x.id > $1 and x.state = 'running')::int as running
          from (select 1) one
          left join pg_stat_activity a on a.application_name like 'bgtask %'
          left join bgtask.tbl_task t on a.application_name ~ '^bgtask (supervisor|worker) \\d+$' and t.id = substring(a.application_name from '\\d+$')::bigint`, [since]);
        const r = { running: all[0].running as number };
        const rows = all.filter((b) => b.app !== null);
        const launching = rows.filter((b) => b.state === 'queued' && b.app.startsWith('bgtask supervisor ')).map((b) => b.app);
        duplicates.push(...launching.filter((a, i) => launching.indexOf(a) !== i));
        maxRunning = Math.max(maxRunning, r.running);
        maxClaiming = Math.max(maxClaiming, r.running + launching.length);
        if (rows.length - 2 * r.running > maxExcess) {
          maxExcess = rows.length - 2 * r.running;
          worst = `${r.running} running; ` + rows.map((b) => `${b.app} [${b.state}]`).sort().join(', ');
        }
        samples++;
      }
    })();
    const submitters = await Promise.all([1, 2, 3, 4].map(() => connect('alice')));
    let ids: number[] = [];
    try {
      const started = Date.now();
      ids = (await Promise.all(submitters.map(async (c) => {
        const mine: number[] = [];
        for (let i = 0; i < 3; i++) mine.push(await submitWith(c, 'select pg_sleep(0.3)'));
        return mine;
      }))).flat();
      assert.equal(ids.length, 12);
      for (const id of ids) {
        const t = await db.waitFor(id);
        assert.equal(t.state, 'done', `task #${id}: ${JSON.stringify(t.error)} ${t.exitReason}`);
      }
      await noBgtaskBackends();
      const elapsed = Date.now() - started;
      sampling = false;
      await sample;
      console.log(`12 × pg_sleep(0.3) with limit 4: ${elapsed} ms, ${samples} samples, max running ${maxRunning}, ` +
                  `max running + launching ${maxClaiming}, max backends beyond 2 per running task ${maxExcess}: ${worst}`);
      assert.ok(samples >= 20, `only ${samples} samples`);
      assert.ok(maxRunning <= 4, `${maxRunning} of alice's tasks ran at once`);
      assert.ok(maxRunning >= 3, `the limit was never approached (max ${maxRunning}): the test did not test it`);
      assert.deepEqual(duplicates, [], 'two supervisors for one queued task');
      assert.ok(maxClaiming <= 4 + 3, `${maxClaiming} tasks running or with a supervisor on its way, for a limit of 4`);
      assert.ok(maxExcess <= 2 * 4, `${maxExcess} bgtask backends beyond two per running task: ${worst}`);
      assert.ok(elapsed >= 900, `12 tasks of 0.3 s, 4 at a time, cannot end in ${elapsed} ms`);
    } finally {
      sampling = false;
      await sample.catch(() => undefined);
      await sampler.end();
      for (const c of submitters) await c.end();
    }
  });

  test('with bgtask.role_settings at 1, bob\'s tasks run one at a time; queued tasks hold no backend', async () => {
    await db.sql(`insert into bgtask.role_settings values ('bob', 1)`);
    try {
      const first = await submitAs('bob', 'select pg_sleep(1)');
      await workerSleeping(first);
      const queued = [await submitAs('bob', 'select pg_sleep(0.2)'), await submitAs('bob', 'select pg_sleep(0.2)'), await submitAs('bob', 'select pg_sleep(0.2)')];
      // The queued hold no backend: only the first task's supervisor and worker are there.
      await waitUntil('only the running task\'s two backends', async () => (await bgtaskBackends()) === 2, 5_000);
      const states = await db.sql(`select id, state from bgtask.tbl_task where id = any($1) order by id`, [queued]);
      assert.deepEqual(states.map((r) => r.state), ['queued', 'queued', 'queued']);
      for (const id of queued) {
        assert.equal(await backendOf('supervisor', id), undefined);
        assert.equal(await backendOf('worker', id), undefined);
      }
      const all = [first, ...queued];
      const ended = [];
      for (const id of all) ended.push(await db.waitFor(id));
      for (const t of ended) assert.equal(t.state, 'done', JSON.stringify(t.error));
      // One at a time: no two run intervals overlap.
      const spans = ended.map((t) => [t.startTime!.getTime(), t.endTime!.getTime()]).sort((a, b) => a[0] - b[0]);
      for (let i = 1; i < spans.length; i++) assert.ok(spans[i][0] >= spans[i - 1][1], `bob's tasks overlapped: ${JSON.stringify(spans)}`);
      await noBgtaskBackends();
    } finally {
      await db.sql(`delete from bgtask.role_settings where role_name = 'bob'`);
    }
  });

  test('a role whose name needs quoting counts its own supervisor on its way (limit 1: a second submit waits)', async () => {
    // _free_slots tells the role's backends by its oid; to_regrole() would have folded the name to "zoë ops".
    const role = 'Zoë Ops';
    const pw = 'Zo-' + Math.random().toString(36).slice(2);
    await db.server.createRole(role, pw);
    await db.sql(`grant bgtask_user to "Zoë Ops"; insert into bgtask.role_settings values ('Zoë Ops', 1)`);
    const c = new Client(db.server.connectionConfig(role, pw, db.database));
    await c.connect();
    try {
      await c.query('select bgtask.set_password($1)', [pw]);
      await c.query('begin');
      const first = Number((await c.query(`select bgtask.run_task('select pg_sleep(0.2)') as id`)).rows[0].id);
      // Uncommitted, its supervisor launched and named: the one slot is taken.
      assert.equal((await c.query('select (bgtask._free_slots(current_user)).free as f')).rows[0].f, 0);
      const second = Number((await c.query(`select bgtask.run_task('select pg_sleep(0.2)') as id`)).rows[0].id);
      await c.query('commit');
      assert.equal(await backendOf('supervisor', second), undefined, 'no supervisor launched for the task that must wait');
      const ended = [await db.waitFor(first), await db.waitFor(second)];
      assert.deepEqual(ended.map((t) => t.state), ['done', 'done']);
      assert.ok(ended[1].startTime!.getTime() >= ended[0].endTime!.getTime(), 'one at a time');
      await noBgtaskBackends();
    } finally {
      await c.end();
      await db.sql(`delete from bgtask.role_settings where role_name = 'Zoë Ops'`);
    }
  });

  test('a lock another role takes in alice\'s reservation class, with a key beyond the integers, neither fails nor blocks her submits', async () => {
    // Any role may take any advisory lock; pg_locks shows its second key as an unsigned objid (4294967295 here),
    // which _free_slots once cast to integer: every submit of alice then failed with 22003.
    const bob = await connect('bob');
    try {
      await bob.query(`select pg_advisory_lock(hashtext('bgtask slot alice'), -1)`);
      const id = await submitAs('alice', 'select 1');
      assert.equal((await db.waitFor(id)).state, 'done');
      assert.equal((await db.sql(`select (bgtask._free_slots('alice')).free as f`))[0].f, 4, 'and it takes no slot of hers');
    } finally {
      await bob.end();
    }
  });

  test('a task whose commit is slow, while the one running task of its role ends, still starts (limit 1, no reap)', async () => {
    // The commit-time check finds no slot and returns; the rest of the commit takes 1.5 s (here another deferred
    // trigger; a synchronous-replication wait in production). The ending supervisor must see the task once it is
    // committed: it used to look for queued tasks before taking the role's lock, found none, and left it queued.
    await db.sql(`insert into bgtask.role_settings values ('bob', 1);
                  create table public.slow_commit (x int); grant insert on public.slow_commit to bob;
                  create function public.slow_commit() returns trigger language plpgsql as $$ begin perform pg_sleep(1.5); return null; end $$;
                  create constraint trigger slow_commit after insert on public.slow_commit deferrable initially deferred
                    for each row execute function public.slow_commit()`);
    const c = await connect('bob');
    try {
      const first = await submitAs('bob', 'select pg_sleep(0.5)');
      await workerSleeping(first);
      await c.query('begin');
      const second = await submitWith(c, 'select 2');
      await c.query('insert into public.slow_commit values (1)');
      await c.query('commit');
      const ended = [await db.waitFor(first), await db.waitFor(second, { timeoutMs: 10_000 })];
      assert.deepEqual(ended.map((t) => t.state), ['done', 'done']);
    } finally {
      await c.end();
      await db.sql(`delete from bgtask.role_settings where role_name = 'bob'; drop table public.slow_commit; drop function public.slow_commit()`);
    }
  });

  test('a submit in a REPEATABLE READ transaction older than the running task counts it (limit 1): the second waits without a backend', async () => {
    // Such a transaction sees the rows as they were at its start, before the first task ran.
    await db.sql(`insert into bgtask.role_settings values ('carol', 1)`);
    const [rr, other] = [await connect('carol'), await connect('carol')];
    try {
      await rr.query('begin isolation level repeatable read');
      await rr.query('select count(*) from bgtask.tbl_task');   // takes the transaction's snapshot
      const first = await submitWith(other, 'select pg_sleep(1)');
      await workerSleeping(first);
      assert.equal((await rr.query(`select (bgtask._free_slots('carol')).free as f`)).rows[0].f, 0);
      const second = await submitWith(rr, 'select 2');
      assert.equal(await backendOf('supervisor', second), undefined, 'no supervisor launched for the task that must wait');
      await rr.query('commit');
      const ended = [await db.waitFor(first), await db.waitFor(second)];
      assert.deepEqual(ended.map((t) => t.state), ['done', 'done']);
      assert.ok(ended[1].startTime!.getTime() >= ended[0].endTime!.getTime(), 'one at a time');
      await noBgtaskBackends();
    } finally {
      await rr.end();
      await other.end();
      await db.sql(`delete from bgtask.role_settings where role_name = 'carol'`);
    }
  });

  test('a NOLOGIN owner (SET ROLE) counts a supervisor on its way from another session\'s open transaction (limit 1)', async () => {
    // app_owner may not read the query text of alice's backends: the supervisor of an uncommitted submit is
    // counted by its submit's reservation, not by what it is running.
    await db.sql(`insert into bgtask.role_settings values ('app_owner', 1)`);
    const [c1, c2] = [await connect('alice'), await connect('alice')];
    try {
      await c2.query('set role app_owner');
      await c1.query('begin');
      await c1.query('set local role app_owner');
      const first = await submitWith(c1, 'select pg_sleep(0.2)');
      await waitUntil(`the supervisor of #${first} to be there`, async () => backendOf('supervisor', first));
      const second = await submitWith(c2, 'select pg_sleep(0.2)');
      assert.equal(await backendOf('supervisor', second), undefined, 'no supervisor launched for the task that must wait');
      await c1.query('commit');
      const ended = [await db.waitFor(first), await db.waitFor(second)];
      assert.deepEqual(ended.map((t) => [t.owner, t.state]), [['app_owner', 'done'], ['app_owner', 'done']]);
      assert.ok(ended[1].startTime!.getTime() >= ended[0].endTime!.getTime(), 'one at a time');
      await noBgtaskBackends();
    } finally {
      await c1.end();
      await c2.end();
      await db.sql(`delete from bgtask.role_settings where role_name = 'app_owner'`);
    }
  });
});

describe('failures are recorded and nothing stays running', () => {
  test('the worker cannot log in (the role\'s connection limit): failed with the server\'s reason, its steps skipped', async () => {
    // dora may hold 2 connections: her own session and the supervisor; the worker is the third.
    const pw = 'do-' + Math.random().toString(36).slice(2);
    await db.server.createRole('dora', pw, 'CONNECTION LIMIT 2');
    await db.sql('grant bgtask_user to dora');
    const c = new Client(db.server.connectionConfig('dora', pw, db.database));
    await c.connect();
    try {
      await c.query('select bgtask.set_password($1)', [pw]);
      const id = await submitWith(c, ['select 1', 'select 2']);
      const t = await db.waitFor(id);
      assert.equal(t.state, 'failed');
      assert.equal(t.exitReason, 'could not start the worker connection');
      assert.equal(t.error?.sqlstate, '53300', JSON.stringify(t.error));
      assert.equal(t.error?.message, 'role dora has reached its connection limit (2), and a task needs two connections of its own');
      assert.match(t.error?.detail ?? '', /too many connections for role "dora"/);
      assert.match(t.error?.hint ?? '', /ALTER ROLE dora CONNECTION LIMIT/);
      assert.deepEqual(t.steps.map((st) => st.state), ['skipped', 'skipped'], 'no step ran, and none is left pending');
      await noBgtaskBackends();
    } finally {
      await c.end();
    }
  });

  test('a killed supervisor: lost at once in list_tasks, lost after reap(), its worker stopped, the queue drains', async () => {
    const victim = await submitAs('alice', 'select pg_sleep(60)');
    await workerSleeping(victim);
    const running = [await submitAs('alice', 'select pg_sleep(1.5)'), await submitAs('alice', 'select pg_sleep(1.5)'), await submitAs('alice', 'select pg_sleep(1.5)')];
    for (const id of running) await workerSleeping(id);
    const queued = [await submitAs('alice', 'select pg_sleep(0.3)'), await submitAs('alice', 'select pg_sleep(0.3)'), await submitAs('alice', 'select pg_sleep(0.3)')];
    assert.deepEqual((await db.sql(`select state from bgtask.tbl_task where id = any($1)`, [queued])).map((r) => r.state), ['queued', 'queued', 'queued']);

    const supervisor = await backendOf('supervisor', victim);
    assert.ok(supervisor);
    const worker = await backendOf('worker', victim);
    assert.ok(worker);
    assert.equal((await db.sql('select pg_terminate_backend($1) as ok', [supervisor.pid]))[0].ok, true);
    await waitUntil('the supervisor to exit', async () => (await db.sql('select 1 from pg_stat_activity where pid = $1', [supervisor.pid])).length === 0);

    // The row still says running; list_tasks and the detail query already say lost; nothing was written yet.
    assert.equal((await db.sql('select state from bgtask.tbl_task where id = $1', [victim]))[0].state, 'running');
    const listed = (await db.pool('alice').query('select id, state from bgtask.list_tasks()')).rows.find((r) => Number(r.id) === victim);
    assert.equal(listed?.state, 'lost');
    assert.equal((await db.tasks('alice').get(victim))?.state, 'lost');
    assert.ok(await backendOf('worker', victim), 'the orphaned worker is still there before reap()');

    assert.equal(await db.tasks('alice').reap(), 1);
    const row = (await db.sql('select state, exit_reason, end_time from bgtask.tbl_task where id = $1', [victim]))[0];
    assert.equal(row.state, 'lost');
    assert.match(row.exit_reason, new RegExp(`supervisor backend \\(pid ${supervisor.pid}\\) is gone`));
    assert.ok(row.end_time);
    await waitUntil('the orphaned worker to be terminated', async () => (await db.sql('select 1 from pg_stat_activity where pid = $1', [worker.pid])).length === 0, 5_000);
    const steps = await db.sql('select state from bgtask.tbl_task_step where task_id = $1', [victim]);
    assert.deepEqual(steps.map((s) => s.state), ['failed']);

    for (const id of [...running, ...queued]) assert.equal((await db.waitFor(id)).state, 'done', `task #${id}`);
    assert.equal((await db.tasks('alice').reap()), 0, 'reaping again finds nothing');
    await noBgtaskBackends();
  });

  test('a terminated worker: the supervisor records failed with 57P01', async () => {
    const id = await submitAs('alice', ['select pg_sleep(60)', 'select 2']);
    const worker = await workerSleeping(id);
    assert.equal((await db.sql('select pg_terminate_backend($1) as ok', [worker]))[0].ok, true);
    const t = await db.waitFor(id, { timeoutMs: 10_000 });
    assert.equal(t.state, 'failed');
    assert.equal(t.error?.sqlstate, '57P01');
    assert.match(t.error?.message ?? '', /terminating connection due to administrator command/);
    assert.equal(t.exitReason, 'a step failed');
    assert.deepEqual(t.steps.map((s) => [s.state, s.error?.sqlstate ?? null]), [['failed', '57P01'], ['skipped', null]]);
    await noBgtaskBackends();
  });

  test('a queued task cancelled (by its owner, or by an admin) is cancelled at once and never runs', async () => {
    await db.sql(`insert into bgtask.role_settings values ('bob', 1)`);
    try {
      const first = await submitAs('bob', 'select pg_sleep(1)');
      await workerSleeping(first);
      const mine = await submitAs('bob', 'insert into canary values (2)');
      const admins = await submitAs('bob', ['insert into canary values (3)', 'insert into canary values (4)']);
      assert.equal((await db.pool('bob').query('select bgtask.cancel_task($1) as c', [mine])).rows[0].c, true);
      let t = await db.tasks('bob').get(mine);
      assert.equal(t?.state, 'cancelled', 'cancelled at once, without waiting for anything');
      assert.match(t?.exitReason ?? '', /cancelled by bob before it started/);
      assert.deepEqual(t?.steps.map((s) => s.state), ['skipped']);
      assert.equal((await db.pool('carol').query('select bgtask.cancel_task($1) as c', [admins])).rows[0].c, true);
      t = await db.tasks('bob').get(admins);
      assert.equal(t?.state, 'cancelled');
      assert.match(t?.exitReason ?? '', /cancelled by carol before it started/);
      assert.deepEqual(t?.steps.map((s) => s.state), ['skipped', 'skipped'], 'the admin\'s cancel marks the steps too');

      assert.equal((await db.waitFor(first)).state, 'done');
      await noBgtaskBackends(); // the role's slot was free again and the queue was looked at: nothing started
      assert.equal((await db.tasks('bob').reap()), 0);
      await noBgtaskBackends();
      assert.deepEqual(await db.sql('select v from canary'), [], 'a cancelled queued task ran');
      for (const id of [mine, admins]) {
        const r = (await db.sql('select state, start_time from bgtask.tbl_task where id = $1', [id]))[0];
        assert.deepEqual(r, { state: 'cancelled', start_time: null });
      }
      assert.equal((await db.pool('bob').query('select bgtask.cancel_task($1) as c', [mine])).rows[0].c, false, 'an ended task cannot be cancelled');
    } finally {
      await db.sql(`delete from bgtask.role_settings where role_name = 'bob'`);
    }
  });
});

describe('timeouts of the role and the server', () => {
  test('role-level statement, lock, idle and idle-in-transaction timeouts of 1 s do not stop a 3 s task; its own statement_timeout does', async () => {
    await db.sql(`alter role alice set statement_timeout = '1s'; alter role alice set idle_in_transaction_session_timeout = '1s';
                  alter role alice set idle_session_timeout = '1s'; alter role alice set lock_timeout = '1s'`);
    const holder = await db.client('postgres');
    try {
      const alice = await connect('alice');
      let long: number, timed: number, waits: number;
      try {
        const { rows: [s] } = await alice.query(`select current_setting('statement_timeout') as st, current_setting('lock_timeout') as lt,
                                                        current_setting('idle_session_timeout') as ist, current_setting('idle_in_transaction_session_timeout') as iit`);
        assert.deepEqual(s, { st: '1s', lt: '1s', ist: '1s', iit: '1s' }, 'the role settings apply to alice\'s sessions');
        await holder.query('begin');
        await holder.query('lock table locked in access exclusive mode');
        long = await submitWith(alice, 'select pg_sleep(3)');
        timed = await submitWith(alice, 'select pg_sleep(3)', { statement_timeout: '1s' });
        waits = await submitWith(alice, 'select count(*) from locked');
      } finally {
        await alice.end();
      }
      // The third task waits for the lock for longer than the role's lock_timeout, then gets it.
      await waitUntil('task #' + waits + ' to wait on the lock for 1.5 s', async () =>
        (await db.sql(`select 1 from pg_stat_activity where application_name = $1 and wait_event_type = 'Lock'
                       and clock_timestamp() - query_start > interval '1.5 s'`, [`bgtask worker ${waits}`])).length > 0, 10_000);
      await holder.query('commit');

      const t = await db.waitFor(long, { timeoutMs: 10_000 });
      assert.equal(t.state, 'done', JSON.stringify(t.error));
      assert.ok(t.endTime!.getTime() - t.startTime!.getTime() >= 3000);
      const w = await db.waitFor(waits, { timeoutMs: 10_000 });
      assert.equal(w.state, 'done', JSON.stringify(w.error));
      const f = await db.waitFor(timed, { timeoutMs: 10_000 });
      assert.equal(f.state, 'failed', 'a statement_timeout of the task fails it; it is not a cancel');
      assert.equal(f.error?.sqlstate, '57014');
      assert.match(f.error?.message ?? '', /statement timeout/);
      assert.equal(f.cancelRequested, false);
      await noBgtaskBackends();
    } finally {
      await holder.query('rollback').catch(() => undefined);
      await holder.end();
      await db.sql(`alter role alice reset statement_timeout; alter role alice reset idle_in_transaction_session_timeout;
                    alter role alice reset idle_session_timeout; alter role alice reset lock_timeout`);
    }
  });

  test('role-level transaction_timeout of 1 s (PostgreSQL 17+) does not stop a 3 s task, nor the supervisor waiting 2 s for the submitter', async (t) => {
    if (db.server.major < 17) {
      t.skip(`transaction_timeout exists from PostgreSQL 17; this server is ${db.server.major}`);
      return;
    }
    await db.sql(`alter role alice set transaction_timeout = '1s'`);
    try {
      const alice = await connect('alice');
      let id: number;
      try {
        assert.equal((await alice.query(`select current_setting('transaction_timeout') as t`)).rows[0].t, '1s');
        // The submitter's own transaction stays open for 2 s (its timeout is its own business: lift it here).
        await alice.query('begin');
        await alice.query(`set local transaction_timeout = 0`);
        id = await submitWith(alice, 'select pg_sleep(3)');
        await waitUntil('the supervisor to wait 2 s', async () => (await db.sql(`select 1 from pg_stat_activity
          where application_name = $1 and clock_timestamp() - backend_start > interval '2 s'`, [`bgtask supervisor ${id}`])).length > 0
          || (await db.sql(`select 1 from pg_stat_activity where usename = 'alice' and state = 'idle in transaction'
          and clock_timestamp() - xact_start > interval '2 s'`)).length > 0, 10_000);
        await alice.query('commit');
      } finally {
        await alice.end();
      }
      const done = await db.waitFor(id, { timeoutMs: 15_000 });
      assert.equal(done.state, 'done', JSON.stringify(done.error));
      assert.ok(done.endTime!.getTime() - done.startTime!.getTime() >= 3000);
    } finally {
      await db.sql(`alter role alice reset transaction_timeout`);
    }
  });

  test('server-wide client_connection_check_interval = 1s: a 3 s task whose client vanished right after submit ends done', async () => {
    await db.sql(`alter system set client_connection_check_interval = '1s'`);
    await db.sql('select pg_reload_conf()');
    try {
      await waitUntil('the setting in new sessions', async () => (await db.server.query('show client_connection_check_interval')).rows[0].client_connection_check_interval === '1s');
      const c = await connect('alice');
      assert.equal((await c.query('show client_connection_check_interval')).rows[0].client_connection_check_interval, '1s');
      const id = await submitWith(c, 'select pg_sleep(3)');
      (c as unknown as { connection: { stream: { destroy(): void } } }).connection.stream.destroy();
      const t = await db.waitFor(id, { timeoutMs: 10_000 });
      assert.equal(t.state, 'done', JSON.stringify(t.error));
      await noBgtaskBackends();
    } finally {
      await db.sql('alter system reset client_connection_check_interval');
      await db.sql('select pg_reload_conf()');
    }
  });
});

describe('server restart', () => {
  test('an immediate restart with 3 tasks running: after reap() all 3 are lost, none running', async () => {
    const ids = [await submitAs('alice', 'select pg_sleep(60)'), await submitAs('alice', 'select pg_sleep(60)'), await submitAs('alice', 'select pg_sleep(60)')];
    for (const id of ids) await workerSleeping(id);
    await db.server.restart('immediate');
    // Fresh sessions: every pooled one died with the server.
    const su = await connect('postgres');
    const alice = await connect('alice');
    try {
      const rows = async () => (await su.query('select id, state from bgtask.tbl_task where id = any($1) order by id', [ids])).rows.map((r) => r.state);
      assert.deepEqual(await rows(), ['running', 'running', 'running'], 'nobody recorded anything yet');
      const listed = (await alice.query('select id, state from bgtask.list_tasks()')).rows.filter((r) => ids.includes(Number(r.id)));
      assert.deepEqual(listed.map((r) => r.state), ['lost', 'lost', 'lost']);
      assert.equal(Number((await alice.query('select bgtask.reap() as n')).rows[0].n), 3);
      assert.deepEqual(await rows(), ['lost', 'lost', 'lost']);
      assert.equal((await su.query(`select count(*)::int as n from bgtask.tbl_task where state = 'running'`)).rows[0].n, 0);
      assert.equal((await su.query(`select count(*)::int as n from pg_stat_activity where application_name like 'bgtask %'`)).rows[0].n, 0);
      // And the engine works after the restart.
      const id = await submitWith(alice, 'select 1 as one');
      const r = await waitUntil('a task after the restart', async () => (await su.query(`select state from bgtask.tbl_task where id = $1 and state <> 'queued' and state <> 'running'`, [id])).rows[0]);
      assert.equal(r.state, 'done');
    } finally {
      await su.end();
      await alice.end();
    }
  });
});
