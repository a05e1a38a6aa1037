// Roles and rights around sql/000001_init.sql on a real server (DESIGN.md §3, "Rules the engine keeps"): a task
// runs as the role that submitted it and with exactly its rights; other roles see and touch nothing of it; an
// admin sees and cancels all; forged rows, squatted names and a hostile search_path reach nobody else; the
// password stays out of every text a role or a log can read; a cloned database or a missing dblink fails with
// what to run.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
import { Client, DatabaseError, Pool } from 'pg';
import { TaskClient } from '../../src/core/taskClient';
import { TaskError } from '../../src/core/errors';
import { BgtaskDb, Role, startBgtaskDb } from '../harness/bgtaskDb';
import { waitUntil } from '../harness/wait';
import { migrations } from '../../src/core/generated/sql';
import { installSchema } from '../../src/core/installer';

let db: BgtaskDb;
before(async () => {
  db = await startBgtaskDb();
  // Some tests end every session of the database (CREATE DATABASE … TEMPLATE): idle pooled clients then fail,
  // and an unheard pool 'error' event would end the process.
  for (const r of ['postgres', 'alice', 'bob', 'carol'] as const) db.pool(r).on('error', () => undefined);
  await db.sql(`create table secret (x int); insert into secret values (42)`); // nobody but the superuser may read it
  await db.sql(`create table things (id int primary key, v text); insert into things values (1, 'a'), (2, 'b'), (3, 'c');
                grant select, update on things to alice`);
});
after(async () => db?.close());

// ---- helpers ----
/** The error a query raised (fails if it did not). */
async function pgError(p: Promise<unknown>): Promise<DatabaseError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof DatabaseError) return e;
    throw e;
  }
  assert.fail('expected the statement to fail');
}

/** Every text an error carries to the client: message and all protocol fields. */
function errorText(e: DatabaseError): string {
  return JSON.stringify({ ...e, message: e.message, stack: e.stack });
}

const as = async (role: Role, text: string, values?: unknown[]) => (await db.pool(role).query(text, values)).rows;
const submitAs = async (role: Role, sql: string | string[], options: object = {}) =>
  Number((await as(role, `select bgtask.run_task($1::${Array.isArray(sql) ? 'text[]' : 'text'}, null, $2::jsonb) as id`, [sql, JSON.stringify(options)]))[0].id);

/** Waits for the task's worker to be inside pg_sleep (seen by the superuser). */
const workerSleeping = (id: number) => waitUntil(`worker of task #${id} in pg_sleep`, async () =>
  (await db.sql(`select pid from pg_stat_activity where application_name = $1 and wait_event = 'PgSleep'`, [`bgtask worker ${id}`]))[0]?.pid as number | undefined);

/** A task of the test database as the superuser sees it, by polling another database's row until it ends. */
async function waitEndedIn(client: Client, id: number, timeoutMs = 15_000) {
  return waitUntil(`task #${id} to end in ${client.database}`, async () => {
    const r = (await client.query(`select state, error from bgtask.tbl_task where id = $1`, [id])).rows[0];
    return r && ['done', 'failed', 'cancelled', 'lost'].includes(r.state) ? r : undefined;
  }, timeoutMs);
}

async function connect(user: string, password: string, database = db.database): Promise<Client> {
  const c = new Client(db.server.connectionConfig(user, password, database));
  await c.connect();
  return c;
}

/** The rows a task collected in its first step, read through the given session (as whatever role it is). */
async function resultRowsAs(c: Client, id: number) {
  const [{ t }] = (await c.query('select bgtask.result_table($1, 1)::text as t', [id])).rows;
  assert.ok(t, `task #${id} has a result table`);
  return (await c.query(`select su from ${t}`)).rows;
}

async function resultRows(role: Role, id: number, n = 1) {
  const [{ t }] = await as(role, 'select bgtask.result_table($1, $2)::text as t', [id, n]);
  assert.ok(t, `task #${id} step ${n} has a result table`);
  return { table: t as string, rows: await as(role, `select * from ${t} order by _row`) };
}

