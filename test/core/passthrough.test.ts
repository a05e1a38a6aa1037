// SCRAM pass-through (sql/000002_scram_passthrough.sql), issue #4 item 9: on PostgreSQL 18 a role runs tasks
// with no password stored anywhere; roles that stored one keep working and keep having it checked; sessions that
// did not log in with SCRAM, and a password changed after login, get errors that say what to do; on 15 the
// function refuses with "needs PostgreSQL 18" and the rest of the schema works as before.
import assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Client, Pool, type ClientConfig } from 'pg';
import { BgtaskDb, startBgtaskDb, waitForTask } from '../harness/bgtaskDb';
import { PgServer, resolveBinDir, startServer } from '../harness/pgServer';
import { toTaskError } from '../../src/core/errors';
import { installSchema } from '../../src/core/installer';
import { latestVersion, migrations, queries } from '../../src/core/generated/sql';
import { TaskClient } from '../../src/core/taskClient';

interface PgError extends Error { code?: string; detail?: string; hint?: string; where?: string }

const REPO = path.resolve(__dirname, '..', '..');
let db: BgtaskDb;
const clients: Client[] = [];
const pools: Pool[] = [];
const passwords: Record<string, string> = {};
// The default fixture is 18 (CI's full suite); under BGTASK_PG_MAJOR=15 the 18-only part is skipped, and the
// part that runs on 15 starts its own server either way.
const fixtureMajor = resolveBinDir().major;

async function startFixture(): Promise<void> {
  // Every top-level statement goes to the log, so "no password in the log" means something.
  db = await startBgtaskDb({ settings: { log_statement: 'all' } });
  // All log in over TCP with scram-sha-256 like everyone, but over the unix socket erin logs in with the cleartext
  // 'password' method, which checks the same password but gives the session no SCRAM keys (as peer, trust,
  // cert, GSS and most poolers do not); gina logs in that way over TCP too.
  for (const r of ['erin', 'fred', 'gina', 'hal']) {
    passwords[r] = crypto.randomBytes(12).toString('base64url');
    await db.server.createRole(r, passwords[r]);
  }
  await db.sql('grant bgtask_user to erin, fred, gina, hal');
  const hba = path.join(db.server.dataDir, 'pg_hba.conf');
  fs.writeFileSync(hba, 'local all erin password\nhost all gina 127.0.0.1/32 password\n' + fs.readFileSync(hba, 'utf8'));
  await db.sql('select pg_reload_conf()');
}

after(async () => {
  for (const c of clients) await c.end().catch(() => undefined);
  for (const p of pools) await p.end();
  await db?.close();
});

function config(role: string, overTheSocket = false): ClientConfig {
  const c = db.server.connectionConfig(role, passwords[role] ?? db.password(role as 'alice'), db.database);
  return overTheSocket ? { ...c, host: db.server.socketDir } : c;
}

async function connect(role: string, overTheSocket = false): Promise<Client> {
  const c = new Client(config(role, overTheSocket));
  await c.connect();
  clients.push(c);
  return c;
}

function tasksOf(role: string, overTheSocket = false): TaskClient {
  const p = new Pool({ ...config(role, overTheSocket), max: 2 });
  pools.push(p);
  return new TaskClient(p);
}

async function pgError(p: Promise<unknown>): Promise<PgError> {
  return p.then(() => assert.fail('expected an error'), (e: PgError) => e);
}

/** The options of a role's mapping, as only a superuser sees them (pg_user_mapping, not the view). */
async function mappingOptions(role: string): Promise<string[] | null> {
  const rows = await db.sql(`select m.umoptions from pg_user_mapping m join pg_foreign_server s on s.oid = m.umserver
                             where s.srvname = 'bgtask_loopback' and m.umuser = $1::regrole::oid`, [role]);
  return rows.length ? [...rows[0].umoptions].sort() : null;
}

