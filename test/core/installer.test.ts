// The installer against fresh databases of a real server: status, install, re-install, two installers at once, a
// schema newer than this build, an ordinary role, and the migration file applied as plain text (psql -f) twice.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Client } from 'pg';
import { BgtaskDb, startBgtaskDb } from '../harness/bgtaskDb';
import { startServer } from '../harness/pgServer';
import { TaskError } from '../../src/core/errors';
import { installSchema, schemaStatus } from '../../src/core/installer';
import { latestVersion, migrations } from '../../src/core/generated/sql';
import { schemaFingerprint } from '../harness/catalog';

let db: BgtaskDb;
before(async () => {
  db = await startBgtaskDb();
});
after(async () => db?.close());

let dbCount = 0;
/** A new empty database (from template1, so without dblink or bgtask) and a superuser client on it. */
async function freshDatabase(): Promise<{ name: string; su: Client }> {
  const name = `inst_${++dbCount}`;
  await db.server.createDatabase(name);
  return { name, su: await db.client('postgres', name) };
}

/** Runs a task as the superuser in `database` and returns its final state (the install works end to end). */
async function runTask(database: string, su: Client): Promise<string> {
  await su.query('select bgtask.set_password($1)', [db.server.superuser.password]);
  const tasks = db.tasks('postgres', database);
  const id = await tasks.submit('select current_database() as db');
  const t = await db.waitFor(id, { database });
  if (t.state === 'done') assert.deepEqual((await tasks.readResultPage(id, 1, 0, 1)).rows, [[database]]);
  return t.state;
}

let reference: string[] = [];