describe('identity: a task runs as its submitter, and only the submitter (and an admin) can reach it', () => {
  test('alice\'s task runs as alice; bob cannot see, read, cancel or use anything of it', async () => {
    const marker = `marker_${crypto.randomBytes(6).toString('hex')}`;
    const bobTask = await submitAs('bob', `select 'bob was here' as who`);
    const id = await submitAs('alice', `select current_user::text as cu, session_user::text as su, (select true from pg_sleep(1.5)) as slept -- ${marker}`);
    await workerSleeping(id);

    // Positive control: the superuser sees the marker in the worker's query text; bob sees it nowhere.
    const suSees = await db.sql(`select count(*)::int as n from pg_stat_activity where query like '%' || $1 || '%' and pid <> pg_backend_pid()`, [marker]);
    assert.ok(suSees[0].n >= 1, 'the superuser sees the running task\'s SQL');
    const bobActivity = await as('bob', `select count(*)::int as n from pg_stat_activity where query like '%' || $1 || '%' and pid <> pg_backend_pid()`, [marker]);
    assert.equal(bobActivity[0].n, 0, 'bob sees alice\'s SQL in pg_stat_activity');
    assert.deepEqual(await as('bob', 'select id from bgtask.tbl_task where id = $1 or sql like $2', [id, `%${marker}%`]), []);
    assert.deepEqual(await as('bob', 'select task_id from bgtask.tbl_task_step where task_id = $1 or sql like $2', [id, `%${marker}%`]), []);
    const bobList = await as('bob', 'select id, sql from bgtask.list_tasks()');
    assert.ok(bobList.some((r) => Number(r.id) === bobTask), 'bob lists his own task');
    assert.ok(!bobList.some((r) => Number(r.id) === id || String(r.sql).includes(marker)), 'bob lists alice\'s task');
    assert.equal(await db.tasks('bob').get(id), undefined);

    // bob cannot cancel it: false, and the task goes on to finish.
    assert.equal((await as('bob', 'select bgtask.cancel_task($1) as c', [id]))[0].c, false);
    const t = await db.waitFor(id, { role: 'alice' });
    assert.equal(t.state, 'done', JSON.stringify(t.error));
    assert.equal(t.cancelRequested, false);
    assert.equal(t.owner, 'alice');
    assert.equal(t.loginRole, 'alice');

    // It ran as alice, logged in as alice.
    const { table, rows } = await resultRows('alice', id);
    assert.deepEqual(rows.map((r) => [r.cu, r.su, r.slept]), [['alice', 'alice', true]]);
    const [{ owner }] = await db.sql(`select pg_get_userbyid(relowner)::text as owner from pg_class where oid = $1::regclass`, [table]);
    assert.equal(owner, 'alice');

    // bob cannot read her result table, and result_table() does not hand it to him.
    const denied = await pgError(as('bob', `select * from ${table}`));
    assert.equal(denied.code, '42501');
    assert.equal((await as('bob', 'select bgtask.result_table($1, 1) as t', [id]))[0].t, null);
  });

  test('bob cannot use alice\'s user mapping: the loopback server logs bob in as bob', async () => {
    const bob = await db.client('bob');
    try {
      await bob.query(`select dblink_connect('x', 'bgtask_loopback')`);
      const { rows } = await bob.query(`select * from dblink('x', 'select session_user::text, current_user::text') as t(su text, cu text)`);
      assert.deepEqual(rows, [{ su: 'bob', cu: 'bob' }]);
      await bob.query(`select dblink_disconnect('x')`);
      // Naming alice in a connection string does not help: ordinary roles must give a password.
      const e = await pgError(bob.query(`select dblink_connect('y', $1)`, [`host=127.0.0.1 port=${db.server.port} dbname=${db.database} user=alice`]));
      assert.match(e.message + (e.detail ?? ''), /password/i);
      // And alice's mapping options are hidden from him.
      const { rows: maps } = await bob.query(`select umoptions from pg_user_mappings where srvname = 'bgtask_loopback' and usename = 'alice'`);
      assert.deepEqual(maps, [{ umoptions: null }]);
    } finally {
      await bob.end();
    }
  });

  test('carol (bgtask_admin) lists every role\'s tasks and cancels alice\'s running task', async () => {
    const bobTask = await submitAs('bob', 'select 1 as one');
    const id = await submitAs('alice', 'select pg_sleep(30)');
    await workerSleeping(id);
    const ids = (await as('carol', 'select id, owner::text from bgtask.list_tasks()')).map((r) => [Number(r.id), r.owner]);
    assert.ok(ids.some(([i, o]) => i === id && o === 'alice'), 'carol lists alice\'s task');
    assert.ok(ids.some(([i, o]) => i === bobTask && o === 'bob'), 'carol lists bob\'s task');
    assert.equal((await as('carol', 'select bgtask.cancel_task($1) as c', [id]))[0].c, true);
    const t = await db.waitFor(id, { timeoutMs: 5_000 });
    assert.equal(t.state, 'cancelled');
    assert.equal(t.error?.sqlstate, '57014');
    assert.match(t.exitReason ?? '', /carol/);
    await waitUntil('alice\'s worker to go away', async () =>
      (await db.sql(`select count(*)::int as n from pg_stat_activity where application_name = $1`, [`bgtask worker ${id}`]))[0].n === 0);
  });
});

describe('rights: a task has exactly the rights of the role that submitted it', () => {
  test('alice cannot read a table she has no SELECT on, nor create a role, through a task', async () => {
    const read = await db.waitFor(await submitAs('alice', 'select * from secret'));
    assert.equal(read.state, 'failed');
    assert.equal(read.error?.sqlstate, '42501');
    assert.match(read.error?.message ?? '', /permission denied for table secret/);
    const create = await db.waitFor(await submitAs('alice', 'create role mallory superuser'));
    assert.equal(create.state, 'failed');
    assert.equal(create.error?.sqlstate, '42501');
    assert.deepEqual(await db.sql(`select rolname from pg_roles where rolname = 'mallory'`), []);
    const auth = await db.waitFor(await submitAs('alice', 'set session authorization postgres'));
    assert.equal(auth.state, 'failed');
    assert.equal(auth.error?.sqlstate, '42501');
  });

  test('after SET ROLE app_owner (NOLOGIN) the task runs as app_owner and belongs to it', async () => {
    const alice = await db.client('alice');
    try {
      await alice.query('set role app_owner');
      const id = Number((await alice.query(`select bgtask.run_task('select current_user::text as cu, session_user::text as su') as id`)).rows[0].id);
      assert.equal((await alice.query('select current_user::text as u')).rows[0].u, 'app_owner', 'run_task leaves the caller\'s role as it was');
      const t = await db.waitFor(id);
      assert.equal(t.state, 'done', JSON.stringify(t.error));
      assert.equal(t.owner, 'app_owner');
      assert.equal(t.loginRole, 'alice');
      const [{ table }] = (await alice.query('select bgtask.result_table($1, 1)::text as table', [id])).rows;
      assert.deepEqual((await alice.query(`select cu, su from ${table}`)).rows, [{ cu: 'app_owner', su: 'alice' }]);
      const [{ owner }] = await db.sql(`select pg_get_userbyid(relowner)::text as owner from pg_class where oid = $1::regclass`, [table]);
      assert.equal(owner, 'app_owner');
      // The backends are recorded with their backend_start, which app_owner cannot see (it is not a member of
      // alice): they were NULL before 000003, and such a task could not be told from a backend that reused the pid.
      const [rec] = await db.sql(`select supervisor_pid, supervisor_start, worker_pid, worker_start from bgtask.tbl_task where id = $1`, [id]);
      assert.ok(rec.supervisor_pid && rec.supervisor_start instanceof Date, `supervisor recorded: ${JSON.stringify(rec)}`);
      assert.ok(rec.worker_pid && rec.worker_start instanceof Date, `worker recorded: ${JSON.stringify(rec)}`);

      await alice.query('reset role');
      const mine = (await alice.query('select id from bgtask.list_tasks()')).rows.map((r) => Number(r.id));
      assert.ok(!mine.includes(id), 'alice as herself does not list app_owner\'s task');
      assert.deepEqual((await alice.query('select id from bgtask.tbl_task where id = $1', [id])).rows, []);
      await alice.query('set role app_owner');
      const owned = (await alice.query('select id, owner::text from bgtask.list_tasks()')).rows;
      assert.ok(owned.some((r) => Number(r.id) === id && r.owner === 'app_owner'), 'as app_owner she lists it');
      assert.ok(owned.every((r) => r.owner === 'app_owner'), 'and only app_owner\'s tasks');
    } finally {
      await alice.end();
    }
  });
});

