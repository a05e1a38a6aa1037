// Upgrades (issue #4 item 11): a database on schema version 1 with tasks in it — done, failed, one running and
// one queued behind it — is upgraded by the installer with every row kept, and the running and queued tasks still
// end done; installing twice is harmless; two installers at once, and an installer that read the version just
// before another one finished, corrupt nothing; a client older than the database gets schemaTooNew and changes
// nothing; a role on a database older than its client gets schemaTooOld with what to run.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Client } from 'pg';
import { BgtaskDb, startBgtaskDb, waitForTask } from '../harness/bgtaskDb';
import { waitUntil } from '../harness/wait';
import { TaskError } from '../../src/core/errors';
import { installSchema, schemaProblem, schemaStatus } from '../../src/core/installer';
import { latestVersion, migrations } from '../../src/core/generated/sql';
import { schemaFingerprint } from '../harness/catalog';

let db: BgtaskDb;
before(async () => {
  db = await startBgtaskDb();
});
after(async () => db?.close());

let dbCount = 0;
/** A new database with only migration 1 applied, as a DBA's psql -f of the first file would leave it. */
async function versionOneDatabase(): Promise<{ name: string; su: Client }> {
  const name = `upg_${++dbCount}`;
  await db.server.createDatabase(name);
  const su = await db.client('postgres', name);
  await su.query(migrations[0].sql);
  await su.query('select bgtask.set_password($1)', [db.password('postgres')]);
  return { name, su };
}


/** Every task and step row, and what the result tables hold, as the superuser sees them. */
async function taskRows(su: Client): Promise<unknown[]> {
  const tasks = (await su.query('select to_jsonb(t) as r from bgtask.tbl_task t order by id')).rows.map((r) => r.r);
  const steps = (await su.query('select to_jsonb(s) as r from bgtask.tbl_task_step s order by task_id, n')).rows.map((r) => r.r);
  const results = [];
  for (const s of steps as Array<{ task_id: number; n: number; result_table: string | null }>) {
    if (s.result_table) results.push((await su.query(`select json_agg(r order by _row) as rows from bgtask_result.${s.result_table} r`)).rows[0].rows);
  }
  return [tasks, steps, results];
}


