/**
 * The product as a user meets it, for the UI suites: a real PostgreSQL with the bgtask schema (the harness),
 * code-server with the extension under development and a workspace of SQL files, and Chromium on it. alice's
 * password reaches the extension as psql would find it: a .pgpass file named by PGPASSFILE.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { DEFAULT_SETTINGS, ensureCodeServer, launchCodeServer, REPO_ROOT, type CodeServer } from '../../scripts/codeServer';
import { startBgtaskDb, type BgtaskDb } from '../harness/bgtaskDb';
import { ensureChromium, openWorkbench, type Workbench } from './workbench';

export interface Product {
  db: BgtaskDb;
  cs: CodeServer;
  wb: Workbench;
  /** The temp dir holding the workspace (`<tmp>/workspace`) and the .pgpass file; removed by stop(). */
  tmp: string;
  stop(): Promise<void>;
}

/**
 * Starts everything: `prepare` fills the database (as the superuser) before VS Code opens; `files` become the
 * workspace. The connection is named `e2e` and logs in as alice.
 */
export async function startProduct(opts: { files: Record<string, string>; prepare?: (db: BgtaskDb) => Promise<void>; log: (s: string) => void }): Promise<Product> {
  if (!fs.existsSync(path.join(REPO_ROOT, 'dist', 'extension.js'))) throw new Error('dist/extension.js is missing: run `npm run build` first');
  await ensureCodeServer({ log: opts.log });
  ensureChromium(opts.log);
  const db = await startBgtaskDb();
  let cs: CodeServer | undefined;
  let wb: Workbench | undefined;
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pgbt-e2e-'));
  const stop = async () => {
    if (wb) {
      const errors = wb.consoleMessages().filter((m) => /pgTasks|PG Background|Content Security Policy/i.test(m));
      if (errors.length) opts.log(`console:\n${errors.join('\n')}`);
      await wb.close();
    }
    await cs?.stop();
    await db.close();
    fs.rmSync(tmp, { recursive: true, force: true });
  };
  try {
    await opts.prepare?.(db);
    const workspace = path.join(tmp, 'workspace');
    fs.mkdirSync(workspace);
    for (const [name, text] of Object.entries(opts.files)) fs.writeFileSync(path.join(workspace, name), text);
    const passFile = path.join(tmp, 'pgpass');
    fs.writeFileSync(passFile, `127.0.0.1:${db.server.port}:${db.database}:alice:${db.password('alice')}\n`, { mode: 0o600 });
    cs = await launchCodeServer({
      workspace,
      extensionDevelopmentPath: REPO_ROOT,
      env: { PGPASSFILE: passFile },
      settings: {
        ...DEFAULT_SETTINGS,
        'workbench.colorTheme': 'Default Light Modern',
        'pgTasks.connections': [{ name: 'e2e', host: '127.0.0.1', port: db.server.port, database: db.database, user: 'alice', sslmode: 'disable' }],
      },
      log: opts.log,
    });
    wb = await openWorkbench(cs.url);
    opts.log(`workbench in ${wb.loadMs} ms`);
    return { db, cs, wb, tmp, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}