describe('a NOLOGIN owner role shared by two logins', () => {
  test('bob (also a member) cannot change or add to alice\'s queued task; her next task is started by her login only, his by his', async () => {
    // Before 000003 alice's ending supervisor started bob's queued task with alice's login, so bob's SQL ran with
    // alice's rights after a RESET ROLE; and bob could rewrite the SQL of alice's queued task the same way.
    await db.sql(`grant app_owner to bob; insert into bgtask.role_settings values ('app_owner', 1)`);
    const [alice, bob] = [await db.client('alice'), await db.client('bob')];
    try {
      await alice.query('set role app_owner');
      await bob.query('set role app_owner');
      const first = Number((await alice.query(`select bgtask.run_task('select pg_sleep(1)') as id`)).rows[0].id);
      await workerSleeping(first);
      const aliceQueued = Number((await alice.query(`select bgtask.run_task('select session_user::text as su') as id`)).rows[0].id);
      const bobQueued = Number((await bob.query(`select bgtask.run_task('select session_user::text as su') as id`)).rows[0].id);

      // What a task runs is fixed once submitted, also for the other members of its owner role.
      for (const [what, sql] of [
        ['its SQL', `update bgtask.tbl_task set sql = 'select 1' where id = ${aliceQueued}`],
        ['its step', `update bgtask.tbl_task_step set sql = 'reset role' where task_id = ${aliceQueued}`],
        ['its settings', `update bgtask.tbl_task set settings = '{"search_path": "bob"}' where id = ${aliceQueued}`],
        ['its options', `update bgtask.tbl_task set options = '{}' where id = ${aliceQueued}`],
        ['its step count', `update bgtask.tbl_task set step_count = 2 where id = ${aliceQueued}`],
        ['its steps, by deleting one', `delete from bgtask.tbl_task_step where task_id = ${aliceQueued}`],
        ['who submitted it', `update bgtask.tbl_task set login_role = 'alice' where id = ${bobQueued}`],
        ['a task that has run, by queueing it again', `update bgtask.tbl_task set state = 'queued', end_time = null where id = ${first}`],
      ] as const) {
        assert.match((await pgError(bob.query(sql))).message, /permission denied|cannot be changed|cannot be queued again/, `bob changed ${what}`);
      }
      const replaced = await pgError(bob.query(`insert into bgtask.tbl_task_step (task_id, n, owner, sql) values ($1, 1, 'app_owner', 'reset role')`, [aliceQueued]));
      assert.equal(replaced.code, '23505', 'bob replaced the step of alice\'s task');
      const forged = await pgError(bob.query(`insert into bgtask.tbl_task (owner, login_role, sql, step_count, token) values ('app_owner', 'alice', 'select 1', 1, 'x')`));
      assert.match(forged.message, /permission denied/, 'bob inserted a task in alice\'s name');

      // alice's task ends: her supervisor starts her queued task, never bob's, which waits for his login.
      const ranAlice = await db.waitFor(aliceQueued, { timeoutMs: 15_000 });
      assert.equal(ranAlice.state, 'done', JSON.stringify(ranAlice.error));
      assert.deepEqual((await resultRowsAs(alice, aliceQueued)), [{ su: 'alice' }]);
      await waitUntil('no bgtask backend left', async () =>
        (await db.sql(`select count(*)::int as n from pg_stat_activity where application_name like 'bgtask %'`))[0].n === 0);
      assert.equal((await db.sql('select state from bgtask.tbl_task where id = $1', [bobQueued]))[0].state, 'queued',
        'alice\'s login started bob\'s task');
      // bob's reap() (the extension calls it once a minute), as himself: it starts his tasks of the roles he acts as.
      await bob.query('reset role');
      await bob.query('select bgtask.reap()');
      assert.equal((await bob.query('select current_user::text as u')).rows[0].u, 'bob', 'reap() leaves the caller\'s role as it was');
      const ranBob = await db.waitFor(bobQueued);
      assert.equal(ranBob.state, 'done', JSON.stringify(ranBob.error));
      await bob.query('set role app_owner');
      assert.deepEqual((await resultRowsAs(bob, bobQueued)), [{ su: 'bob' }], 'bob\'s task ran with his own login');
    } finally {
      await alice.end();
      await bob.end();
      await db.sql(`revoke app_owner from bob; delete from bgtask.role_settings where role_name = 'app_owner'`);
    }
  });
});

describe('what a task shows is what it runs', () => {
  test('a direct call of _submit with display text unlike its steps stores the steps\' text', async () => {
    const [{ id }] = await as('alice', `select bgtask._submit(array['select 1', 'select 2'], null, '{}', 'select harmless', '{}') as id`);
    const [{ sql }] = await as('alice', 'select sql from bgtask.tbl_task where id = $1', [id]);
    assert.equal(sql, 'select 1;\nselect 2');
    assert.equal((await db.waitFor(Number(id))).state, 'done');
  });
});

