/**
 * code-server on demand (DESIGN.md §6): installs `code-server` from npm into its own folder (default
 * `<repo>/.cache/code-server`, gitignored, kept out of the extension's own dependencies) and launches it with an
 * extension under development, offline, on 127.0.0.1 with a free port and every state directory in a temp dir.
 *
 *   const bin = await ensureCodeServer();                       // ≈ 1 min the first time, milliseconds after
 *   const cs = await launchCodeServer({ workspace, extensionDevelopmentPath });
 *   // open cs.url in a browser (test/e2e/workbench.ts), then:
 *   await cs.stop();
 *
 * Run directly (`node --import tsx scripts/codeServer.ts [workspace] [extensionDir]`) it installs, launches and
 * prints the URL until Ctrl-C.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';

/** code-server 4.100.3 ships VS Code 1.100.3; every code-server ≥ 4.103 needs Node 22+. */
export const CODE_SERVER_VERSION = '4.100.3';
/** The Node major code-server's postinstall insists on (it exits unless `node --version` is v20.x). */
const REQUIRED_NODE_MAJOR = 20;
/**
 * What `@vscode/ripgrep`'s postinstall (the version code-server 4.100.3's lib/vscode/npm-shrinkwrap.json locks)
 * would download from GitHub: it looks in `$TMPDIR/vscode-ripgrep-cache-<package version>/<asset>` first, so a
 * tarball of Debian's `rg` placed there keeps the install offline. Checked in @vscode/ripgrep 1.15.11's
 * lib/postinstall.js (VERSION 'v13.0.0-10', x64 target 'x86_64-unknown-linux-musl') and lib/download.js.
 */
const RIPGREP_PACKAGE_VERSION = '1.15.11';
const RIPGREP_ASSET = 'ripgrep-v13.0.0-10-x86_64-unknown-linux-musl.tar.gz';
/** Debian packages the install needs: `rg` to seed the cache above, Kerberos headers for the `kerberos` module. */
const APT_PREREQUISITES: Record<string, () => boolean> = {
  ripgrep: () => fs.existsSync('/usr/bin/rg'),
  'libkrb5-dev': () => fs.existsSync('/usr/include/krb5.h') || fs.existsSync('/usr/include/krb5/krb5.h'),
};

export const REPO_ROOT = path.resolve(__dirname, '..');
export const DEFAULT_CODE_SERVER_DIR = path.join(REPO_ROOT, '.cache', 'code-server');
const MARKER = '.installed.json';

type Log = (s: string) => void;
const defaultLog: Log = (s) => console.log(`code-server: ${s}`);

// ---------------------------------------------------------------------------------------------------------------
// Debian packages

let aptUpdated = false;

/** Whether the Debian package is installed (dpkg says "install ok installed"). */
export function isDebPackageInstalled(pkg: string): boolean {
  const r = spawnSync('dpkg-query', ['-W', '-f=${Status}', pkg], { encoding: 'utf8' });
  return r.status === 0 && /\binstalled\b/.test(r.stdout) && !/not-installed/.test(r.stdout);
}

/**
 * Installs the Debian packages that are missing (`apt-get update` once per process first). Throws with the
 * command to run by hand when that is impossible (not root, no apt-get, no network to the mirror).
 */