describe('SCRAM pass-through on PostgreSQL 18', { skip: fixtureMajor < 18 ? `the fixture is PostgreSQL ${fixtureMajor}` : false }, () => {
  before(startFixture);

  test('a role with no password stored enables it and runs tasks through supervisor, worker and a queued start', async () => {
    const erin = await connect('erin');
    const none = await pgError(erin.query(`select bgtask.run_task('select 1')`));
    assert.equal(none.code, '28000');
    assert.match(none.hint ?? '', /bgtask\.set_password/, 'the hint names set_password');
    assert.match(none.hint ?? '', /bgtask\.use_scram_passthrough\(\)/, 'and, on 18, pass-through');

    const before = (await erin.query(queries.authStatus)).rows[0].status;
    assert.deepEqual(before, { mapping: 'none', login_method: 'scram-sha-256', scram_passthrough_unavailable: null });
    const message = (await erin.query(queries.useScramPassthrough)).rows[0].message as string;
    assert.match(message, /role erin runs background tasks with SCRAM pass-through now: no password is stored/);
    assert.deepEqual(await mappingOptions('erin'), ['use_scram_passthrough=true', 'user=erin'], 'the mapping holds no password');
    assert.equal((await erin.query(queries.authStatus)).rows[0].status.mapping, 'scram_passthrough');
    assert.match((await erin.query(queries.useScramPassthrough)).rows[0].message, /pass-through now/, 'again: harmless');
    assert.deepEqual(await mappingOptions('erin'), ['use_scram_passthrough=true', 'user=erin']);

    // One slot: the second task waits queued and is started by the first one's supervisor, which logged in with
    // the keys it got from erin's session (a third hop), after the submitting client is gone.
    await db.sql(`insert into bgtask.role_settings (role_name, max_running) values ('erin', 1)`);
    const tasks = tasksOf('erin');
    const first = await tasks.submit(['select pg_sleep(0.3)', 'select current_user::text as who, 42 as answer']);
    const second = await tasks.submit('select session_user::text as who');
    await erin.end();
    const t1 = await waitForTask(tasks, first);
    assert.equal(t1.state, 'done', JSON.stringify(t1.error));
    assert.deepEqual((await tasks.readResultPage(first, 2, 0, 10)).rows, [['erin', '42']]);
    const t2 = await waitForTask(tasks, second);
    assert.equal(t2.state, 'done', JSON.stringify(t2.error));
    assert.deepEqual((await tasks.readResultPage(second, 1, 0, 10)).rows, [['erin']]);

    const log = await db.server.readLog();
    assert.match(log, /statement: select bgtask\.use_scram_passthrough\(\)/, 'statements are logged (control)');
    assert.ok(!log.includes(passwords.erin), 'erin\'s password is in the server log');
    assert.deepEqual(await mappingOptions('erin'), ['use_scram_passthrough=true', 'user=erin']);
  });

  test('a role that stored a password keeps working, and a wrong password is still refused on 18', async () => {
    const alice = tasksOf('alice');
    const id = await alice.submit('select current_user::text as who');
    assert.equal((await waitForTask(alice, id)).state, 'done');
    assert.ok((await mappingOptions('alice'))!.some((o) => o.startsWith('password=')));
    assert.ok(!(await mappingOptions('alice'))!.some((o) => o.startsWith('use_scram_passthrough')), 'pass-through stays per role');
    // With use_scram_passthrough on the server, a SCRAM session would connect with its keys and store this.
    const c = await connect('alice');
    const wrong = `wrong-${crypto.randomBytes(6).toString('hex')}`;
    const e = await pgError(c.query(queries.setPassword, [wrong]));
    assert.equal(e.code, '28P01');
    assert.ok((await mappingOptions('alice'))!.includes(`password=${db.password('alice')}`), 'the good password stays');
  });

  test('switching back and forth: set_password drops pass-through, use_scram_passthrough drops the password', async () => {
    const fred = await connect('fred');
    await fred.query(queries.setPassword, [passwords.fred]);
    assert.deepEqual(await mappingOptions('fred'), [`password=${passwords.fred}`, 'user=fred']);
    await fred.query(queries.useScramPassthrough);
    assert.deepEqual(await mappingOptions('fred'), ['use_scram_passthrough=true', 'user=fred']);
    // A wrong password over a pass-through mapping is tried as a password, refused, and changes nothing.
    const e = await pgError(fred.query(queries.setPassword, ['not-freds-password']));
    assert.equal(e.code, '28P01');
    assert.deepEqual(await mappingOptions('fred'), ['use_scram_passthrough=true', 'user=fred']);
    await fred.query(queries.setPassword, [passwords.fred]);
    assert.deepEqual(await mappingOptions('fred'), [`password=${passwords.fred}`, 'user=fred']);
    const tasks = tasksOf('fred');
    assert.equal((await waitForTask(tasks, await tasks.submit('select 1'))).state, 'done');
    await fred.query(queries.useScramPassthrough);
    assert.equal((await waitForTask(tasks, await tasks.submit('select 2'))).state, 'done');
  });

  test('a session that did not log in with SCRAM: refused with what to do, nothing stored', async () => {
    const gina = await connect('gina');
    assert.deepEqual((await gina.query(queries.authStatus)).rows[0].status, {
      mapping: 'none', login_method: 'password',
      scram_passthrough_unavailable: 'your session did not authenticate with SCRAM (peer, trust, cert, GSS or a pooler): store a password with bgtask.set_password instead',
    });
    const e = await pgError(gina.query(queries.useScramPassthrough));
    assert.equal(e.code, '28000');
    assert.match(e.message, /^your session did not authenticate with SCRAM \(peer, trust, cert, GSS or a pooler\): store a password with bgtask\.set_password instead; nothing was changed$/);
    assert.match(e.detail ?? '', /logged in with password/);
    assert.match(e.hint ?? '', /bgtask\.set_password/);
    assert.equal(await mappingOptions('gina'), null, 'no mapping was created');
    // The password way works from the same session.
    await gina.query(queries.setPassword, [passwords.gina]);
    const tasks = tasksOf('gina');
    assert.equal((await waitForTask(tasks, await tasks.submit('select 1'))).state, 'done');
  });

  test('a pass-through role submitting from a session without SCRAM keys gets noPassword with what to do', async () => {
    assert.deepEqual(await mappingOptions('erin'), ['use_scram_passthrough=true', 'user=erin']);
    const viaSocket = await connect('erin', true);
    assert.equal((await viaSocket.query('select system_user as s')).rows[0].s, 'password:erin');
    const e = await pgError(viaSocket.query(queries.submitText, ['select 1', null, '{}']));
    assert.equal(e.code, '28000');
    assert.match(e.message, /role erin has no password stored for background tasks, and this session did not authenticate with SCRAM/);
    assert.match(e.hint ?? '', /set_password/);
    assert.equal(toTaskError(e).reason, 'noPassword');
    assert.deepEqual((await db.sql(`select id from bgtask.tbl_task where owner = 'erin' and sql = 'select 1'`)), [], 'nothing was submitted');
    assert.equal((await viaSocket.query('select dblink_get_connections() as c')).rows[0].c, null, 'no link left open');
  });

  test('a password changed after login breaks pass-through for that session only, with a clear error', async () => {
    const hal = await connect('hal');
    await hal.query(queries.useScramPassthrough);
    const old = passwords.hal;
    passwords.hal = crypto.randomBytes(12).toString('base64url');
    try {
      await db.server.createRole('hal', passwords.hal); // ALTER ROLE … PASSWORD: a new salt, new keys
      const e = await pgError(hal.query(queries.submitText, ['select 1', null, '{}']));
      assert.equal(e.code, '28P01');
      assert.match(e.message, /refused the SCRAM pass-through login of role hal: its password changed after this session logged in/);
      assert.equal(toTaskError(e).reason, 'passwordRefused');
      const again = await pgError(hal.query(queries.useScramPassthrough));
      assert.equal(again.code, '28P01');
      assert.match(again.message, /nothing was changed$/);
      // A new session has the new keys.
      const tasks = tasksOf('hal');
      assert.equal((await waitForTask(tasks, await tasks.submit('select 1'))).state, 'done');
      assert.ok(!(await db.server.readLog()).includes(old));
    } finally {
      assert.ok(!(await db.server.readLog()).includes(passwords.hal));
    }
  });

  test('the owner of bgtask_loopback can veto pass-through on the server; the function says so', async () => {
    await db.sql(`alter server bgtask_loopback options (add use_scram_passthrough 'false')`);
    try {
      const c = await connect('fred');
      const e = await pgError(c.query(queries.useScramPassthrough));
      assert.equal(e.code, '42501');
      assert.equal(toTaskError(e).reason, 'notPermitted');
      assert.match(e.message, /SCRAM pass-through is switched off on server bgtask_loopback/);
      assert.match(e.hint ?? '', /DROP use_scram_passthrough/);
      assert.match((await c.query(queries.authStatus)).rows[0].status.scram_passthrough_unavailable, /switched off/);
    } finally {
      await db.sql(`alter server bgtask_loopback options (drop use_scram_passthrough)`);
    }
  });
});