describe('result tables of a shared owner role', () => {
  test('a row-level security policy added by another member is never run by a reader: the rows are refused with why', async () => {
    await db.sql('grant app_owner to bob');
    const bobPool = new Pool({ ...db.server.connectionConfig('bob', db.password('bob'), db.database), options: '-c role=app_owner', max: 1 });
    const alice = await db.client('alice');
    try {
      const bob = new TaskClient(bobPool);
      const id = await bob.submit('select 1 as x');
      assert.equal((await db.waitFor(id)).state, 'done');
      assert.deepEqual((await bob.readResultPage(id, 1, 0, 10)).rows, [['1']], 'readable before (control)');
      await alice.query('set role app_owner');
      const [{ t }] = (await alice.query('select bgtask.result_table($1, 1)::text as t', [id])).rows;
      await alice.query(`alter table ${t} enable row level security; alter table ${t} force row level security;
                         create policy spy on ${t} using (pg_catalog.pg_sleep(0) is not null)`);
      const e = await bob.readResultPage(id, 1, 0, 10).then(() => assert.fail('bob read a table with a policy'), (err: unknown) => err);
      assert.ok(e instanceof TaskError, String(e));
      assert.equal(e.reason, 'notPermitted');
      assert.match(e.message, /row-level security/);
    } finally {
      await alice.end();
      await bobPool.end();
      await db.sql('revoke app_owner from bob');
    }
  });
});

describe('passwords', () => {
  test('a user mapping for PUBLIC that names another role is refused: a task never logs in as anyone but its submitter', async () => {
    const erikPw = crypto.randomBytes(12).toString('base64url');
    await db.server.createRole('erik', erikPw);
    await db.sql('grant bgtask_user to erik');
    // A DBA's shortcut: one mapping for everyone, as carol (an admin).
    await db.sql(`create user mapping for public server bgtask_loopback options (user 'carol', password '${db.password('carol')}')`);
    const erik = await connect('erik', erikPw);
    try {
      const e = await pgError(erik.query(`select bgtask.run_task('reset role; select session_user::text as su') as id`));
      assert.equal(e.code, '28000');
      assert.equal(e.message, 'the loopback connection of role erik logged in as carol, and a task must run with the rights of the role that submits it');
      assert.match(e.hint ?? '', /bgtask\.set_password/);
      assert.deepEqual(await db.sql(`select id from bgtask.tbl_task where owner = 'erik'`), [], 'nothing was submitted');
      assert.equal((await erik.query('select dblink_get_connections() as c')).rows[0].c, null, 'no link left open');
      await waitUntil('no bgtask backend left', async () =>
        (await db.sql(`select count(*)::int as n from pg_stat_activity where application_name like 'bgtask %'`))[0].n === 0);
      // With its own mapping, which takes precedence, erik's tasks run as erik.
      await erik.query('select bgtask.set_password($1)', [erikPw]);
      const id = Number((await erik.query(`select bgtask.run_task('select session_user::text as su') as id`)).rows[0].id);
      assert.equal((await db.waitFor(id)).state, 'done');
    } finally {
      await erik.end();
      await db.sql('drop user mapping for public server bgtask_loopback');
    }
  });

  test('a role without a user mapping gets 28000 with what to run; a wrong password is refused without a trace', async () => {
    const davePw = crypto.randomBytes(12).toString('base64url');
    const wrong = `wrong-${crypto.randomBytes(9).toString('base64url')}`;
    await db.server.createRole('dave', davePw);
    await db.sql('grant bgtask_user to dave');
    const dave = await connect('dave', davePw);
    try {
      const none = await pgError(dave.query(`select bgtask.run_task('select 1')`));
      assert.equal(none.code, '28000');
      assert.match(none.hint ?? '', /bgtask\.set_password/);
      assert.deepEqual(await db.sql(`select id from bgtask.tbl_task where owner = 'dave'`), [], 'nothing was submitted');
      assert.equal((await dave.query('select dblink_get_connections() as c')).rows[0].c, null, 'no link left open');

      const refused = await pgError(dave.query('select bgtask.set_password($1)', [wrong]));
      assert.equal(refused.code, '28P01');
      assert.ok(!errorText(refused).includes(wrong), `the error shows the password: ${errorText(refused)}`);
      assert.deepEqual(await db.sql(`select umid from pg_user_mappings where srvname = 'bgtask_loopback' and usename = 'dave'`), [], 'a refused password is not stored');

      assert.match((await dave.query('select bgtask.set_password($1) as m', [davePw])).rows[0].m, /password stored for role dave/);
      assert.match((await dave.query('select bgtask.set_password($1) as m', [davePw])).rows[0].m, /password stored for role dave/, 'again, over an existing mapping');
      // A wrong one over an existing mapping is refused and leaves the good one in place.
      const again = await pgError(dave.query('select bgtask.set_password($1)', [wrong]));
      assert.equal(again.code, '28P01');
      assert.ok(!errorText(again).includes(wrong));
      const id = Number((await dave.query(`select bgtask.run_task('select session_user::text as su') as id`)).rows[0].id);
      const t = await db.waitFor(id);
      assert.equal(t.state, 'done', JSON.stringify(t.error));

      const log = await db.server.readLog();
      assert.match(log, /password authentication failed for user "dave"/, 'the refused attempts reached the log (control)');
      assert.ok(!log.includes(wrong), 'the wrong password is in the server log');
      assert.ok(!log.includes(davePw), 'the password is in the server log');
    } finally {
      await dave.end();
    }
  });

  test('the password is never in pg_stat_activity, the task tables, or a log that records DDL', async () => {
    await db.sql(`alter system set log_statement = 'ddl'`);
    await db.sql('select pg_reload_conf()');
    try {
      await waitUntil('log_statement = ddl in new sessions', async () => (await db.server.query('show log_statement')).rows[0].log_statement === 'ddl');
      // Control: a top-level DDL statement with a password in it does reach the log.
      const canary = `canary-${crypto.randomBytes(6).toString('hex')}`;
      await db.server.query(`create role log_control nologin; create user mapping for log_control server bgtask_loopback options (user 'x', password '${canary}');
                             drop user mapping for log_control server bgtask_loopback; drop role log_control`, [], db.database);
      await waitUntil('the control statement in the log', async () => (await db.server.readLog()).includes(canary));

      for (const r of ['alice', 'bob'] as const) {
        const c = await db.client(r);
        try {
          await c.query('select bgtask.set_password($1)', [db.password(r)]);
        } finally {
          await c.end();
        }
      }

      const ids = [await submitAs('alice', 'select pg_sleep(1)'), await submitAs('alice', ['select 1', 'select pg_sleep(1)'])];
      const texts = new Set<string>();
      const seen = new Set<string>();
      let samples = 0;
      for (const deadline = Date.now() + 15_000; ;) {
        const rows = await db.sql(`select application_name, coalesce(query, '') as query, coalesce(backend_type, '') as bt from pg_stat_activity`);
        samples++;
        for (const r of rows) {
          texts.add(`${r.application_name}\n${r.query}`);
          if (r.application_name.startsWith('bgtask ')) seen.add(r.application_name.replace(/ \d+$/, ''));
        }
        const open = await db.sql(`select count(*)::int as n from bgtask.tbl_task where id = any($1) and state in ('queued', 'running')`, [ids]);
        if (open[0].n === 0) break;
        assert.ok(Date.now() < deadline, 'tasks did not end');
      }
      assert.ok(samples >= 10, `sampled pg_stat_activity ${samples} times`);
      assert.deepEqual([...seen].sort(), ['bgtask supervisor', 'bgtask worker'], 'the samples caught the task backends');
      const passwords = (['postgres', 'alice', 'bob', 'carol'] as const).map((r) => db.password(r));
      for (const text of texts) for (const p of passwords) assert.ok(!text.includes(p), `a password in pg_stat_activity: ${text}`);
      for (const id of ids) assert.equal((await db.waitFor(id)).state, 'done');

      const rows = await db.sql(`select t::text as r from bgtask.tbl_task t union all select s::text from bgtask.tbl_task_step s`);
      assert.ok(rows.length > 0);
      for (const { r } of rows) for (const p of passwords) assert.ok(!r.includes(p), `a password in a task row: ${r}`);

      const log = await db.server.readLog();
      for (const p of passwords) assert.ok(!log.includes(p), 'a password is in the server log');
    } finally {
      await db.sql('alter system reset log_statement');
      await db.sql('select pg_reload_conf()');
    }
  });
});

