/**
 * The product in the real thing: the extension (built with `npm run build`) in code-server, driven in Debian's
 * Chromium, against a real PostgreSQL started by the harness. A user selects SQL, runs it from the context
 * menu, watches it in the Task Explorer and opens its result; a failing task shows its error; a running task
 * is cancelled from the palette and counted in the status bar; a result is exported to a file.
 * Screenshots of each step go to test-results/ (CI keeps them).
 *
 *   npm run build && node --import tsx --test test/e2e/extension.e2e.ts
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Frame, Page } from 'playwright-core';
import type { BgtaskDb } from '../harness/bgtaskDb';
import { startProduct, type Product } from './product';
import type { Workbench } from './workbench';

const log = (s: string): void => console.log(`e2e: ${s}`);
const SQL = [
  'select count(*) as n, sum(id) as total from items;',
  'select 1/0;',
  'select pg_sleep(60);',
  'select id, label from items order by id limit 1000;',
  '',
].join('\n');

let product: Product | undefined;
let db: BgtaskDb;
let tmp = '';
let wb: Workbench;
let page: Page;

before(async () => {
  product = await startProduct({
    files: { 'tasks.sql': SQL },
    prepare: async (d) => {
      await d.sql(`create table items as select g as id, 'item ' || g as label from generate_series(1, 5000) g`);
      await d.sql('grant select on items to alice');
    },
    log,
  });
  ({ db, wb, tmp } = product);
  page = wb.page;
}, { timeout: 20 * 60_000 });

after(async () => product?.stop());

/** The Task Explorer's row whose label contains `text`. */
const treeRow = (text: string | RegExp) => page.locator('.pane-body .monaco-list-row').filter({ hasText: text }).first();

/** Waits until the row of task #id shows a codicon of `state`. */
async function waitForTaskIcon(id: number, icon: string, timeout = 30_000): Promise<void> {
  const row = treeRow(new RegExp(`#${id}\\b`));
  await row.locator(`.codicon-${icon}`).waitFor({ state: 'visible', timeout }).catch(async (e: Error) => {
    await wb.screenshot(`failure-task-${id}-${icon}`);
    throw new Error(`task #${id} did not show $(${icon}) in the Task Explorer: ${e.message}; row: ${await row.innerText().catch(() => '(none)')}`);
  });
}

/** Opens tasks.sql (or brings its editor to the front) with Go to File. */
async function focusEditor(): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await page.keyboard.press('Escape'); // whatever had focus (a toast, a webview) lets go
      await page.keyboard.press('Control+P');
      const box = page.locator('.quick-input-widget input.input');
      await box.waitFor({ state: 'visible', timeout: 10_000 });
      await box.fill('tasks.sql');
      // Enter opens the focused row: wait until the list has settled on tasks.sql (it refills as it searches).
      await page.locator('.quick-input-list .monaco-list-row.focused').filter({ hasText: 'tasks.sql' }).first().waitFor({ timeout: 10_000 });
      await page.keyboard.press('Enter');
      await page.locator('.monaco-editor .view-lines').filter({ hasText: 'count(*)' }).first().waitFor({ state: 'visible', timeout: 10_000 });
      return;
    } catch (e) {
      if (attempt >= 3) {
        await wb.screenshot('failure-focus-editor');
        throw e;
      }
    }
  }
}

/** Selects line `line` (1-based) of tasks.sql. */
async function selectLine(line: number): Promise<void> {
  await focusEditor();
  const editor = page.locator('.monaco-editor .view-lines').filter({ hasText: 'count(*)' }).first();
  await editor.click();
  await page.keyboard.press('Control+Home');
  for (let i = 1; i < line; i++) await page.keyboard.press('ArrowDown');
  await page.keyboard.press('Home');
  await page.keyboard.press('Shift+End');
}

