// The real-PostgreSQL harness itself: auth is scram only, dblink's async calls work, restart keeps the
// port, and no cluster (process or temp dir) outlives its test process.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Client, type ClientConfig } from 'pg';
import { resolveBinDir, startServer, type PgServer } from '../harness/pgServer';

async function withClient<T>(config: ClientConfig, fn: (c: Client) => Promise<T>): Promise<T> {
  const client = new Client(config);
  await client.connect();
  try { return await fn(client); } finally { await client.end(); }
}

/** Sends a password-less startup packet; returns the code of the server's first Authentication message (0 = ok). */
function firstAuthRequest(where: net.NetConnectOpts): Promise<number> {
  return new Promise((resolve, reject) => {
    const params = Buffer.from('user\0postgres\0database\0postgres\0\0');
    const head = Buffer.alloc(8);
    head.writeInt32BE(8 + params.length, 0);
    head.writeInt32BE(196608, 4); // protocol 3.0
    const sock = net.connect(where, () => sock.write(Buffer.concat([head, params])));
    let got = Buffer.alloc(0);
    sock.on('data', (d) => {
      got = Buffer.concat([got, d]);
      if (got.length < 9) return;
      sock.destroy();
      if (got[0] !== 0x52) reject(new Error(`expected an Authentication message, got '${String.fromCharCode(got[0])}': ${got.toString('latin1', 5)}`));
      else resolve(got.readInt32BE(5));
    });
    sock.on('error', reject);
  });
}

function pidAlive(pid: number): boolean {
  try { process.kill(pid, 0); return true; } catch (e) { return (e as NodeJS.ErrnoException).code === 'EPERM'; }
}