describe('forged rows and squatted names reach nobody else', () => {
  test('alice points her row at bob\'s backend and bob\'s table: cancel, reap and purge leave both alone', async () => {
    const bob = await db.client('bob');
    try {
      const bobPid: number = (await bob.query('select pg_backend_pid() as p')).rows[0].p;
      await bob.query(`create table bgtask_result.task_999999_1 (precious text); insert into bgtask_result.task_999999_1 values ('bob''s')`);
      const id = await submitAs('alice', 'select pg_sleep(30)');
      await workerSleeping(id);
      // As text: a JS Date would drop the microseconds, and the row would no longer name bob's backend.
      const [{ start, earlier }] = await db.sql(`select backend_start::text as start, (backend_start - interval '1 s')::text as earlier
                                                 from pg_stat_activity where pid = $1`, [bobPid]);
      assert.ok(start);

      const forge = async (state: string, supervisorStart: string) => {
        const alice = db.pool('alice');
        const u = await alice.query(`update bgtask.tbl_task set state = $2, end_time = null, supervisor_pid = $3, supervisor_start = $4,
                                       worker_pid = $3, worker_start = $5 where id = $1`,
                                    [id, state, bobPid, supervisorStart, start]);
        assert.equal(u.rowCount, 1, 'alice may write her own row\'s state columns (the premise of this test)');
        // Who submitted it is not hers to change (since 000003).
        await assert.rejects(alice.query(`update bgtask.tbl_task set login_role = 'bob' where id = $1`, [id]), /cannot be changed/);
        const s = await alice.query(`update bgtask.tbl_task_step set result_table = 'task_999999_1' where task_id = $1`, [id]);
        assert.equal(s.rowCount, 1);
      };
      const bobAlive = async () => {
        assert.equal((await bob.query('select 1 as one')).rows[0].one, 1, 'bob\'s session still works');
        assert.equal((await db.sql('select count(*)::int as n from pg_stat_activity where pid = $1 and backend_start = $2', [bobPid, start]))[0].n, 1);
        assert.deepEqual((await bob.query('select precious from bgtask_result.task_999999_1')).rows, [{ precious: "bob's" }]);
      };

      // 1. While it runs: the row claims bob's backend is its supervisor and its worker.
      await forge('running', start);
      assert.equal((await as('carol', 'select bgtask.cancel_task($1) as c', [id]))[0].c, true);
      const cancelled = await db.waitFor(id, { timeoutMs: 5_000 });
      assert.equal(cancelled.state, 'cancelled', 'the real supervisor still stopped the real worker');
      await bobAlive();

      // 2. After it ended: a "running" row whose supervisor is gone and whose worker is bob's backend.
      await forge('running', earlier);
      assert.equal((await as('carol', 'select bgtask.reap() as n', []))[0].n, 1);
      await bobAlive();
      await forge('running', earlier);
      assert.equal((await db.sql('select bgtask.reap() as n'))[0].n, 1, 'the superuser, who may signal anyone');
      await bobAlive();
      await forge('running', earlier);
      await as('alice', 'select bgtask.reap()');
      await bobAlive();
      // A reaped row stays lost, however often it is reaped.
      await db.sql(`update bgtask.tbl_task set state = 'lost', end_time = now() - interval '1 hour' where id = $1`, [id]);

      // 3. Purge of a row whose step names bob's table.
      assert.ok(Number((await as('carol', `select bgtask.purge('0 s') as n`, []))[0].n) >= 1);
      assert.deepEqual(await db.sql('select id from bgtask.tbl_task where id = $1', [id]), [], 'carol purged the row');
      await db.sql(`select bgtask.purge('0 s')`);
      await as('alice', `select bgtask.purge('0 s')`);
      await bobAlive();
    } finally {
      await bob.end();
    }
  });

  test('bob squats alice\'s next result table names: her task still ends done, in tables she owns', async () => {
    const [{ next }] = await db.sql(`select case when is_called then last_value + 1 else last_value end as next from bgtask.tbl_task_id_seq`);
    const bob = await db.client('bob');
    try {
      await bob.query(`create table bgtask_result.task_${next}_1 (bob_data text); insert into bgtask_result.task_${next}_1 values ('mine')`);
      await bob.query(`create type bgtask_result.task_${next}_2 as (x int)`); // a composite type takes a table's name too
      const id = await submitAs('alice', ['select 1 as a', 'select 2 as b']);
      assert.equal(id, Number(next), 'the prediction of the next id');
      const t = await db.waitFor(id);
      assert.equal(t.state, 'done', JSON.stringify(t.error));
      for (const [n, col, val] of [[1, 'a', 1], [2, 'b', 2]] as const) {
        const step = t.steps[n - 1];
        assert.match(step.resultTable ?? '', new RegExp(`^task_${next}_${n}_[0-9a-f]{8}$`), 'not bob\'s name: an unguessable one');
        const { table, rows } = await resultRows('alice', id, n);
        assert.equal(table, `bgtask_result.${step.resultTable}`);
        assert.deepEqual(rows.map((r) => r[col]), [val]);
        const [{ owner }] = await db.sql(`select pg_get_userbyid(relowner)::text as owner from pg_class where oid = $1::regclass`, [table]);
        assert.equal(owner, 'alice');
      }
      assert.deepEqual((await bob.query(`select * from bgtask_result.task_${next}_1`)).rows, [{ bob_data: 'mine' }], 'bob\'s table is untouched');
      const [{ owner }] = await db.sql(`select pg_get_userbyid(relowner)::text as owner from pg_class where oid = $1::regclass`, [`bgtask_result.task_${next}_1`]);
      assert.equal(owner, 'bob');
    } finally {
      await bob.end();
    }
  });
});