/** Answers the "description" input box and returns the id from the "task #N submitted" notification. */
async function describeAndSubmit(description: string): Promise<number> {
  const box = page.locator('.quick-input-widget input.input');
  await box.waitFor({ state: 'visible', timeout: 15_000 });
  await box.fill(description);
  await page.keyboard.press('Enter');
  const text = await wb.waitForNotification(/task #\d+ submitted/, 30_000);
  const id = Number(/task #(\d+) submitted/.exec(text)![1]);
  // Close the toast so later waits see only new ones.
  await page.locator('.notifications-toasts .notification-toast').filter({ hasText: `task #${id} submitted` }).locator('.codicon-notifications-clear').click().catch(() => undefined);
  return id;
}

/** The task panel's inner webview frame, found by its content (DESIGN.md §6). */
async function panelFrame(id: number, timeout = 20_000): Promise<Frame> {
  const deadline = Date.now() + timeout;
  for (;;) {
    for (const f of page.frames()) {
      const has = await f.locator('text=Task #' + id).count().catch(() => 0);
      if (has > 0 && f !== page.mainFrame()) return f;
    }
    if (Date.now() > deadline) {
      await wb.screenshot(`failure-panel-${id}`);
      throw new Error(`no webview frame shows Task #${id}`);
    }
    await page.waitForTimeout(200);
  }
}

describe('PG Background Tasks in VS Code', () => {
  let countTask = 0;

  test('the Task Explorer shows the connection, ready', { timeout: 60_000 }, async () => {
    await page.locator('.activitybar a.action-label[aria-label^="PG Tasks"]').click();
    await treeRow('e2e').waitFor({ state: 'visible', timeout: 30_000 });
    await treeRow('Running').waitFor({ state: 'visible', timeout: 30_000 });
    await treeRow('Finished').waitFor({ state: 'visible' });
    await wb.screenshot('01-task-explorer');
  });

  test('select SQL → context menu → the task runs and its rows show in the task panel', { timeout: 120_000 }, async () => {
    await selectLine(1);
    // The editor's context menu from the keyboard (Shift+F10) keeps the selection a mouse click would move.
    await page.keyboard.press('Shift+F10');
    const item = page.locator('.monaco-menu .action-item').filter({ hasText: 'Run Selection as Background Task' });
    await item.waitFor({ state: 'visible', timeout: 15_000 });
    await wb.screenshot('02-context-menu');
    await item.click();
    countTask = await describeAndSubmit('e2e count');
    await waitForTaskIcon(countTask, 'pass');
    await wb.screenshot('03-task-done');
    await treeRow(new RegExp(`#${countTask}\\b`)).click();
    const frame = await panelFrame(countTask);
    await frame.locator('text=done').first().waitFor({ timeout: 15_000 });
    await frame.locator('text=5000').first().waitFor({ timeout: 15_000 });
    await frame.locator('text=12502500').first().waitFor({ timeout: 15_000 });
    await wb.screenshot('04-task-panel-result');
  });

  test('a failing task shows its SQLSTATE and message', { timeout: 90_000 }, async () => {
    await selectLine(2);
    await page.keyboard.press('Control+Alt+B');
    const id = await describeAndSubmit('e2e failure');
    await waitForTaskIcon(id, 'error');
    await treeRow(new RegExp(`#${id}\\b`)).click();
    const frame = await panelFrame(id);
    await frame.locator('text=22012').first().waitFor({ timeout: 15_000 });
    await frame.locator('text=division by zero').first().waitFor({ timeout: 15_000 });
    await wb.screenshot('05-task-failed');
  });

  test('a running task is counted in the status bar and cancelled from the palette', { timeout: 120_000 }, async () => {
    await selectLine(3);
    await page.keyboard.press('Control+Alt+B');
    const id = await describeAndSubmit('e2e sleep');
    await waitForTaskIcon(id, 'loading');
    const status = page.locator('.statusbar-item').filter({ hasText: /1 task running/ });
    await status.waitFor({ state: 'visible', timeout: 20_000 });
    await wb.screenshot('06-running-status-bar');
    await wb.runCommand('PG Tasks: Cancel Task');
    await page.locator('.quick-input-list .monaco-list-row').filter({ hasText: `#${id}` }).first().click();
    await page.locator('.monaco-dialog-box .monaco-button').filter({ hasText: 'Cancel Task' }).click();
    await waitForTaskIcon(id, 'circle-slash', 20_000);
    await status.waitFor({ state: 'hidden', timeout: 20_000 });
    await wb.screenshot('07-task-cancelled');
    const t = await db.tasks('alice').get(id);
    assert.equal(t?.state, 'cancelled');
  });

  test('Collect Result exports the rows to a CSV file', { timeout: 90_000 }, async () => {
    assert.ok(countTask > 0, 'the first test submitted a task');
    const target = path.join(tmp, 'workspace', `count-${countTask}.csv`);
    await wb.runCommand('PG Tasks: Collect Result…');
    await page.locator('.quick-input-list .monaco-list-row').filter({ hasText: `#${countTask}` }).first().click();
    await page.locator('.quick-input-list .monaco-list-row').filter({ hasText: 'Export as CSV' }).first().click();
    // code-server's save dialog is VS Code's simple file dialog: a path in the quick input.
    const box = page.locator('.quick-input-widget input.input');
    await box.waitFor({ state: 'visible', timeout: 15_000 });
    // Wait until the dialog has put in its default (…/task-N-1.csv), or it would overwrite what we type.
    await page.waitForFunction(() => /task-\d+-\d+\.csv$/.test((document.querySelector('.quick-input-widget input.input') as HTMLInputElement | null)?.value ?? ''), undefined, { timeout: 15_000 });
    await box.fill(target);
    assert.equal(await box.inputValue(), target);
    await page.keyboard.press('Enter');
    const note = await wb.waitForNotification(/exported 1 rows/, 30_000);
    log(`export: ${note}`);
    await wb.screenshot('08-exported');
    assert.equal(fs.readFileSync(target, 'utf8'), 'n,total\n5000,12502500\n');
  });
});
