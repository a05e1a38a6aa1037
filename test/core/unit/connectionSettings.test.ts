// connectionSettings: libpq URI and keyword/value parsing, PG* precedence, defaults, sslmode mapping, the password
// lookup order (.pgpass through the pgpass package), and that the password never leaks. No database needed.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { PassThrough } from 'node:stream';
import * as util from 'node:util';
import { after, before, describe, test } from 'node:test';
import { Client } from 'pg';
import * as pgpass from 'pgpass/lib/helper';
import {
  ConnectionSettingsError, parseConnectionUri, resolveConnection, type ConnectionSpec, type ResolvedConnection,
} from '../../../src/core/connectionSettings';

const SECRET = 'Zq7-s3cret-Pw';
let tmp = '';
let savedPgPassword: string | undefined;

before(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'conn-settings-'));
  // The pgpass package skips the file whenever process.env has PGPASSWORD, whatever env we pass in.
  savedPgPassword = process.env.PGPASSWORD;
  delete process.env.PGPASSWORD;
});
after(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
  if (savedPgPassword !== undefined) process.env.PGPASSWORD = savedPgPassword;
});

function writeFile(name: string, text: string, mode: number): string {
  const file = path.join(tmp, name);
  fs.writeFileSync(file, text);
  fs.chmodSync(file, mode); // explicit: the umask must not decide the test
  return file;
}

/** Resolves with a TCP host and an empty home, so nothing on this machine (root.crt, ~/.pgpass) leaks into the test. */
function resolveTcp(spec: ConnectionSpec, env: NodeJS.ProcessEnv = {}, opts: Parameters<typeof resolveConnection>[2] = {}): ResolvedConnection {
  return resolveConnection({ host: 'db.example.com', ...spec }, env, { homedir: tmp, ...opts });
}

async function passwordOf(conn: ResolvedConnection): Promise<string> {
  const pw = conn.toPgConfig().password;
  assert.equal(typeof pw, 'function');
  return (pw as () => Promise<string>)();
}

describe('parseConnectionUri: URIs', () => {
  test('decodes every part of a full URI and keeps the password non-enumerable', () => {
    const p = parseConnectionUri(`postgresql://al%20ice:${SECRET}%40x@db.example.com:6543/my%2Fdb?sslmode=verify-full&application_name=t%C3%A9st`);
    assert.deepEqual({ ...p }, { user: 'al ice', host: 'db.example.com', port: 6543, database: 'my/db', sslmode: 'verify-full', applicationName: 'tést' });
    assert.equal(p.password, `${SECRET}@x`);
    assert.equal(Object.keys(p).includes('password'), false);
  });

  test('accepts postgres:// too', () => {
    assert.deepEqual(parseConnectionUri('postgres://bob@h/d'), { user: 'bob', host: 'h', database: 'd' });
  });

  test('IPv6 literals lose their brackets, with or without a port', () => {
    assert.deepEqual(parseConnectionUri('postgresql://[::1]:5433/db'), { host: '::1', port: 5433, database: 'db' });
    assert.deepEqual(parseConnectionUri('postgresql://[2001:db8::7]'), { host: '2001:db8::7' });
  });

  test('a percent-encoded socket directory is a host', () => {
    assert.deepEqual(parseConnectionUri('postgresql://%2Fvar%2Frun%2Fpostgresql/db'), { host: '/var/run/postgresql', database: 'db' });
    assert.deepEqual(parseConnectionUri('postgresql:///db?host=%2Ftmp'), { host: '/tmp', database: 'db' });
  });

  test('query parameters override the parts before them', () => {
    assert.deepEqual(parseConnectionUri('postgresql://u@h1:1/d1?host=h2&port=2&dbname=d2&user=u2'), { user: 'u2', host: 'h2', port: 2, database: 'd2' });
  });

  test('empty parts are left unset, as libpq does', () => {
    assert.deepEqual(parseConnectionUri('postgresql://'), {});
    assert.deepEqual(parseConnectionUri('postgresql:///db'), { database: 'db' });
    assert.deepEqual(parseConnectionUri('postgresql://@h:/'), { host: 'h' });
    const p = parseConnectionUri('postgresql://u:@h/?');
    assert.equal(p.password, undefined);
    assert.deepEqual(p, { user: 'u', host: 'h' });
    assert.deepEqual(parseConnectionUri(''), {});
  });

  test('ssl=true means sslmode=require, other keywords land in options, one trailing & is fine', () => {
    assert.deepEqual(parseConnectionUri('postgresql://h?ssl=true&connect_timeout=10&hostaddr=10.0.0.1&'),
      { host: 'h', sslmode: 'require', options: { connect_timeout: '10', hostaddr: '10.0.0.1' } });
  });
});