describe('a hostile search_path', () => {
  before(async () => {
    // Every evil function counts its calls in a sequence (not rolled back with a failed statement) and raises.
    const fns: [string, string][] = [
      ['now()', 'timestamptz'], ['statement_timestamp()', 'timestamptz'], ['clock_timestamp()', 'timestamptz'],
      ['pg_backend_pid()', 'integer'], ['current_database()', 'name'], ['pg_postmaster_start_time()', 'timestamptz'],
      ['current_setting(text)', 'text'], ['current_setting(text, boolean)', 'text'], ['set_config(text, text, boolean)', 'text'],
      ['format(text)', 'text'], ['format(text, text)', 'text'], ['format(text, bigint)', 'text'], ['format(text, name)', 'text'],
      ['format(text, integer)', 'text'], ['row_number()', 'bigint'], ['gen_random_uuid()', 'uuid'],
      ['array_to_string(text[], text)', 'text'], ['unnest(text[])', 'setof text'], ['json_object_keys(json)', 'setof text'],
      ['jsonb_build_object(text, text)', 'jsonb'], ['pg_has_role(name, name, text)', 'boolean'],
      ['pg_advisory_xact_lock(integer, integer)', 'void'], ['pg_advisory_lock(integer, integer)', 'void'],
      ['pg_advisory_unlock(integer, integer)', 'boolean'],
      ['dblink_connect(text)', 'text'], ['dblink_connect(text, text)', 'text'], ['dblink_send_query(text, text)', 'integer'],
      ['dblink_is_busy(text)', 'integer'], ['dblink_get_result(text)', 'setof record'], ['dblink_get_result(text, boolean)', 'setof record'],
      ['dblink(text, text)', 'setof record'], ['dblink(text)', 'setof record'], ['dblink_exec(text, text)', 'text'],
      ['dblink_disconnect(text)', 'text'], ['dblink_get_connections()', 'text[]'], ['dblink_cancel_query(text)', 'text'],
      ['dblink_error_message(text)', 'text'],
    ];
    await db.sql(`create schema evil; grant usage on schema evil to public;
                  create sequence evil.hits; grant usage, update on sequence evil.hits to public;
                  create table evil.calls (what text); grant insert on evil.calls to public;
                  create function evil.hit(what text) returns void language plpgsql as $$
                  begin
                    perform pg_catalog.nextval('evil.hits');
                    insert into evil.calls values (what);
                    raise log 'evil hit: % as % (%)', what, current_user, pg_catalog.current_setting('application_name'); -- the server log keeps it
                  end $$;`);
    for (const [sig, ret] of fns) {
      await db.sql(`create function evil.${sig} returns ${ret} language plpgsql as $f$
                    begin perform evil.hit(${literal(sig)}); raise exception 'evil.% was called', ${literal(sig)}; end $f$`);
    }
    await db.sql(`create function evil.count_sf(bigint) returns bigint language plpgsql as $f$
                  begin perform evil.hit('count(*)'); raise exception 'evil.count(*) was called'; end $f$;
                  create aggregate evil.count(*) (sfunc = evil.count_sf, stype = bigint, initcond = '0');
                  create view evil.pg_stat_activity as select p.* from pg_catalog.pg_stat_activity p, lateral evil.now() as x;`);
    for (const [op, l, r] of [['=', 'integer', 'integer'], ['=', 'name', 'name'], ['=', 'oid', 'oid'], ['<=', 'bigint', 'integer'],
                              ['<>', 'timestamptz', 'timestamptz'], ['<>', 'name', 'name'], ['<>', 'text', 'text'], ['%', 'bigint', 'integer']] as const) {
      const fn = `op_${crypto.randomBytes(4).toString('hex')}`;
      await db.sql(`create function evil.${fn}(${l}, ${r}) returns ${op === '%' ? 'bigint' : 'boolean'} language plpgsql as $f$
                    begin perform evil.hit('operator ${op}'); raise exception 'evil operator % was called', '${op}'; end $f$;
                    create operator evil.${op} (leftarg = ${l}, rightarg = ${r}, function = evil.${fn})`);
    }
  });

  const hits = async () => {
    const [{ n }] = await db.sql(`select case when is_called then last_value else 0 end::int as n from evil.hits`);
    // evil.calls loses the calls whose statement failed: the server log has them all.
    const calls = (await db.server.readLog()).split('\n').filter((l) => l.includes('evil hit:')).map((l) => l.replace(/^.*evil hit: /, ''));
    return { n, calls };
  };
  // The steps' own SQL uses no function or operator that evil shadows: a task's own SQL does resolve names through
  // its submitter's search_path, as it would in her session. What must never resolve there is the engine's SQL.
  const steps = ['select pg_catalog.pg_sleep(0.2)', 'select id, v from things order by id', 'update things set v = v returning id, v',
                 'explain (costs off) select * from things', 'select id, id from things order by id',
                 'select pg_catalog.current_setting(\'search_path\') as sp'];

  async function runHostile(alice: Client) {
    assert.equal((await alice.query('select pg_catalog.current_setting($1) as p', ['search_path'])).rows[0].p, 'evil, pg_catalog, public');
    const ids = [
      Number((await alice.query('select bgtask.run_task($1::text[], $2::text, $3::jsonb) as id', [steps, 'hostile steps', '{"max_rows": 1}'])).rows[0].id),
      Number((await alice.query('select bgtask.run_task($1::text) as id', ['select id from things order by id'])).rows[0].id),
    ];
    for (const id of ids) {
      const t = await db.waitFor(id);
      assert.deepEqual(await hits(), { n: 0, calls: [] }, 'an evil.* function or operator was called');
      assert.equal(t.state, 'done', JSON.stringify(t.error));
      assert.equal(t.owner, 'alice');
    }
    const t = await db.waitFor(ids[0]);
    assert.deepEqual(t.steps.map((s) => s.capture), ['subquery', 'subquery', 'cte', 'explain', 'subquery', 'subquery']);
    assert.deepEqual(t.steps.map((s) => [s.resultRows, s.resultStored]), [[1, 1], [3, 1], [3, 1], [1, 1], [3, 1], [1, 1]]);
    assert.deepEqual((await db.sql(`select sp from bgtask_result.${t.steps[5].resultTable}`)).map((r) => r.sp), ['evil, pg_catalog, public'],
                     'the worker ran with the caller\'s search_path');
    const settings = (await db.sql('select settings from bgtask.tbl_task where id = $1', [ids[0]]))[0].settings;
    assert.equal(settings.search_path, 'evil, pg_catalog, public', 'the caller\'s search_path is what the worker gets');
    return ids;
  }

  test('set by the submitting session: the task runs normally and no evil.* is called', async () => {
    const alice = await db.client('alice');
    try {
      await alice.query('set search_path = evil, pg_catalog, public');
      await runHostile(alice);
      assert.equal((await alice.query('select pg_catalog.current_setting($1) as p', ['search_path'])).rows[0].p, 'evil, pg_catalog, public');
    } finally {
      await alice.end();
    }
  });

  test('set for the role (ALTER ROLE … SET), so every loopback session logs in with it: still nothing evil runs', async () => {
    await db.sql('alter role alice set search_path = evil, pg_catalog, public');
    try {
      const alice = await db.client('alice');
      try {
        await runHostile(alice);
      } finally {
        await alice.end();
      }
    } finally {
      await db.sql('alter role alice reset search_path');
    }
  });
});