describe('on PostgreSQL 15', () => {
  let server: PgServer;
  const ours: Array<Client | Pool> = [];
  before(async () => {
    server = await startServer({ binDir: path.join(REPO, 'node_modules', 'pg15', 'native', 'bin') });
  });
  after(async () => {
    for (const c of ours) await c.end().catch(() => undefined);
    await server?.stop();
  });

  test('every file installs (000002 too); use_scram_passthrough() refuses with "needs PostgreSQL 18"; passwords work', async () => {
    assert.equal(server.major, 15);
    await server.createDatabase('t15');
    const su = new Client(server.connectionConfig('postgres', server.superuser.password, 't15'));
    await su.connect();
    ours.push(su);
    assert.deepEqual((await installSchema(su)).to, latestVersion);
    assert.deepEqual((await su.query('select version, name from bgtask.schema_version order by 1')).rows,
      migrations.map((m) => ({ version: m.version, name: m.name })));
    // The server option does not exist before 18: nothing put it on the loopback server.
    assert.deepEqual((await su.query(`select srvoptions from pg_foreign_server where srvname = 'bgtask_loopback'`)).rows[0].srvoptions
      .filter((o: string) => o.startsWith('use_scram')), []);

    const pw = crypto.randomBytes(12).toString('base64url');
    await server.createRole('ivy', pw);
    await su.query('grant bgtask_user to ivy');
    const ivy = new Client(server.connectionConfig('ivy', pw, 't15'));
    await ivy.connect();
    ours.push(ivy);
    const none = await pgError(ivy.query(`select bgtask.run_task('select 1')`));
    assert.equal(none.code, '28000');
    assert.doesNotMatch(none.hint ?? '', /use_scram_passthrough/, 'not offered before 18');
    const e = await pgError(ivy.query(queries.useScramPassthrough));
    assert.equal(e.code, '0A000');
    assert.match(e.message, /^SCRAM pass-through needs PostgreSQL 18 or newer; this server is 15\./);
    assert.match(e.hint ?? '', /bgtask\.set_password/);
    assert.deepEqual((await su.query(`select umid from pg_user_mappings where usename = 'ivy'`)).rows, [], 'nothing stored');
    assert.deepEqual((await ivy.query(queries.authStatus)).rows[0].status, {
      mapping: 'none', login_method: null, scram_passthrough_unavailable: 'SCRAM pass-through needs PostgreSQL 18 or newer; this server is ' +
        (await su.query('show server_version')).rows[0].server_version,
    });

    await ivy.query(queries.setPassword, [pw]);
    assert.equal((await pgError(ivy.query(queries.setPassword, ['wrong-one']))).code, '28P01');
    const p = new Pool({ ...server.connectionConfig('ivy', pw, 't15'), max: 2 });
    ours.push(p);
    const tasks = new TaskClient(p);
    const t = await waitForTask(tasks, await tasks.submit(['select 1', 'select current_user::text as who']));
    assert.equal(t.state, 'done', JSON.stringify(t.error));
  });
});