describe('upgrading a version-1 database', () => {
  test('tasks of every kind are kept; the running one still ends done and the queued one still runs', async () => {
    const { name, su } = await versionOneDatabase();
    const alice = await db.client('alice', name);
    await alice.query('select bgtask.set_password($1)', [db.password('alice')]);
    await su.query(`insert into bgtask.role_settings (role_name, max_running) values ('alice', 1)`);
    const tasks = db.tasks('alice', name);

    const done = await tasks.submit('select 1 as one', { info: 'done before the upgrade' });
    assert.equal((await waitForTask(tasks, done)).state, 'done');
    const failed = await tasks.submit('select 1/0', { info: 'failed before the upgrade' });
    assert.equal((await waitForTask(tasks, failed)).state, 'failed');
    // The running task waits for a lock the test holds; the queued one waits for its only slot.
    const holder = await db.client('postgres', name);
    await holder.query('select pg_advisory_lock(4242)');
    const running = await tasks.submit([`do $$ begin perform pg_advisory_xact_lock(4242); end $$`, 'select 2 as two'], { info: 'running across the upgrade' });
    await waitUntil('the running task\'s worker to wait for the lock', async () =>
      (await su.query(`select 1 from pg_stat_activity where application_name = $1 and wait_event = 'advisory'`, [`bgtask worker ${running}`])).rowCount, 10_000);
    const queued = await tasks.submit('select 3 as three', { info: 'queued across the upgrade' });
    assert.equal((await tasks.get(queued))?.state, 'queued');
    assert.equal((await tasks.get(running))?.state, 'running');

    const rowsBefore = await taskRows(su);
    assert.equal((await schemaStatus(su)).state, 'outdated');
    assert.deepEqual(await installSchema(su), { from: 1, to: latestVersion, applied: migrations.slice(1).map((m) => m.name) });
    assert.equal((await schemaStatus(su)).state, 'ok');
    assert.deepEqual(await taskRows(su), rowsBefore, 'the upgrade changed task rows or results');
    assert.deepEqual((await su.query('select version from bgtask.schema_version order by 1')).rows.map((r) => r.version),
      migrations.map((m) => m.version));

    await holder.query('select pg_advisory_unlock(4242)');
    const r = await waitForTask(tasks, running);
    assert.equal(r.state, 'done', JSON.stringify(r.error));
    assert.deepEqual((await tasks.readResultPage(running, 2, 0, 10)).rows, [['2']]);
    const q = await waitForTask(tasks, queued);
    assert.equal(q.state, 'done', JSON.stringify(q.error));
    assert.deepEqual((await tasks.readResultPage(queued, 1, 0, 10)).rows, [['3']]);
    assert.deepEqual((await tasks.readResultPage(done, 1, 0, 10)).rows, [['1']], 'results from before the upgrade are readable');
    assert.equal((await tasks.get(failed))?.error?.sqlstate, '22012');
    // The password alice stored before the upgrade still works, and the new function is there.
    const after = await tasks.submit('select current_user::text as who');
    assert.equal((await waitForTask(tasks, after)).state, 'done');
    assert.equal((await alice.query(`select to_regprocedure('bgtask.use_scram_passthrough()') is not null as ok`)).rows[0].ok, true);
  });

  test('installing twice, or applying the new file as plain text twice (psql -f), changes nothing', async () => {
    const { name, su } = await versionOneDatabase();
    assert.deepEqual((await installSchema(su)).applied, migrations.slice(1).map((m) => m.name));
    const once = await schemaFingerprint(su);
    assert.deepEqual(await installSchema(su), { from: latestVersion, to: latestVersion, applied: [] });
    assert.deepEqual(await schemaFingerprint(su), once);
    // The newest file applies again (it is also the repair); an older one refuses to run over it.
    const newest = migrations[migrations.length - 1];
    await su.query(newest.sql);
    await su.query(newest.sql);
    for (const m of migrations.slice(0, -1)) {
      await assert.rejects(su.query(m.sql), new RegExp(`already at version ${latestVersion}, newer than ${m.name}`));
      await su.query('rollback'); // the file's BEGIN is left open by its failed statement, as in psql
    }
    assert.deepEqual(await schemaFingerprint(su), once, 'a second application changed something');
    const tasks = db.tasks('postgres', name);
    assert.equal((await waitForTask(tasks, await tasks.submit('select 1'))).state, 'done');
  });

  test('two installers at once on two connections: each version once, every object there, tasks run', async () => {
    const { name, su: a } = await versionOneDatabase();
    const b = await db.client('postgres', name);
    // Both installers read version 1 and wait inside the file for its lock, which the holder has.
    const holder = await db.client('postgres', name);
    await holder.query('select pg_advisory_lock(1650947169, 0)');
    const both = Promise.all([installSchema(a), installSchema(b)]);
    await waitUntil('both installers to wait for the lock', async () =>
      (await holder.query(`select count(*)::int as n from pg_stat_activity where datname = $1 and wait_event = 'advisory'`, [name])).rows[0].n >= 2, 10_000);
    await holder.query('select pg_advisory_unlock(1650947169, 0)');
    const results = await both;
    for (const r of results) assert.deepEqual([r.from, r.to], [1, latestVersion]);
    assert.deepEqual((await a.query('select version, name from bgtask.schema_version order by 1')).rows,
      migrations.map((m) => ({ version: m.version, name: m.name })));
    const single = await versionOneDatabase();
    await installSchema(single.su);
    assert.deepEqual((await schemaFingerprint(a)).filter((l) => !l.startsWith('version') && !l.startsWith('server')),
      (await schemaFingerprint(single.su)).filter((l) => !l.startsWith('version') && !l.startsWith('server')), 'not what one installer makes');
    const tasks = db.tasks('postgres', name);
    assert.equal((await waitForTask(tasks, await tasks.submit('select 1'))).state, 'done');
  });

  test('an installer that read the version before another one finished goes on instead of failing', async () => {
    // A fresh database: b reads version 0, then a installs every file before b sends 000001, which then finds
    // the schema at the newest version and refuses ("already at version N"). b must read again and skip.
    const name = `upg_race_${++dbCount}`;
    await db.server.createDatabase(name);
    const a = await db.client('postgres', name);
    const b = await db.client('postgres', name);
    const query = b.query.bind(b) as (...args: unknown[]) => Promise<unknown>;
    let raced = false;
    (b as unknown as { query: (...args: unknown[]) => Promise<unknown> }).query = async (...args: unknown[]) => {
      if (!raced && args[0] === migrations[0].sql) {
        raced = true;
        assert.equal((await installSchema(a)).to, latestVersion);
      }
      return query(...args);
    };
    const res = await installSchema(b);
    assert.ok(raced, 'the race was staged');
    assert.deepEqual(res, { from: 0, to: latestVersion, applied: [] });
    assert.deepEqual((await a.query('select version from bgtask.schema_version order by 1')).rows.map((r) => r.version),
      migrations.map((m) => m.version));
    assert.deepEqual((await b.query('select 1 as ok')).rows, [{ ok: 1 }], 'b\'s connection is usable');
  });

  test('a client older than the database (version 99 installed): schemaTooNew, and nothing changes', async () => {
    const { su } = await versionOneDatabase();
    await installSchema(su);
    await su.query(`insert into bgtask.schema_version (version, name) values (99, 'from_the_future')`);
    const before = await schemaFingerprint(su);
    const status = await schemaStatus(su);
    assert.deepEqual([status.state, status.installedVersion, status.latestVersion], ['newer', 99, latestVersion]);
    const err = await installSchema(su).then(() => assert.fail('installed over a newer schema'), (e: unknown) => e);
    assert.ok(err instanceof TaskError);
    assert.equal(err.reason, 'schemaTooNew');
    assert.match(err.message, /version 99, newer than this extension knows/);
    assert.match(err.hint ?? '', /Update the PG Background Tasks extension/);
    assert.deepEqual(await schemaFingerprint(su), before);
    // Each file guards itself too, for psql users: it refuses and rolls back.
    for (const m of migrations) {
      await assert.rejects(su.query(m.sql), /already at version 99/);
      await su.query('rollback');
    }
    assert.deepEqual(await schemaFingerprint(su), before);
  });

  test('a role on a database older than its client gets schemaTooOld with what to run; tasks still work there', async () => {
    const { name, su } = await versionOneDatabase();
    const alice = await db.client('alice', name);
    await alice.query('select bgtask.set_password($1)', [db.password('alice')]);
    const status = await schemaStatus(alice);
    assert.deepEqual([status.state, status.installedVersion, status.latestVersion, status.isSuperuser], ['outdated', 1, latestVersion, false]);
    const problem = schemaProblem(status);
    assert.ok(problem instanceof TaskError);
    assert.equal(problem.reason, 'schemaTooOld');
    assert.equal(problem.message, `The bgtask schema in this database is version 1, older than this extension needs (${latestVersion}).`);
    assert.match(problem.hint ?? '', /^To upgrade it, ask a superuser \(or the database's admin role\) to run "Install or Upgrade Schema"/);
    assert.ok((problem.hint ?? '').includes(`apply ${migrations.slice(1).map((m) => `sql/${m.name}.sql`).join(' then ')} with psql -v ON_ERROR_STOP=1 -f`), problem.hint);
    assert.match(problem.hint ?? '', /Tasks and stored passwords are kept/);
    assert.match(schemaProblem(await schemaStatus(su))?.hint ?? '', /^To upgrade it, run "Install or Upgrade Schema"/, 'a superuser is told to run it');
    assert.equal(schemaProblem({ ...status, state: 'ok', installedVersion: latestVersion }), undefined);
    assert.equal(schemaProblem({ ...status, state: 'missing', installedVersion: 0 })?.reason, 'noSchema');
    // What a version-1 database lacks fails as a missing function; what it has keeps working.
    await assert.rejects(alice.query('select bgtask.use_scram_passthrough()'), (e: Error & { code?: string }) => e.code === '42883');
    const tasks = db.tasks('alice', name);
    assert.equal((await waitForTask(tasks, await tasks.submit('select 1'))).state, 'done');
  });
});