async function waitUntil(what: string, cond: () => boolean, ms = 10_000): Promise<void> {
  for (const end = Date.now() + ms; !cond();) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('pgServer harness', () => {
  let server: PgServer;
  let sigkilledDir: string | undefined;
  let startMs = 0;
  before(async () => {
    const t0 = Date.now();
    server = await startServer();
    startMs = Date.now() - t0;
  });
  after(() => server?.stop());

  test('resolveBinDir finds binaries of the expected major', (t) => {
    t.diagnostic(`PostgreSQL ${server.major} from ${server.binDir} ready in ${startMs} ms on port ${server.port}`);
    const { binDir, major } = resolveBinDir();
    for (const b of ['initdb', 'pg_ctl', 'postgres']) assert.ok(fs.existsSync(path.join(binDir, b)), b);
    assert.equal(major, server.major);
    if (!process.env.BGTASK_PGBIN) assert.equal(major, Number(process.env.BGTASK_PG_MAJOR || 18));
  });

  test('resolveBinDir fails loudly on a wrong directory', () => {
    const saved = process.env.BGTASK_PGBIN;
    process.env.BGTASK_PGBIN = '/nonexistent/bin';
    try { assert.throws(() => resolveBinDir(), /binaries missing in \/nonexistent\/bin: initdb, pg_ctl, postgres/); }
    finally { if (saved === undefined) delete process.env.BGTASK_PGBIN; else process.env.BGTASK_PGBIN = saved; }
  });

  test('superuser logs in with scram over TCP and over the unix socket', async () => {
    const { user, password } = server.superuser;
    const tcp = await withClient(server.connectionConfig(user, password), (c) =>
      c.query("select current_user, setting from pg_settings where name = 'password_encryption'"));
    assert.deepEqual(tcp.rows[0], { current_user: 'postgres', setting: 'scram-sha-256' });
    const sock = await withClient({ host: server.socketDir, port: server.port, user, password, database: 'postgres' },
      (c) => c.query('select 1 as one'));
    assert.equal(sock.rows[0].one, 1);
    const stored = await server.query("select rolpassword from pg_authid where rolname = 'postgres'");
    assert.match(stored.rows[0].rolpassword, /^SCRAM-SHA-256\$/);
  });

  test('a created role logs in; createRole is idempotent and stores only a verifier', async () => {
    await server.createRole('harness_alice', "pa'ss\\word", 'CREATEDB');
    await server.createRole('harness_alice', "pa'ss\\word", 'CREATEDB');
    const r = await withClient(server.connectionConfig('harness_alice', "pa'ss\\word"), (c) =>
      c.query('select current_user, rolcreatedb, rolsuper from pg_roles where rolname = current_user'));
    assert.deepEqual(r.rows[0], { current_user: 'harness_alice', rolcreatedb: true, rolsuper: false });
    const stored = await server.query("select rolpassword from pg_authid where rolname = 'harness_alice'");
    assert.match(stored.rows[0].rolpassword, /^SCRAM-SHA-256\$4096:/);
  });

  test('a wrong password is refused', async () => {
    await assert.rejects(withClient(server.connectionConfig('postgres', 'wrong'), (c) => c.query('select 1')),
      /password authentication failed for user "postgres"/);
    await assert.rejects(withClient(server.connectionConfig('harness_alice', 'wrong'), (c) => c.query('select 1')),
      /password authentication failed/);
  });

  test('a password-less connection is refused: the server demands SCRAM (no trust anywhere)', async () => {
    // Raw protocol, because pg fails client-side without a password and leaves the socket open, which keeps
    // a backend in authentication for authentication_timeout (60 s) and blocks DROP DATABASE ... WITH (FORCE).
    for (const where of [{ host: server.host, port: server.port }, { path: path.join(server.socketDir, `.s.PGSQL.${server.port}`) }]) {
      assert.equal(await firstAuthRequest(where), 10, `AuthenticationSASL expected from ${JSON.stringify(where)}`);
    }
    const hba = fs.readFileSync(path.join(server.dataDir, 'pg_hba.conf'), 'utf8');
    assert.doesNotMatch(hba, /trust/);
  });

  test('dblink: async connect, send_query, is_busy, get_result round trip', async () => {
    await server.query('create extension if not exists dblink');
    const { password } = server.superuser;
    const rows = await withClient(server.connectionConfig('postgres', password), async (c) => {
      const conn = `hostaddr=127.0.0.1 port=${server.port} dbname=postgres user=postgres password=${password}`;
      await c.query("select dblink_connect('h', $1)", [conn]);
      assert.equal((await c.query("select dblink_send_query('h', 'select pg_sleep(0.2), 42 as answer') as sent")).rows[0].sent, 1);
      let busy = 1;
      let polls = 0;
      for (; busy === 1 && polls < 200; polls++) {
        busy = (await c.query("select dblink_is_busy('h') as busy")).rows[0].busy;
        if (busy) await new Promise((r) => setTimeout(r, 20));
      }
      assert.equal(busy, 0);
      assert.ok(polls > 1, 'the query should still have been running at the first poll');
      const result = await c.query("select * from dblink_get_result('h') as t(slept text, answer int)");
      await c.query("select dblink_disconnect('h')");
      return result.rows;
    });
    assert.deepEqual(rows, [{ slept: '', answer: 42 }]);
  });

  test('createDatabase from a busy template, dropDatabase', async () => {
    await server.createDatabase('harness_tpl');
    const busy = new Client(server.connectionConfig('postgres', server.superuser.password, 'harness_tpl'));
    await busy.connect();
    busy.on('error', () => { /* terminated by createDatabase on purpose */ });
    await server.createDatabase('harness_copy', 'harness_tpl');
    const names = async () => (await server.query("select datname from pg_database where datname like 'harness_%' order by 1")).rows.map((r) => r.datname);
    assert.deepEqual(await names(), ['harness_copy', 'harness_tpl']);
    await server.dropDatabase('harness_copy');
    await server.dropDatabase('harness_tpl');
    await server.dropDatabase('harness_tpl');
    assert.deepEqual(await names(), []);
    await busy.end().catch(() => undefined);
  });

  test('restart keeps the port and the data; the log is readable', async (t) => {
    const port = server.port;
    for (const mode of ['fast', 'immediate'] as const) {
      const before = server.pid;
      const t0 = Date.now();
      await server.restart(mode);
      t.diagnostic(`restart(${mode}) took ${Date.now() - t0} ms`);
      assert.equal(server.port, port);
      assert.notEqual(server.pid, before);
      assert.equal((await server.query("select count(*)::int as n from pg_roles where rolname = 'harness_alice'")).rows[0].n, 1);
    }
    const log = await server.readLog();
    assert.match(log, /database system is ready to accept connections/);
    assert.match(log, /received fast shutdown request/);
    assert.doesNotMatch(log, new RegExp(server.superuser.password.replace(/[-_]/g, '\\$&')));
  });

  test('no cluster outlives its process: exit, SIGTERM, SIGKILL', async () => {
    const harness = path.resolve(__dirname, '..', 'harness', 'pgServer.ts');
    const script = (how: string) => `require(${JSON.stringify(harness)}).startServer().then((s) => {
      console.log(JSON.stringify({ pid: s.pid, dataDir: s.dataDir }));
      ${how === 'exit' ? 'process.exit(3)' : `process.kill(process.pid, '${how}')`};
      setInterval(() => {}, 1000);
    });`;
    await Promise.all(['exit', 'SIGTERM', 'SIGKILL'].map(async (how) => {
      const child = spawn(process.execPath, ['--import', 'tsx', '-e', script(how)],
        { stdio: ['ignore', 'pipe', 'inherit'] });
      let out = '';
      child.stdout.on('data', (d) => { out += d; });
      await new Promise((r) => child.on('close', r));
      const { pid, dataDir } = JSON.parse(out);
      await waitUntil(`postmaster ${pid} to die after ${how}`, () => !pidAlive(pid));
      // A SIGKILLed process cannot clean up; the next startServer() sweeps its dir (checked below).
      if (how === 'SIGKILL') sigkilledDir = path.dirname(dataDir);
      else assert.equal(fs.existsSync(dataDir), false, `${how}: ${dataDir} left behind`);
    }));
  });

  test('settings are applied; stale dirs are swept; stop removes the data dir and is idempotent', async () => {
    const extra = await startServer({ settings: { application_name: "it's \\ quoted" } });
    if (sigkilledDir) assert.equal(fs.existsSync(sigkilledDir), false, `${sigkilledDir} not swept`);
    assert.equal((await extra.query('show application_name')).rows[0].application_name, "it's \\ quoted");
    const pid = extra.pid!;
    await extra.stop();
    await extra.stop();
    assert.equal(fs.existsSync(extra.dataDir), false);
    assert.equal(fs.existsSync(path.dirname(extra.dataDir)), false);
    assert.equal(pidAlive(pid), false);
  });
});