describe('installSchema', () => {
  test('a fresh database is missing the schema; install applies every migration and the status is ok', async () => {
    const { name, su } = await freshDatabase();
    const before = await schemaStatus(su);
    assert.deepEqual({ ...before, serverVersionNum: Math.floor(before.serverVersionNum / 10000) }, {
      state: 'missing', installedVersion: 0, latestVersion, dblinkInstalled: null, dblinkAvailable: true,
      // Roles are cluster-wide: the fixture's database already made bgtask_user, and a superuser is in every role.
      serverVersionNum: db.server.major, inRecovery: false, currentUser: 'postgres', isSuperuser: true, isBgtaskUser: true,
    });
    assert.ok(latestVersion >= 1 && latestVersion === migrations.length);

    const notices: string[] = [];
    const res = await installSchema(su, { trace: () => undefined, info: (m) => notices.push(m), warn: (m) => notices.push(m), error: () => undefined });
    assert.deepEqual(res, { from: 0, to: latestVersion, applied: migrations.map((m) => m.name) });
    assert.ok(notices.some((m) => m.includes(migrations[0].name)), 'the log says what was applied');
    assert.equal(su.listenerCount('notice'), 0, 'the installer removes its notice listener');

    const after = await schemaStatus(su);
    assert.equal(after.state, 'ok');
    assert.equal(after.installedVersion, latestVersion);
    assert.match(after.dblinkInstalled ?? '', /^\d+\.\d+$/);
    assert.equal(after.isBgtaskUser, true, 'a superuser is a member of every role');
    assert.equal(await runTask(name, su), 'done');
    reference = await schemaFingerprint(su, true);
    assert.ok(reference.some((l) => l.startsWith('proc bgtask.run_task(text,text,jsonb)')));
    assert.ok(reference.some((l) => l.startsWith('policy bgtask.tbl_task task_owner')));

    // Installing again is harmless: nothing applied, not one object or row changed.
    const exact = await schemaFingerprint(su);
    assert.deepEqual(await installSchema(su), { from: latestVersion, to: latestVersion, applied: [] });
    assert.deepEqual(await schemaFingerprint(su), exact);
  });

  test('the migration file applied as plain text twice (psql -f) works, keeps tasks and mappings, and equals the installer', async () => {
    const { name, su } = await freshDatabase();
    await su.query(migrations[0].sql);
    assert.equal((await schemaStatus(su)).state, migrations.length === 1 ? 'ok' : 'outdated');
    assert.equal(await runTask(name, su), 'done');
    const once = await schemaFingerprint(su);
    const [{ n: tasksBefore }] = (await su.query('select count(*)::int as n from bgtask.tbl_task')).rows;

    await su.query(migrations[0].sql);
    assert.deepEqual(await schemaFingerprint(su), once, 'the second application changed something');
    assert.equal((await su.query('select count(*)::int as n from bgtask.tbl_task')).rows[0].n, tasksBefore);
    assert.equal(await runTask(name, su), 'done', 'tasks still run after the second application');
    if (migrations.length === 1) assert.deepEqual(await schemaFingerprint(su, true), reference);
  });

  test('two installers at once on two connections both succeed and install exactly once', async () => {
    const { su: a } = await freshDatabase();
    const name = (await a.query('select current_database() as d')).rows[0].d as string;
    const b = await db.client('postgres', name);
    // Hold the migration's own lock so that both installers are inside the file, waiting, before either runs it.
    const holder = await db.client('postgres', name);
    await holder.query('select pg_advisory_lock(1650947169, 0)');
    const both = Promise.all([installSchema(a), installSchema(b)]);
    const deadline = Date.now() + 10_000;
    while ((await holder.query(`select count(*)::int as n from pg_stat_activity where datname = $1 and wait_event = 'advisory'`, [name])).rows[0].n < 2) {
      assert.ok(Date.now() < deadline, 'both installers should be waiting for the lock');
      await new Promise((r) => setTimeout(r, 10));
    }
    await holder.query('select pg_advisory_unlock(1650947169, 0)');
    const results = await both;
    for (const r of results) assert.equal(r.to, latestVersion);
    assert.deepEqual((await a.query('select version from bgtask.schema_version')).rows, migrations.map((m) => ({ version: m.version })));
    assert.equal((await schemaStatus(b)).state, 'ok');
    assert.deepEqual(await schemaFingerprint(a, true), reference);
  });

  test('a schema newer than this build: schemaTooNew, and nothing changes', async () => {
    const { su } = await freshDatabase();
    await installSchema(su);
    await su.query(`insert into bgtask.schema_version (version, name) values ($1, 'from_the_future')`, [latestVersion + 1]);
    const status = await schemaStatus(su);
    assert.equal(status.state, 'newer');
    assert.equal(status.installedVersion, latestVersion + 1);
    const before = await schemaFingerprint(su);
    const err = await installSchema(su).then(() => assert.fail('installed over a newer schema'), (e: unknown) => e);
    assert.ok(err instanceof TaskError);
    assert.equal(err.reason, 'schemaTooNew');
    assert.match(err.message, new RegExp(`version ${latestVersion + 1}`));
    assert.match(err.hint ?? '', /Update/);
    assert.deepEqual(await schemaFingerprint(su), before);
    // The file guards itself too, for psql users: it refuses and rolls back.
    await assert.rejects(su.query(migrations[0].sql), /already at version/);
    await su.query('rollback');
    assert.deepEqual(await schemaFingerprint(su), before);
  });

  test('an ordinary role cannot install: notPermitted with a clear message, nothing created, the connection usable', async () => {
    const { su, name } = await freshDatabase();
    const alice = await db.client('alice', name);
    const status = await schemaStatus(alice);
    assert.deepEqual([status.state, status.isSuperuser, status.currentUser], ['missing', false, 'alice']);
    const err = await installSchema(alice).then(() => assert.fail('alice installed the schema'), (e: unknown) => e);
    assert.ok(err instanceof TaskError);
    assert.equal(err.reason, 'notPermitted');
    assert.equal(err.sqlstate, '42501');
    assert.match(err.message, /needs a superuser/);
    assert.match(err.message, /permission denied/);
    assert.deepEqual((await alice.query('select 1 as ok')).rows, [{ ok: 1 }], 'the failed transaction was ended');
    assert.deepEqual((await su.query(`select nspname from pg_namespace where nspname like 'bgtask%'`)).rows, []);
    assert.deepEqual((await su.query(`select extname from pg_extension where extname = 'dblink'`)).rows, []);
  });

  test('status as a member of bgtask_user and as a role outside it, on an installed database', async () => {
    const alice = await db.client('alice', db.database);
    const s = await schemaStatus(alice);
    assert.deepEqual([s.state, s.installedVersion, s.isBgtaskUser, s.isSuperuser], ['ok', latestVersion, true, false]);
    const pw = 'frank-' + Math.random().toString(36).slice(2);
    await db.server.createRole('frank', pw);
    const frank = new Client(db.server.connectionConfig('frank', pw, db.database));
    await frank.connect();
    const err = await schemaStatus(frank).then(() => assert.fail('status without rights on the schema'), (e: unknown) => e)
      .finally(() => frank.end());
    assert.ok(err instanceof TaskError, String(err));
    assert.equal(err.reason, 'notPermitted');
    assert.match(err.hint ?? '', /grant bgtask_user to frank/i);
  });

  test('first installs into two databases of one cluster at the same time both succeed',
    async () => {
      // Its own server: on the fixture's, bgtask_user and bgtask_admin exist already.
      const server = await startServer();
      try {
        await server.createDatabase('one');
        await server.createDatabase('two');
        const [a, b] = [new Client(server.connectionConfig('postgres', server.superuser.password, 'one')),
          new Client(server.connectionConfig('postgres', server.superuser.password, 'two'))];
        await a.connect();
        await b.connect();
        try {
          const results = await Promise.allSettled([installSchema(a), installSchema(b)]);
          assert.deepEqual(results.map((r) => (r.status === 'rejected' ? String(r.reason) : 'ok')), ['ok', 'ok']);
        } finally {
          await a.end();
          await b.end();
        }
      } finally {
        await server.stop();
      }
    });
});
