/**
 * UI smoke test (DESIGN.md §6): code-server (installed on demand into .cache/code-server) with a throwaway
 * extension under development, opened in Debian's Chromium through playwright-core; runs the extension's command
 * from the palette and checks its notification. Screenshot: test-results/smoke.png.
 *
 *   node --import tsx --test test/e2e/smoke.e2e.ts
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { ensureCodeServer, launchCodeServer, type CodeServer } from '../../scripts/codeServer';
import { ensureChromium, openWorkbench, type Workbench } from './workbench';

const log = (s: string): void => console.log(`smoke: ${s}`);
let tmp = '';
let server: CodeServer | undefined;
let wb: Workbench | undefined;

function makeExtension(dir: string): void {
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({
    name: 'smoke-extension',
    displayName: 'Smoke',
    publisher: 'pg-background-tasks-tests',
    version: '0.0.1',
    engines: { vscode: '^1.91.0' },
    activationEvents: ['onStartupFinished'],
    main: './extension.js',
    contributes: { commands: [{ command: 'smoke.hello', title: 'Hello', category: 'Smoke' }] },
  }, null, 2));
  fs.writeFileSync(path.join(dir, 'extension.js'), `const vscode = require('vscode');
exports.activate = (context) => {
  context.subscriptions.push(vscode.commands.registerCommand('smoke.hello', () => vscode.window.showInformationMessage('Hello from smoke')));
};
exports.deactivate = () => {};
`);
}

before(async () => {
  const t0 = Date.now();
  await ensureCodeServer({ log });
  log(`ensureCodeServer: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  ensureChromium(log);
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pgbt-smoke-'));
}, { timeout: 20 * 60_000 });

after(async () => {
  await wb?.close();
  await server?.stop();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

test('the extension under development runs a palette command in code-server', { timeout: 3 * 60_000 }, async () => {
  const ext = path.join(tmp, 'extension');
  const workspace = path.join(tmp, 'workspace');
  makeExtension(ext);
  fs.mkdirSync(workspace);
  fs.writeFileSync(path.join(workspace, 'demo.sql'), 'select 1;\n');

  const t0 = Date.now();
  server = await launchCodeServer({ workspace, extensionDevelopmentPath: ext, log });
  const tHealthy = Date.now();
  wb = await openWorkbench(server.url);
  log(`launch → /healthz ${tHealthy - t0} ms; → workbench ${Date.now() - t0} ms (page load ${wb.loadMs} ms)`);

  await wb.runCommand('Smoke: Hello');
  const text = await wb.waitForNotification('Hello from smoke').catch((err: Error) => {
    throw new Error(`${err.message}\ncode-server log:\n${fs.readFileSync(server!.logFile, 'utf8').slice(-3000)}\npage console:\n${wb!.consoleMessages().slice(-20).join('\n')}`);
  });
  assert.match(text, /Hello from smoke/);
  assert.ok((await wb.notifications()).some((t) => t.includes('Hello from smoke')));
  const shot = await wb.screenshot('smoke');
  log(`screenshot: ${shot}`);
  assert.ok(fs.statSync(shot).size > 10_000);
});