describe('functions planted in a schema every role can create in', () => {
  test('bob\'s overloads in public (writable, as on PostgreSQL 14 by default, where dblink lives) never run as anyone else', async () => {
    // Each trap records who ran it and then does the real work, so nothing fails visibly: a quiet escalation.
    const traps: [string, string, string][] = [
      ['cardinality(text[])', 'integer', 'return pg_catalog.cardinality($1);'],
      ['cardinality(bigint[])', 'integer', 'return pg_catalog.cardinality($1);'],
      ['unnest(text[])', 'setof text', 'return query select * from pg_catalog.unnest($1);'],
      ['hashtext(name)', 'integer', 'return pg_catalog.hashtext($1::text);'],
      ['format(text, bigint)', 'text', 'return pg_catalog.format($1, $2);'],
      ['format(text, bigint, integer)', 'text', 'return pg_catalog.format($1, $2, $3);'],
      ['format(text, name)', 'text', 'return pg_catalog.format($1, $2);'],
      ['format(text, text)', 'text', 'return pg_catalog.format($1, $2);'],
      ['array_to_string(text[], text)', 'text', 'return pg_catalog.array_to_string($1, $2);'],
      ['jsonb_build_object(text, text)', 'jsonb', 'return pg_catalog.jsonb_build_object($1, $2);'],
    ];
    const bob = await db.client('bob');
    try {
      await bob.query('create table public.trap (who text, what text); grant insert on public.trap to public');
      for (const [sig, ret, body] of traps) {
        await bob.query(`create function public.${sig} returns ${ret} language plpgsql as $f$
                         begin insert into public.trap values (current_user, ${literal(sig)}); ${body} end $f$`);
      }
      // Control: the traps work when a query does resolve to them.
      await bob.query(`select public.cardinality(array['x'])`);
      assert.deepEqual((await bob.query('select who, what from public.trap')).rows, [{ who: 'bob', what: 'cardinality(text[])' }]);
      await bob.query('delete from public.trap');

      // Everything bgtask does, as alice, carol and the superuser.
      const ids = [await submitAs('alice', ['select 1 as a', 'select g from generate_series(1, 5) g'], { max_rows: 2 }),
                   await submitAs('postgres', 'select 1 as b')];
      const queued = await submitAs('alice', 'select pg_sleep(10)');
      assert.equal((await as('carol', 'select bgtask.cancel_task($1) as c', [queued]))[0].c, true);
      for (const id of ids) assert.equal((await db.waitFor(id)).state, 'done');
      await db.waitFor(queued);
      for (const r of ['alice', 'carol', 'postgres'] as const) {
        await as(r, 'select * from bgtask.list_tasks()');
        await as(r, 'select bgtask.reap()');
        await as(r, 'select bgtask.result_table($1, 1)', [ids[0]]);
      }
      await as('alice', 'select bgtask.set_password($1)', [db.password('alice')]);
      await db.sql('select bgtask.set_password($1)', [db.password('postgres')]);
      await as('carol', `select bgtask.purge('0 s')`);
      await db.sql(`select bgtask.purge('0 s')`);
      assert.deepEqual((await bob.query('select who, what from public.trap')).rows, [], 'bob\'s functions ran as someone else');
    } finally {
      for (const [sig] of traps) await bob.query(`drop function if exists public.${sig}`);
      await bob.query('drop table if exists public.trap');
      await bob.end();
    }
  });
});