export function ensureAptPackages(pkgs: string[], log: Log = defaultLog): void {
  const missing = pkgs.filter((p) => !isDebPackageInstalled(p));
  if (!missing.length) return;
  const manual = `apt-get update && apt-get install -y ${missing.join(' ')}`;
  if (!fs.existsSync('/usr/bin/apt-get')) throw new Error(`Needed system packages missing: ${missing.join(', ')}. This is not a Debian-like system; install the equivalent of: ${manual}`);
  if (process.getuid?.() !== 0) throw new Error(`Needed Debian packages missing: ${missing.join(', ')}. Run as root: sudo sh -c '${manual}'`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const run = (args: string[]): void => {
    log(`apt-get ${args.join(' ')}`);
    const r = spawnSync('apt-get', args, { env, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
    if (r.status !== 0) {
      throw new Error(`\`apt-get ${args.join(' ')}\` failed (exit ${r.status ?? r.signal}):\n${tail(`${r.stdout}\n${r.stderr}`, 30)}\nFix the apt sources or run by hand: ${manual}`);
    }
  };
  if (!aptUpdated) {
    run(['update']);
    aptUpdated = true;
  }
  run(['install', '-y', '--no-install-recommends', ...missing]);
  const still = missing.filter((p) => !isDebPackageInstalled(p));
  if (still.length) throw new Error(`apt-get reported success but ${still.join(', ')} is still not installed; run: ${manual}`);
}

// ---------------------------------------------------------------------------------------------------------------
// Install

export interface EnsureCodeServerOptions {
  /** Install folder; default `<repo>/.cache/code-server`. */
  dir?: string;
  /** Progress lines; default console.log with a `code-server:` prefix. */
  log?: Log;
}

/**
 * Installs code-server@4.100.3 into `dir` unless the marker file there already names that version, and returns
 * the path of its `code-server` binary. Idempotent; the second call only reads the marker. Concurrent callers
 * (parallel test files) wait on a lock directory instead of installing twice.
 */
export async function ensureCodeServer(opts: EnsureCodeServerOptions = {}): Promise<string> {
  const dir = path.resolve(opts.dir ?? DEFAULT_CODE_SERVER_DIR);
  const log = opts.log ?? defaultLog;
  const bin = binPath(dir);
  if (isInstalled(dir)) return bin;

  fs.mkdirSync(path.dirname(dir), { recursive: true });
  const release = await acquireLock(`${dir}.lock`, log);
  try {
    if (isInstalled(dir)) return bin; // another process finished it while we waited
    await install(dir, log);
    return bin;
  } finally {
    release();
  }
}

function binPath(dir: string): string {
  return path.join(dir, 'node_modules', '.bin', 'code-server');
}

function isInstalled(dir: string): boolean {
  try {
    const marker = JSON.parse(fs.readFileSync(path.join(dir, MARKER), 'utf8'));
    return marker.version === CODE_SERVER_VERSION && fs.existsSync(binPath(dir));
  } catch {
    return false;
  }
}

async function install(dir: string, log: Log): Promise<void> {
  const t0 = Date.now();
  log(`installing code-server@${CODE_SERVER_VERSION} into ${dir} (≈ 300 MB, about a minute)…`);

  // 1. Node: code-server's postinstall refuses anything but Node 20, and natives are built against its headers.
  const nodeMajor = Number(process.versions.node.split('.')[0]);
  if (nodeMajor !== REQUIRED_NODE_MAJOR) {
    throw new Error(`code-server@${CODE_SERVER_VERSION} installs only under Node ${REQUIRED_NODE_MAJOR} (its postinstall checks), this is Node ${process.versions.node}. Run with Node ${REQUIRED_NODE_MAJOR}.x (newer code-server releases need Node 22 and VS Code ≥ 1.103, which this project does not target).`);
  }
  const nodedir = process.env.npm_config_nodedir || path.resolve(path.dirname(process.execPath), '..');
  if (!fs.existsSync(path.join(nodedir, 'include', 'node', 'node_version.h'))) {
    throw new Error(`Node's C headers are missing (${path.join(nodedir, 'include', 'node')}); node-gyp would try to download them, which fails offline. Install a Node ${REQUIRED_NODE_MAJOR} build that ships include/node (NodeSource's nodejs package, or the official tarball), or set npm_config_nodedir to a directory holding include/node.`);
  }

  // 2. Debian packages.
  const missing = Object.entries(APT_PREREQUISITES).filter(([, present]) => !present()).map(([pkg]) => pkg);
  if (missing.length) {
    log(`installing Debian packages: ${missing.join(', ')}`);
    ensureAptPackages(missing, log);
  }
  for (const [pkg, present] of Object.entries(APT_PREREQUISITES)) {
    if (!present()) throw new Error(`Debian package ${pkg} is installed but its files are not where expected; check \`dpkg -L ${pkg}\`.`);
  }

  // 3. Seed @vscode/ripgrep's download cache with Debian's rg (its postinstall would fetch rg from GitHub).
  const tmp = os.tmpdir();
  const cacheDir = path.join(tmp, `vscode-ripgrep-cache-${RIPGREP_PACKAGE_VERSION}`);
  const asset = path.join(cacheDir, RIPGREP_ASSET);
  if (!fs.existsSync(asset)) {
    fs.mkdirSync(cacheDir, { recursive: true });
    const partial = `${asset}.${process.pid}.partial`;
    const r = spawnSync('tar', ['czf', partial, '-C', '/usr/bin', 'rg'], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`Could not make ${asset} from /usr/bin/rg: ${r.stderr}`);
    fs.renameSync(partial, asset);
    log(`seeded ${asset} with Debian's rg`);
  }

  // 4. npm install into a clean folder (a half-finished earlier attempt has no marker: start over).
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({
    name: 'code-server-for-ui-tests',
    private: true,
    description: 'Installed by scripts/codeServer.ts (DESIGN.md §6). Delete the folder to reinstall.',
    allowScripts: { 'code-server': true, argon2: true }, // npm 11 warns about install scripts not listed
  }, null, 2) + '\n');
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    TMPDIR: tmp, // where @vscode/ripgrep looks for its cache (os.tmpdir())
    npm_config_yes: 'true', // node-pty's postinstall runs `npx node-gyp`
    npm_config_nodedir: nodedir, // build natives against the local Node headers, no download
    npm_config_audit: 'false',
    npm_config_fund: 'false',
    npm_config_update_notifier: 'false',
  };
  if (process.getuid?.() === 0) env.npm_config_unsafe_perm = 'true'; // else the postinstall refuses to run as root
  const logFile = path.join(dir, 'install.log');
  log(`npm install code-server@${CODE_SERVER_VERSION} (full output in ${logFile})`);
  const status = await runLogged('npm', ['install', '--no-audit', '--no-fund', '--foreground-scripts', `code-server@${CODE_SERVER_VERSION}`], { cwd: dir, env }, logFile, log);
  if (status !== 0) {
    throw new Error(`npm install code-server@${CODE_SERVER_VERSION} failed (exit ${status}). Last lines of ${logFile}:\n${tail(fs.readFileSync(logFile, 'utf8'), 40)}\n` +
      'Usual causes: no C/C++ toolchain (apt-get install -y build-essential python3), Kerberos headers (libkrb5-dev), no network to the npm registry, ' +
      `or @vscode/ripgrep trying GitHub because ${asset} is missing. Fix and run again; the folder is reinstalled from scratch.`);
  }
  const bin = binPath(dir);
  if (!fs.existsSync(bin)) throw new Error(`npm install succeeded but ${bin} is missing; see ${logFile}.`);
  const rg = path.join(dir, 'node_modules', 'code-server', 'lib', 'vscode', 'node_modules', '@vscode', 'ripgrep', 'bin', 'rg');
  if (!fs.existsSync(rg)) throw new Error(`code-server installed without ${rg} (search would not work); see ${logFile}.`);
  // Even `--version` writes a default config.yaml and logs under the XDG dirs: keep them out of ~.
  const xdgTmp = fs.mkdtempSync(path.join(tmp, 'pgbt-code-server-version-'));
  const version = spawnSync(process.execPath, [bin, '--version'], {
    encoding: 'utf8',
    env: { ...process.env, XDG_CONFIG_HOME: path.join(xdgTmp, 'config'), XDG_DATA_HOME: path.join(xdgTmp, 'data'), XDG_CACHE_HOME: path.join(xdgTmp, 'cache') },
  });
  fs.rmSync(xdgTmp, { recursive: true, force: true });
  // "4.100.3 <commit> with Code 1.100.3"
  const versionLine = version.stdout.split('\n').find((l) => l.startsWith(`${CODE_SERVER_VERSION} `));
  if (version.status !== 0 || !versionLine) {
    throw new Error(`${bin} --version failed (exit ${version.status}): ${version.stdout}${version.stderr}`);
  }
  const vscodeVersion = /with Code (\S+)/.exec(versionLine)?.[1];
  const seconds = (Date.now() - t0) / 1000;
  const du = spawnSync('du', ['-sm', dir], { encoding: 'utf8' });
  const sizeMb = Number(du.stdout.split(/\s/)[0]) || undefined;
  fs.writeFileSync(path.join(dir, MARKER), JSON.stringify({
    version: CODE_SERVER_VERSION, vscode: vscodeVersion, node: process.versions.node,
    installedAt: new Date().toISOString(), seconds, sizeMb,
  }, null, 2) + '\n');
  log(`installed code-server ${versionLine} in ${seconds.toFixed(1)} s, ${sizeMb ?? '?'} MB`);
}

/** Runs a command, teeing its output to a file and short progress lines (npm's `>` script headers) to `log`. */
function runLogged(cmd: string, args: string[], options: { cwd: string; env: NodeJS.ProcessEnv }, logFile: string, log: Log): Promise<number> {
  return new Promise((resolve, reject) => {
    const out = fs.createWriteStream(logFile);
    const child = spawn(cmd, args, { ...options, stdio: ['ignore', 'pipe', 'pipe'] });
    let pending = '';
    const onData = (chunk: Buffer): void => {
      out.write(chunk);
      pending += chunk.toString('utf8');
      const lines = pending.split('\n');
      pending = lines.pop() ?? '';
      for (const line of lines) {
        // Only the milestones: which package's install script runs, and npm's summary.
        if (/^> \S+@\S+ (install|postinstall)$|^added \d+ packages|^Installing Code dependencies|ERR!/.test(line.trim())) log(line.trim());
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('error', (err) => { out.end(); reject(new Error(`could not start ${cmd}: ${err.message}`)); });
    child.on('close', (code, signal) => out.end(() => resolve(code ?? (signal ? 128 : 1))));
  });
}

/** A lock directory (mkdir is atomic); stale when its owner pid is gone. */
async function acquireLock(lockDir: string, log: Log): Promise<() => void> {
  const deadline = Date.now() + 20 * 60_000;
  let told = false;
  for (;;) {
    try {
      fs.mkdirSync(lockDir);
      fs.writeFileSync(path.join(lockDir, 'pid'), String(process.pid));
      return () => fs.rmSync(lockDir, { recursive: true, force: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const owner = Number(readOr(path.join(lockDir, 'pid'), ''));
    if (owner && !isAlive(owner)) {
      fs.rmSync(lockDir, { recursive: true, force: true });
      continue;
    }
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${lockDir} (held by pid ${owner}); delete it if no install is running.`);
    if (!told) { log(`waiting for another install to finish (${lockDir}, pid ${owner || '?'})`); told = true; }
    await sleep(1000);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Launch

export interface LaunchCodeServerOptions {
  /** The folder to open. */
  workspace: string;
  /** An extension folder (with package.json) loaded as under development, through the URL's payload. */
  extensionDevelopmentPath?: string;
  /** A CommonJS module exporting `run()`, run inside the extension host (integration tests). */
  extensionTestsPath?: string;
  /** Default: a free port on 127.0.0.1. */
  port?: number;
  /** Default: a temp dir removed by stop(). A given one is kept. */
  userDataDir?: string;
  /** Default: a temp dir removed by stop(). A given one is kept. */
  extensionsDir?: string;
  /** Written to `<userDataDir>/User/settings.json`. */
  settings?: object;
  /** The binary; default: {@link ensureCodeServer}(). */
  codeServerPath?: string;
  /** Progress lines and code-server's own output when it fails; default console.log. */
  log?: Log;
  /** Extra environment for code-server (and so the extension host). */
  env?: NodeJS.ProcessEnv;
}

export interface CodeServer {
  /** Opens the workspace with the extension loaded. */
  url: string;
  port: number;
  /** The `vscode-remote://127.0.0.1:PORT` authority prefix to turn server paths into URIs. */
  remoteAuthority: string;
  userDataDir: string;
  extensionsDir: string;
  /** code-server's stdout and stderr. */
  logFile: string;
  /** Kills code-server (its whole process group) and removes the temp dirs. Idempotent. */
  stop(): Promise<void>;
}

/** A quiet workbench for tests and the bench: no start page, no trust prompt, no telemetry, no offer to open the repo's git. */
export const DEFAULT_SETTINGS = {
  'workbench.startupEditor': 'none',
  'security.workspace.trust.enabled': false,
  'telemetry.telemetryLevel': 'off',
  'git.openRepositoryInParentFolders': 'never',
};

const running = new Set<() => void>();
let exitHooked = false;

function hookProcessExit(): void {
  if (exitHooked) return;
  exitHooked = true;
  const killAll = (): void => { for (const kill of [...running]) kill(); };
  process.on('exit', killAll);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const onSignal = (): void => {
      killAll();
      // Keep the default behaviour (die by the signal) unless someone else handles it too.
      if (process.listenerCount(sig) === 1) {
        process.removeListener(sig, onSignal);
        process.kill(process.pid, sig);
      }
    };
    process.on(sig, onSignal);
  }
}

/**
 * Starts code-server on 127.0.0.1 (free port unless given) with the workspace, waits for `/healthz`, and returns
 * the URL that opens the workspace with the extension under development loaded.
 */
export async function launchCodeServer(opts: LaunchCodeServerOptions): Promise<CodeServer> {
  const log = opts.log ?? defaultLog;
  const workspace = path.resolve(opts.workspace);
  if (!fs.statSync(workspace, { throwIfNoEntry: false })?.isDirectory()) throw new Error(`workspace ${workspace} is not a directory`);
  for (const p of [opts.extensionDevelopmentPath, opts.extensionTestsPath]) {
    if (p && !fs.existsSync(p)) throw new Error(`${p} does not exist`);
  }
  const bin = opts.codeServerPath ?? await ensureCodeServer({ log });

  const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'pgbt-code-server-'));
  const userDataDir = path.resolve(opts.userDataDir ?? path.join(tmpRoot, 'user-data'));
  const extensionsDir = path.resolve(opts.extensionsDir ?? path.join(tmpRoot, 'extensions'));
  const xdg = { XDG_CONFIG_HOME: path.join(tmpRoot, 'xdg-config'), XDG_DATA_HOME: path.join(tmpRoot, 'xdg-data'), XDG_CACHE_HOME: path.join(tmpRoot, 'xdg-cache') };
  for (const d of [userDataDir, extensionsDir, ...Object.values(xdg), path.join(userDataDir, 'User')]) fs.mkdirSync(d, { recursive: true });
  fs.writeFileSync(path.join(userDataDir, 'User', 'settings.json'), JSON.stringify(opts.settings ?? DEFAULT_SETTINGS, null, 2) + '\n');
  const logFile = path.join(tmpRoot, 'code-server.log');
  const removeTemp = (): void => fs.rmSync(tmpRoot, { recursive: true, force: true });

  // A port picked by us can be taken between the probe and code-server's bind: retry with another one.
  for (let attempt = 1; ; attempt++) {
    const port = opts.port ?? await freePort();
    const t0 = Date.now();
    const args = [
      '--bind-addr', `127.0.0.1:${port}`, '--auth', 'none', '--disable-telemetry', '--disable-update-check',
      '--disable-workspace-trust', '--disable-getting-started-override',
      '--user-data-dir', userDataDir, '--extensions-dir', extensionsDir, workspace,
    ];
    const out = fs.openSync(logFile, 'a');
    const child = spawn(bin, args, {
      cwd: workspace,
      // EXTENSIONS_GALLERY='{}': no marketplace (otherwise it calls open-vsx); XDG_*: nothing written into ~.
      env: { ...process.env, ...opts.env, ...xdg, EXTENSIONS_GALLERY: '{}' },
      stdio: ['ignore', out, out],
      detached: true, // own process group: stop() kills the server, extension host, pty host and watchers together
    });
    fs.closeSync(out);
    const killNow = killer(child);
    // On process exit: kill synchronously, and drop the temp dirs (a given userDataDir/extensionsDir is kept).
    const kill = (): void => { killNow(); removeTemp(); };
    running.add(kill);
    hookProcessExit();
    let exited: string | undefined;
    child.once('exit', (code, signal) => { exited = `exited with ${code ?? signal}`; });
    child.once('error', (err) => { exited = `could not start: ${err.message}`; });

    const ok = await waitForHealthz(port, 60_000, () => exited);
    if (ok) {
      const remoteAuthority = `vscode-remote://127.0.0.1:${port}`;
      const payload: [string, string][] = [];
      if (opts.extensionDevelopmentPath) payload.push(['extensionDevelopmentPath', remoteAuthority + uriPath(opts.extensionDevelopmentPath)]);
      if (opts.extensionTestsPath) payload.push(['extensionTestsPath', remoteAuthority + uriPath(opts.extensionTestsPath)]);
      let url = `http://127.0.0.1:${port}/?folder=${uriPath(workspace)}`;
      if (payload.length) url += `&payload=${encodeURIComponent(JSON.stringify(payload))}`;
      log(`ready on 127.0.0.1:${port} in ${Date.now() - t0} ms (log: ${logFile})`);
      let stopped: Promise<void> | undefined;
      return {
        url, port, remoteAuthority, userDataDir, extensionsDir, logFile,
        stop: () => (stopped ??= (async () => {
          running.delete(kill);
          await killGroup(child);
          removeTemp();
        })()),
      };
    }
    running.delete(kill);
    await killGroup(child);
    const output = readOr(logFile, '');
    const portTaken = /EADDRINUSE/.test(output);
    if (portTaken && !opts.port && attempt < 3) {
      log(`port ${port} was taken, retrying`);
      continue;
    }
    removeTemp();
    throw new Error(`code-server did not become healthy on 127.0.0.1:${port} (${exited ?? 'no /healthz answer within 60 s'}). Its output:\n${tail(output, 40)}\n` +
      `Command: ${bin} ${args.join(' ')}. If the install is broken, delete ${path.dirname(path.dirname(path.dirname(bin)))} and run again.`);
  }
}

/** An absolute path as a URI path: segments percent-encoded, slashes kept. */
function uriPath(p: string): string {
  return path.resolve(p).split('/').map(encodeURIComponent).join('/');
}

function killer(child: ChildProcess): () => void {
  return () => {
    if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) {
      // The leader is gone but its group may not be: try anyway.
      if (child.pid !== undefined) try { process.kill(-child.pid, 'SIGKILL'); } catch { /* no such group */ }
      return;
    }
    try { process.kill(-child.pid, 'SIGKILL'); } catch { /* already gone */ }
  };
}

/** SIGTERM to the process group, SIGKILL after 5 s; resolves when the leader has exited. */
async function killGroup(child: ChildProcess): Promise<void> {
  const pid = child.pid;
  if (pid === undefined) return;
  const signal = (sig: NodeJS.Signals): void => { try { process.kill(-pid, sig); } catch { /* gone */ } };
  const leaderGone = (): boolean => child.exitCode !== null || child.signalCode !== null;
  if (!leaderGone()) {
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    signal('SIGTERM');
    const timer = setTimeout(() => signal('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  }
  // Stragglers (extension host, watchers) that ignored SIGTERM.
  await sleep(100);
  signal('SIGKILL');
}

function waitForHealthz(port: number, timeoutMs: number, failed: () => string | undefined): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  return new Promise((resolve) => {
    const attempt = (): void => {
      if (failed()) return resolve(false);
      if (Date.now() > deadline) return resolve(false);
      const req = http.get({ host: '127.0.0.1', port, path: '/healthz', timeout: 2000 }, (res) => {
        res.resume();
        if (res.statusCode === 200) resolve(true);
        else setTimeout(attempt, 100);
      });
      req.on('timeout', () => req.destroy());
      req.on('error', () => setTimeout(attempt, 100));
    };
    attempt();
  });
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

// ---------------------------------------------------------------------------------------------------------------

function tail(text: string, lines: number): string {
  return text.trimEnd().split('\n').slice(-lines).join('\n');
}

function readOr(file: string, fallback: string): string {
  try { return fs.readFileSync(file, 'utf8'); } catch { return fallback; }
}

function isAlive(pid: number): boolean {
  try { process.kill(pid, 0); return true; } catch (err) { return (err as NodeJS.ErrnoException).code === 'EPERM'; }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

if (require.main === module) {
  (async () => {
    const workspace = path.resolve(process.argv[2] ?? process.cwd());
    const ext = process.argv[3] ? path.resolve(process.argv[3]) : undefined;
    const cs = await launchCodeServer({ workspace, extensionDevelopmentPath: ext });
    console.log(`open ${cs.url}\n(Ctrl-C to stop)`);
  })().catch((err) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  });
}