describe('parseConnectionUri: keyword/value strings', () => {
  test('plain, spaced, quoted and escaped values', () => {
    const p = parseConnectionUri(String.raw`host=h  port = 5433 dbname='my \'db\' \\x' user=a\ b sslmode=require application_name=''`);
    assert.deepEqual(p, { host: 'h', port: 5433, database: String.raw`my 'db' \x`, user: 'a b', sslmode: 'require' });
  });

  test('password is hidden; later keywords win; unmapped keywords go to options', () => {
    const p = parseConnectionUri(`password='${SECRET}' host=a host=b options='-c search_path=x' passfile=/p`);
    assert.equal(p.password, SECRET);
    assert.deepEqual(p, { host: 'b', options: { options: '-c search_path=x', passfile: '/p' } });
  });
});

describe('parseConnectionUri: malformed input', () => {
  const cases: [string, RegExp][] = [
    ['postgresql://[::1/db', /missing "\]"/],
    ['postgresql://[]/db', /IPv6 host address may not be empty/],
    ['postgresql://[::1]x/db', /unexpected character "x" at position 19 in the URI/],
    ['postgresql://h/d%zz', /invalid percent-encoded token in the URI database/],
    ['postgresql://h/d%00', /forbidden value %00/],
    ['postgresql://h/d?sslmode', /missing "=" in URI query parameter #1/],
    ['postgresql://h/d?sslmode=disable&&port=1', /missing "=" in URI query parameter #2/],
    ['postgresql://h/d?sslmode=a=b', /extra "=" in URI query parameter "sslmode"/],
    ['postgresql://h/d?foo=1', /invalid URI query parameter "foo"/],
    ['postgresql://h:abc/d', /invalid port number: "abc"/],
    ['postgresql://h:0/d', /invalid port number: "0"/],
    ['postgresql://h:65536/d', /invalid port number: "65536"/],
    ['postgresql://h/d?sslmode=on', /invalid sslmode value: "on"/],
    ['postgresql://h1,h2/d', /multiple hosts in "host" are not supported/],
    ['host=h dbname=\'d', /unterminated quoted string/],
    ['host=h dbname', /missing "=" after "dbname"/],
    ['mydb', /expected keyword=value at position 1/],
    ['hots=h', /invalid connection option "hots"/],
    ['service=prod', /pg_service.conf/],
    ['hostaddr=1.1.1.1,2.2.2.2', /multiple hosts in "hostaddr"/],
  ];
  for (const [input, message] of cases) {
    test(`rejects ${input}`, () => {
      assert.throws(() => parseConnectionUri(input), (e: unknown) => {
        assert.ok(e instanceof ConnectionSettingsError);
        assert.equal(e.name, 'ConnectionSettingsError');
        assert.match(e.message, message);
        return true;
      });
    });
  }

  test('error messages never quote a password', () => {
    for (const input of [`postgresql://u:${SECRET}%zz@h/d`, `postgresql://u:${SECRET}%00@h/d`, `host=h ${SECRET}`, `postgresql://h/?${SECRET}`]) {
      assert.throws(() => parseConnectionUri(input), (e: unknown) => e instanceof ConnectionSettingsError && !e.message.includes(SECRET));
    }
  });
});

describe('resolveConnection: precedence and defaults', () => {
  const env = { PGHOST: 'envhost', PGPORT: '7000', PGDATABASE: 'envdb', PGUSER: 'envuser', PGSSLMODE: 'disable', PGAPPNAME: 'envapp' };
  const pick = (c: ResolvedConnection) => [c.host, c.port, c.database, c.user, c.sslmode, c.applicationName];

  test('PG* environment fills what nothing else gives', () => {
    assert.deepEqual(pick(resolveConnection({}, env)), ['envhost', 7000, 'envdb', 'envuser', 'disable', 'envapp']);
  });

  test('the URI beats the environment', () => {
    const c = resolveConnection({ uri: 'postgresql://uriuser@urihost:7001/uridb?sslmode=allow&application_name=uriapp' }, env);
    assert.deepEqual(pick(c), ['urihost', 7001, 'uridb', 'uriuser', 'allow', 'uriapp']);
  });

  test('explicit fields beat the URI', () => {
    const c = resolveConnection({ uri: 'postgresql://uriuser@urihost:7001/uridb?sslmode=allow&application_name=uriapp',
      host: 'h', port: 7002, database: 'd', user: 'u', sslmode: 'require', applicationName: 'a' }, env);
    assert.deepEqual(pick(c), ['h', 7002, 'd', 'u', 'require', 'a']);
  });

  test('empty strings count as unset', () => {
    assert.deepEqual(pick(resolveConnection({ host: '', uri: '' }, { ...env, PGDATABASE: '' })), ['envhost', 7000, 'envuser', 'envuser', 'disable', 'envapp']);
  });

  test('defaults: the socket directory if present, 5432, the OS user, database = user, prefer', () => {
    const c = resolveConnection({}, {});
    const user = os.userInfo().username;
    const host = fs.existsSync('/var/run/postgresql') ? '/var/run/postgresql' : 'localhost';
    assert.deepEqual(pick(c), [host, 5432, user, user, 'prefer', undefined]);
    assert.equal(c.label, `${user}@${host}:5432/${user}`);
    assert.equal(c.connectTimeout, 0);
  });

  test('database defaults to the resolved user, not the OS user', () => {
    assert.equal(resolveConnection({ uri: 'postgresql://alice@h' }, {}).database, 'alice');
  });

  test('label brackets IPv6 hosts and carries the spec name through', () => {
    const c = resolveConnection({ name: 'prod', uri: 'postgresql://u@[::1]:5433/d' }, {});
    assert.equal(c.label, 'u@[::1]:5433/d');
    assert.equal(String(c), 'u@[::1]:5433/d');
    assert.equal(c.name, 'prod');
  });

  test('hostaddr is dialled, host stays the name', () => {
    const c = resolveTcp({ sslmode: 'verify-full', uri: 'postgresql://u@/d?sslrootcert=system' }, { PGHOSTADDR: '10.0.0.7' });
    assert.equal(c.host, 'db.example.com');
    assert.equal(c.hostaddr, '10.0.0.7');
    const config = c.toPgConfig();
    assert.equal(config.host, '10.0.0.7');
    assert.deepEqual(config.ssl, { rejectUnauthorized: true, servername: 'db.example.com' });
    assert.equal(resolveConnection({}, { PGHOSTADDR: '10.0.0.8' }).host, '10.0.0.8');
  });

  test('connect_timeout: URI beats PGCONNECT_TIMEOUT, 1 becomes 2, <= 0 is none', () => {
    const ms = (uri: string, t?: string) => resolveTcp({ uri }, t === undefined ? {} : { PGCONNECT_TIMEOUT: t }).toPgConfig().connectionTimeoutMillis;
    assert.equal(ms('postgresql://h?connect_timeout=9', '30'), 9000);
    assert.equal(ms('postgresql://h', '30'), 30000);
    assert.equal(ms('postgresql://h', '1'), 2000);
    assert.equal(ms('postgresql://h', '-5'), 0);
    assert.equal(ms('postgresql://h'), 0);
    assert.throws(() => ms('postgresql://h', '5s'), /invalid integer value "5s" for connection option "connect_timeout"/);
  });

  test('bad values from the environment or the spec are errors too', () => {
    assert.throws(() => resolveConnection({}, { PGPORT: 'x' }), ConnectionSettingsError);
    assert.throws(() => resolveConnection({}, { PGSSLMODE: 'yes' }), /invalid sslmode value: "yes"/);
    assert.throws(() => resolveConnection({}, { PGHOST: 'a,b' }), /multiple hosts in "PGHOST"/);
    assert.throws(() => resolveConnection({ port: 0 }, {}), /invalid port number: "0"/);
    assert.throws(() => resolveConnection({ port: 1.5 }, {}), /invalid port number/);
  });
});

describe('resolveConnection: toPgConfig', () => {
  test('passes every field explicitly, plus application_name and server options', () => {
    const config = resolveTcp({ uri: "host=x user=u dbname=d port=6000 options='-c work_mem=64MB' application_name=me" }).toPgConfig();
    assert.deepEqual({ ...config, password: typeof config.password }, {
      host: 'db.example.com', port: 6000, database: 'd', user: 'u', password: 'function', ssl: false,
      connectionTimeoutMillis: 0, application_name: 'me', options: '-c work_mem=64MB',
    });
  });

  test('pg.Client keeps our values even when process.env disagrees', () => {
    const saved = { ...process.env };
    Object.assign(process.env, { PGHOST: 'wrong', PGSSLMODE: 'require', PGUSER: 'wrong', PGDATABASE: 'wrong' });
    try {
      const client = new Client(resolveTcp({ user: 'u', database: 'd' }).toPgConfig());
      const params = (client as unknown as { connectionParameters: Record<string, unknown> }).connectionParameters;
      assert.deepEqual([params.host, params.user, params.database, params.ssl], ['db.example.com', 'u', 'd', false]);
    } finally {
      for (const k of ['PGHOST', 'PGSSLMODE', 'PGUSER', 'PGDATABASE']) {
        if (saved[k] === undefined) delete process.env[k]; else process.env[k] = saved[k];
      }
    }
  });

  test('sslmode maps to node-postgres ssl over TCP', () => {
    const ssl = (sslmode: ConnectionSpec['sslmode']) => resolveTcp({ sslmode }).toPgConfig().ssl;
    assert.equal(ssl('disable'), false);
    assert.equal(ssl('allow'), false);
    assert.equal(ssl('prefer'), false);
    assert.deepEqual(ssl('require'), { rejectUnauthorized: false });
  });

  test('verify-ca/verify-full use sslrootcert; only verify-ca skips the host name check', () => {
    const ca = writeFile('root.pem', '-----BEGIN CERTIFICATE-----\nfake\n-----END CERTIFICATE-----\n', 0o644);
    const full = resolveTcp({ sslmode: 'verify-full' }, { PGSSLROOTCERT: ca }).toPgConfig().ssl as Record<string, unknown>;
    assert.deepEqual(full, { rejectUnauthorized: true, ca: fs.readFileSync(ca, 'utf8') });
    const verifyCa = resolveTcp({ sslmode: 'verify-ca', uri: `postgresql://h?sslrootcert=${encodeURIComponent(ca)}` }).toPgConfig().ssl as Record<string, unknown>;
    assert.equal(verifyCa.rejectUnauthorized, true);
    assert.equal(verifyCa.ca, fs.readFileSync(ca, 'utf8'));
    assert.equal(typeof verifyCa.checkServerIdentity, 'function');
    assert.equal((verifyCa.checkServerIdentity as () => unknown)(), undefined);
    // libpq: when a root certificate exists, require verifies the chain like verify-ca.
    const req = resolveTcp({ sslmode: 'require' }, { PGSSLROOTCERT: ca }).toPgConfig().ssl as Record<string, unknown>;
    assert.equal(req.rejectUnauthorized, true);
    assert.equal(typeof req.checkServerIdentity, 'function');
  });

  test('the default root certificate is ~/.postgresql/root.crt; missing is an error only for verify-*', () => {
    assert.throws(() => resolveTcp({ sslmode: 'verify-full' }).toPgConfig(), /root certificate file ".*root\.crt" does not exist/);
    assert.deepEqual(resolveTcp({ sslmode: 'require' }).toPgConfig().ssl, { rejectUnauthorized: false });
    const home = fs.mkdtempSync(path.join(tmp, 'home-'));
    fs.mkdirSync(path.join(home, '.postgresql'));
    fs.writeFileSync(path.join(home, '.postgresql', 'root.crt'), 'CA');
    assert.equal((resolveTcp({ sslmode: 'verify-full' }, {}, { homedir: home }).toPgConfig().ssl as Record<string, unknown>).ca, 'CA');
  });

  test('sslrootcert=system: the default trust store, verify-full by default, weaker modes refused', () => {
    const c = resolveTcp({}, { PGSSLROOTCERT: 'system' });
    assert.equal(c.sslmode, 'verify-full');
    assert.deepEqual(c.toPgConfig().ssl, { rejectUnauthorized: true });
    assert.throws(() => resolveTcp({ sslmode: 'require' }, { PGSSLROOTCERT: 'system' }), /weak sslmode "require"/);
  });

  test('never TLS over a Unix socket, as libpq', () => {
    assert.equal(resolveConnection({ host: '/tmp', sslmode: 'verify-full' }, {}).toPgConfig().ssl, false);
  });
});

describe('resolveConnection: password lookup', () => {
  let pgpassFile = '';
  before(() => {
    pgpassFile = writeFile('pgpass', [
      '# comment line',
      'db.example.com:5432:app:alice:exact-pw',
      'db.example.com:*:*:alice:wild-pw',
      'localhost:5432:*:bob:socket-pw',
      '*:*:*:carol:any-pw',
      'other.example.com:5432:app:dave:wrong-host-pw',
    ].join('\n') + '\n', 0o600);
  });
  const viaFile = (spec: ConnectionSpec, env: NodeJS.ProcessEnv = {}) => resolveTcp(spec, { PGPASSFILE: pgpassFile, ...env });

  test('order: callback, URI, PGPASSWORD, .pgpass', async () => {
    const spec = { uri: 'postgresql://alice:uri-pw@db.example.com/app' };
    const env = { PGPASSWORD: 'env-pw', PGPASSFILE: pgpassFile };
    assert.equal(await passwordOf(resolveTcp(spec, env, { password: async () => 'secret-pw' })), 'secret-pw');
    assert.equal(await passwordOf(resolveTcp(spec, env, { password: async () => undefined })), 'uri-pw');
    assert.equal(await passwordOf(resolveTcp({ user: 'alice', database: 'app' }, env)), 'env-pw');
    assert.equal(await passwordOf(resolveTcp({ user: 'alice', database: 'app' }, { PGPASSFILE: pgpassFile })), 'exact-pw');
  });

  test('.pgpass: first matching line wins, * matches anything, other hosts do not match', async () => {
    assert.equal(await passwordOf(viaFile({ user: 'alice', database: 'other', port: 6000 })), 'wild-pw');
    assert.equal(await passwordOf(viaFile({ user: 'carol', host: '10.1.2.3' })), 'any-pw');
    await assert.rejects(passwordOf(viaFile({ user: 'dave', database: 'app' })), /no password supplied for dave@db\.example\.com:5432\/app/);
  });

  test('.pgpass: localhost matches the default socket directory, not other ones', async () => {
    assert.equal(await passwordOf(viaFile({ user: 'bob', host: '/var/run/postgresql' })), 'socket-pw');
    await assert.rejects(passwordOf(viaFile({ user: 'bob', host: '/tmp' })), ConnectionSettingsError);
  });

  test('.pgpass: ~/.pgpass by default, the passfile keyword beats PGPASSFILE', async () => {
    const home = fs.mkdtempSync(path.join(tmp, 'home-'));
    fs.copyFileSync(pgpassFile, path.join(home, '.pgpass'));
    fs.chmodSync(path.join(home, '.pgpass'), 0o600);
    assert.equal(await passwordOf(resolveTcp({ user: 'carol' }, {}, { homedir: home })), 'any-pw');
    const other = writeFile('pgpass-other', '*:*:*:carol:keyword-pw\n', 0o600);
    assert.equal(await passwordOf(resolveTcp({ user: 'carol', uri: `passfile=${other}` }, { PGPASSFILE: pgpassFile })), 'keyword-pw');
  });

  test('.pgpass with group/world access is ignored, with a warning, as libpq does', async () => {
    const open = writeFile('pgpass-0644', '*:*:*:carol:leaky-pw\n', 0o644);
    const warnings = new PassThrough();
    let warned = '';
    warnings.on('data', (d: Buffer) => { warned += d.toString(); });
    const old = pgpass.warnTo(warnings);
    try {
      await assert.rejects(passwordOf(resolveTcp({ user: 'carol' }, { PGPASSFILE: open })), /no password supplied/);
    } finally { pgpass.warnTo(old); }
    assert.match(warned, /has group or world access/);
    fs.chmodSync(open, 0o600); // control: the same file is read once it is private
    assert.equal(await passwordOf(resolveTcp({ user: 'carol' }, { PGPASSFILE: open })), 'leaky-pw');
  });

  test('a failing callback rejects the lookup', async () => {
    await assert.rejects(passwordOf(resolveTcp({}, {}, { password: () => Promise.reject(new Error('keychain locked')) })), /keychain locked/);
  });
});

describe('the password never leaks', () => {
  test('not in JSON, label, toString or util.inspect of anything returned', async () => {
    const conn = resolveTcp({ uri: `postgresql://u:${SECRET}@h/d` }, { PGPASSWORD: SECRET }, { password: async () => SECRET });
    const config = conn.toPgConfig();
    const views = [
      JSON.stringify(conn), conn.label, String(conn), `${conn}`, util.inspect(conn, { showHidden: true, depth: Infinity }),
      JSON.stringify(config), util.inspect(config, { showHidden: true, depth: Infinity }),
      util.inspect(new Client(config), { showHidden: true, depth: 2 }),
    ];
    for (const view of views) assert.equal(view.includes(SECRET), false, view);
    assert.equal(await passwordOf(conn), SECRET); // control: the secret really is in there
  });

  test('the parsed URI hides it from JSON, spread and default inspect', () => {
    const parsed = parseConnectionUri(`postgresql://u:${SECRET}@h/d`);
    assert.equal(parsed.password, SECRET);
    for (const view of [JSON.stringify(parsed), util.inspect(parsed), JSON.stringify({ ...parsed })]) assert.equal(view.includes(SECRET), false, view);
  });
});