describe('the loopback server and dblink', () => {
  test('in a database cloned from the template, run_task fails with what to run; after repair_loopback() tasks run there', async () => {
    const clone = 'bgtask_clone';
    await db.server.createDatabase(clone, db.database);
    const alice = await db.client('alice', clone);
    try {
      const e = await pgError(alice.query(`select bgtask.run_task('select 1')`));
      assert.equal(e.code, '55000', e.message);
      assert.match(e.hint ?? '', /bgtask\.repair_loopback\(\)/);
      assert.match(e.message, new RegExp(`not this database ${clone}`));
      assert.equal((await alice.query('select dblink_get_connections() as c')).rows[0].c, null, 'no link left open');

      const repaired = await db.server.query('select bgtask.repair_loopback() as m', [], clone);
      assert.match(repaired.rows[0].m, new RegExp(`database ${clone}`));
      const id = Number((await alice.query(`select bgtask.run_task('select current_database()::text as db') as id`)).rows[0].id);
      const r = await waitEndedIn(alice, id);
      assert.equal(r.state, 'done', JSON.stringify(r.error));
      const [{ t }] = (await alice.query('select bgtask.result_table($1, 1)::text as t', [id])).rows;
      assert.deepEqual((await alice.query(`select db from ${t}`)).rows, [{ db: clone }]);
    } finally {
      await alice.end();
      await db.server.dropDatabase(clone);
    }
  });

  test('in a database without the bgtask schema, run_task says the schema is missing', async () => {
    await db.server.createDatabase('bgtask_plain');
    const alice = await db.client('alice', 'bgtask_plain');
    try {
      const e = await pgError(alice.query(`select bgtask.run_task('select 1')`));
      assert.equal(e.code, '3F000');
      assert.match(e.message, /schema "bgtask" does not exist/);
    } finally {
      await alice.end();
      await db.server.dropDatabase('bgtask_plain');
    }
  });

  test('without dblink (dropped with CASCADE after install), run_task says dblink is not installed; re-applying the file repairs it', async () => {
    const name = 'bgtask_nodblink';
    await db.server.createDatabase(name);
    const su = await db.client('postgres', name);
    try {
      await installSchema(su);
      await su.query(migrations[migrations.length - 1].sql); // applied twice: harmless
      await su.query('select bgtask.set_password($1)', [db.password('postgres')]);
      await su.query('drop extension dblink cascade'); // takes the loopback server and every user mapping with it
      assert.deepEqual((await su.query(`select srvname from pg_foreign_server`)).rows, []);
      for (const c of [su, await db.client('alice', name)]) {
        try {
          const e = await pgError(c.query(`select bgtask.run_task('select 1')`));
          assert.equal(e.code, '42883');
          assert.match(e.message, /the dblink extension is not installed in database bgtask_nodblink/);
          assert.match(e.hint ?? '', /CREATE EXTENSION dblink/);
        } finally {
          if (c !== su) await c.end();
        }
      }
      assert.equal((await su.query('select count(*)::int as n from bgtask.tbl_task')).rows[0].n, 0);

      // Re-applying the file brings dblink and the server back; the passwords went with the CASCADE.
      await su.query(migrations[migrations.length - 1].sql);
      const alice = await db.client('alice', name);
      try {
        const e = await pgError(alice.query(`select bgtask.run_task('select 1')`));
        assert.equal(e.code, '28000');
        await alice.query('select bgtask.set_password($1)', [db.password('alice')]);
        const id = Number((await alice.query(`select bgtask.run_task('select 1 as one') as id`)).rows[0].id);
        assert.equal((await waitEndedIn(alice, id)).state, 'done');
      } finally {
        await alice.end();
      }
    } finally {
      await su.end();
      await db.server.dropDatabase(name);
    }
  });
});

function literal(s: string): string {
  return `'${s.replace(/'/g, "''")}'`;
}
