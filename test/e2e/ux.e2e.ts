/**
 * What a DBA meets first, in the real thing (code-server in Debian's Chromium, the harness's PostgreSQL): the
 * Task Explorer's empty states, a code lens run whose notification offers the rows, numbers right-aligned in
 * the grid, a failed task with psql's caret and "Go to Error" landing in the user's own file, a syntax error
 * caught before anything is submitted, a cancel shown as a cancel (not as a red error), and a pasted URI whose
 * password stays out of settings.json. It also takes the README's screenshots (test-results/ux-readme-*.png).
 *
 *   npm run build && node --import tsx --test test/e2e/ux.e2e.ts
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Frame, Locator, Page } from 'playwright-core';
import { errorExcerpt } from '../../media/errorExcerpt';
import type { BgtaskDb } from '../harness/bgtaskDb';
import { startProduct, type Product } from './product';
import type { Workbench } from './workbench';

const log = (s: string): void => console.log(`ux: ${s}`);
const FILE = 'report.sql';
const SQL = [
  '-- Orders by status: rows kept for the grid.',
  'select status, count(*) as orders, sum(amount) as revenue',
  'from orders',
  'group by status',
  'order by revenue desc;',
  '',
  '-- A typo only the server finds.',
  'select customer_id, sum(amount) from orders group by custmer_id;',
  '',
  '-- A slow one to cancel.',
  'select pg_sleep(60);',
  '',
  '-- A typo the parser finds before anything is sent.',
  'selec status from orders;',
  '',
].join('\n');

let product: Product | undefined;
let db: BgtaskDb;
let wb: Workbench;
let page: Page;

before(async () => {
  product = await startProduct({
    files: { [FILE]: SQL },
    prepare: async (d) => {
      await d.sql(`create table orders as
        select g as id, 1 + g % 500 as customer_id, round((g % 10000) / 10.0, 2)::numeric(10, 2) as amount,
               (array['new', 'paid', 'shipped'])[1 + g % 3] as status
        from generate_series(1, 30000) g`);
      await d.sql('grant select on orders to alice');
    },
    log,
  });
  ({ db, wb } = product);
  page = wb.page;
}, { timeout: 20 * 60_000 });

after(async () => product?.stop());

const treeRow = (text: string | RegExp) => page.locator('.pane-body .monaco-list-row').filter({ hasText: text }).first();
const toast = (text: string | RegExp) => page.locator('.notifications-toasts .notification-toast').filter({ hasText: text }).first();

/** Clicks a notification's button; a hover left over a status bar item must not swallow the click. */
async function clickToastButton(text: string | RegExp, button: string): Promise<void> {
  await page.mouse.move(10, 10);
  await toast(text).locator('.monaco-button').filter({ hasText: button }).first().click();
}

/** Waits until the first element matching `selector` and all its ancestors have faded in (screenshots catch fades). */
async function opaque(selector: string): Promise<void> {
  await page.waitForFunction((sel) => {
    for (let e = document.querySelector(sel); e; e = e.parentElement) if (getComputedStyle(e).opacity !== '1') return false;
    return document.querySelector(sel) !== null;
  }, selector, { timeout: 10_000 });
}

async function clearToasts(): Promise<void> {
  for (const close of await page.locator('.notifications-toasts .notification-toast .codicon-notifications-clear').all()) await close.click().catch(() => undefined);
}

async function openFile(): Promise<Locator> {
  await page.keyboard.press('Control+P');
  await page.locator('.quick-input-widget input.input').fill(FILE);
  await page.locator('.quick-input-list .monaco-list-row').filter({ hasText: FILE }).first().click();
  const editor = page.locator('.monaco-editor .view-lines').filter({ hasText: 'custmer_id' }).first();
  await editor.waitFor({ state: 'visible', timeout: 20_000 });
  return editor;
}

/** Clicks the n-th "Run in background" lens of the file and answers the description box. */
async function runLens(n: number, description: string): Promise<number> {
  await openFile();
  const lens = page.locator('.codelens-decoration a').filter({ hasText: /Run in background$/ }).nth(n);
  await lens.waitFor({ state: 'visible', timeout: 30_000 });
  await lens.click();
  const box = page.locator('.quick-input-widget input.input');
  await box.waitFor({ state: 'visible', timeout: 15_000 });
  await box.fill(description);
  await page.keyboard.press('Enter');
  const text = await wb.waitForNotification(/task #\d+ submitted/, 30_000);
  return Number(/task #(\d+) submitted/.exec(text)![1]);
}

async function panelFrame(id: number, mustShow: string, timeout = 20_000): Promise<Frame> {
  const deadline = Date.now() + timeout;
  for (;;) {
    for (const f of page.frames()) {
      if (f === page.mainFrame()) continue;
      if ((await f.locator(`text=Task #${id}`).count().catch(() => 0)) > 0 && (await f.locator(`text=${mustShow}`).count().catch(() => 0)) > 0) return f;
    }
    if (Date.now() > deadline) {
      await wb.screenshot(`failure-ux-panel-${id}`);
      throw new Error(`no webview frame shows Task #${id} with "${mustShow}"`);
    }
    await page.waitForTimeout(200);
  }
}

describe('PG Background Tasks for a DBA trying it first', () => {
  test('pure: the caret sits under the failing character, as psql puts it', () => {
    const sql = 'select customer_id, sum(amount) from orders group by custmer_id';
    const e = errorExcerpt(sql, sql.indexOf('custmer_id') + 1)!;
    assert.equal(e.line, `LINE 1: ${sql}`);
    assert.equal(e.caret.indexOf('^'), 'LINE 1: '.length + sql.indexOf('custmer_id'));
    const two = errorExcerpt('select 1,\r\n  2 frm t', 'select 1,\n  2 '.length + 1)!;
    assert.deepEqual(two, { line: 'LINE 2:   2 frm t', caret: `${' '.repeat('LINE 2:   2 '.length)}^` });
  });

  test('the Task Explorer says what is empty in words that fit', { timeout: 60_000 }, async () => {
    await page.locator('.activitybar a.action-label[aria-label^="PG Tasks"]').click();
    await treeRow('e2e').waitFor({ state: 'visible', timeout: 30_000 });
    await treeRow(/^No running tasks$/).waitFor({ state: 'visible', timeout: 30_000 });
    await treeRow(/^No finished tasks$/).waitFor({ state: 'visible' });
  });

  test('a lens run ends in a notification that offers its rows; numbers line up on the right', { timeout: 120_000 }, async () => {
    const id = await runLens(0, 'orders by status');
    const done = await wb.waitForNotification(new RegExp(`Task #${id} finished.*\\(3 rows\\)`), 30_000);
    assert.match(done, /Show Result/);
    await clickToastButton(`Task #${id} finished`, 'Show Result');
    const frame = await panelFrame(id, 'revenue');
    const orders = frame.locator('table.grid-table td.num').first();
    await orders.waitFor({ timeout: 15_000 });
    assert.equal(await orders.evaluate((td) => getComputedStyle(td).textAlign), 'right');
    await frame.locator('text=3 kept').first().waitFor({ timeout: 10_000 });
    await clearToasts();
    await page.mouse.move(700, 600);
    await wb.screenshot('ux-readme-task-panel');
  });

  test('a failed task shows the caret, and Go to Error lands in the file it came from', { timeout: 120_000 }, async () => {
    const id = await runLens(1, 'typo in group by');
    await wb.waitForNotification(new RegExp(`Task #${id} failed: 42703`), 30_000);
    await clickToastButton(`Task #${id} failed`, 'Show Error');
    const frame = await panelFrame(id, 'LINE 1:');
    await frame.locator('text=Perhaps you meant').first().waitFor({ timeout: 10_000 });
    await clearToasts();
    await page.mouse.move(700, 600);
    await wb.screenshot('ux-readme-failed-task');
    await frame.locator('vscode-button').filter({ hasText: 'Go to Error' }).click();
    const active = page.locator('.tabs-container .tab.active').filter({ hasText: FILE });
    await active.waitFor({ state: 'visible', timeout: 15_000 });
    assert.equal(await page.locator('.tabs-container .tab').filter({ hasText: 'Untitled' }).count(), 0, 'no untitled copy that asks to be saved');
    // The misspelt column is selected: from column 54 to 64 of line 8, the cursor at its end.
    await page.locator('.statusbar-item').filter({ hasText: /Ln 8, Col 64 \(10 selected\)/ }).waitFor({ timeout: 10_000 });
  });

  test('a syntax error is shown where it is and nothing is submitted', { timeout: 90_000 }, async () => {
    await wb.runCommand('View: Close All Editors');
    const editor = await openFile();
    await editor.click();
    await page.keyboard.press('Control+End');
    await page.keyboard.press('ArrowUp');
    await page.keyboard.press('End');
    const before = (await db.tasks('alice').list({ pageSize: 100 })).length;
    await page.keyboard.press('Control+Alt+B');
    await wb.waitForNotification(/nothing was submitted: syntax error at or near "selec" \(line 14\)/, 20_000);
    // The parser's diagnostic, shown as the editor's own hover over the squiggle.
    const squiggle = page.locator('.squiggly-error').first();
    await squiggle.waitFor({ state: 'visible', timeout: 15_000 });
    // The cursor is on the word (the command selected it): Ctrl+K Ctrl+I shows the hover from the keyboard.
    await page.locator('.monaco-editor textarea').first().focus();
    await page.keyboard.press('Control+K');
    await page.keyboard.press('Control+I');
    await page.locator('.monaco-hover').filter({ hasText: 'selec' }).first().waitFor({ state: 'visible', timeout: 15_000 });
    await opaque('.monaco-editor .monaco-hover');
    await opaque('.notifications-toasts .notification-toast');
    await wb.screenshot('ux-readme-lenses-syntax-error');
    assert.equal((await db.tasks('alice').list({ pageSize: 100 })).length, before, 'no task was submitted');
    await clearToasts();
  });

  test('a result of 2,000,000 rows scrolls to its last row, past the browser\'s height limit', { timeout: 240_000 }, async () => {
    // At 22 px a row, 2,000,000 rows are 44 million pixels: Chromium caps an element near 33.5 million, and the
    // grid used to end near row 1,500,000. Now its scrollbar is scaled beyond 8 million pixels.
    const tasks = db.tasks('alice');
    const id = await tasks.submit(`select g as n, 'row ' || g as label from generate_series(1, 2000000) g`, { info: 'two million rows' });
    assert.equal((await db.waitFor(id, { role: 'alice', timeoutMs: 180_000 })).state, 'done');
    await clearToasts();
    // The Task Explorer is open after the tests above; alone, this test opens it (a second click would close it).
    if (!(await treeRow('e2e').isVisible())) await page.locator('.activitybar a.action-label[aria-label^="PG Tasks"]').click();
    await treeRow(/two million rows/).click({ timeout: 30_000 });
    const f = await panelFrame(id, '2,000,000 rows', 30_000);
    const rowShown = (n: number) => f.waitForFunction((row) => {
      const sc = document.querySelector('.grid-scroll') as HTMLElement | null;
      const tr = document.querySelector(`tr[data-row="${row - 1}"]`);
      if (!sc || !tr || tr.querySelector('td.pending') || !tr.textContent?.includes(`row ${row}`)) return false;
      const a = sc.getBoundingClientRect();
      const b = tr.getBoundingClientRect();
      return b.top >= a.top && b.bottom <= a.bottom + 1;
    }, n, { timeout: 20_000 });
    await rowShown(1);
    const height = await f.evaluate(() => {
      const sc = document.querySelector('.grid-scroll') as HTMLElement;
      sc.scrollTop = sc.scrollHeight; // the scrollbar dragged to the bottom
      return sc.scrollHeight;
    });
    assert.ok(height <= 8_100_000, `scroll content ${height} px`);
    await rowShown(2_000_000);
    // Halfway down the scrollbar is halfway down the rows; Ctrl+Home goes back to the first.
    await f.evaluate(() => {
      const sc = document.querySelector('.grid-scroll') as HTMLElement;
      sc.scrollTop = (sc.scrollHeight - sc.clientHeight) / 2;
    });
    // The first row in view, once its values are there and it is near the middle (old rows go as new ones come).
    const middle = await f.waitForFunction(() => {
      const a = (document.querySelector('.grid-scroll') as HTMLElement).getBoundingClientRect();
      const tr = [...document.querySelectorAll<HTMLElement>('tr[data-row]')].find((r) => r.getBoundingClientRect().top >= a.top + 20);
      return tr && !tr.querySelector('td.pending') && Math.abs(Number(tr.dataset.row) - 1_000_000) < 1_000 ? Number(tr.dataset.row) : false;
    }, undefined, { timeout: 20_000 }).catch(async (e: Error) => {
      const rows = await f.evaluate(() => [...document.querySelectorAll<HTMLElement>('tr[data-row]')].map((r) => r.dataset.row).slice(0, 3).join(', '));
      throw new Error(`halfway down, the grid shows rows ${rows}: ${e.message}`);
    });
    assert.ok(Math.abs(Number(await middle.jsonValue()) - 1_000_000) < 1_000);
    await f.locator('.grid-table').focus();
    await page.keyboard.press('Control+Home');
    await rowShown(1);
  });

  test('a cancelled task reads as cancelled, not as a red error', { timeout: 120_000 }, async () => {
    const id = await runLens(2, 'slow one');
    await treeRow(new RegExp(`#${id}\\b`)).locator('.codicon-loading').waitFor({ state: 'visible', timeout: 30_000 });
    await treeRow(new RegExp(`#${id}\\b`)).click();
    let frame = await panelFrame(id, 'Cancel');
    await frame.locator('vscode-button').filter({ hasText: /^\s*Cancel\s*$/ }).click();
    await page.locator('.monaco-dialog-box .monaco-button').filter({ hasText: 'Cancel Task' }).click();
    frame = await panelFrame(id, 'rolled back', 30_000);
    assert.equal(await frame.locator('text=Go to Error').count(), 0);
    assert.equal(await frame.locator('.error-section.cancelled').count(), 1);
    await wb.screenshot('ux-cancelled-task');
  });

  test('a password pasted in a URI goes to the secret storage, not settings.json', { timeout: 90_000 }, async () => {
    await clearToasts();
    await wb.runCommand('PG Tasks: Add Connection…');
    await page.locator('.quick-input-list .monaco-list-row').filter({ hasText: 'connection URI' }).click();
    const box = page.locator('.quick-input-widget input.input');
    await box.waitFor({ state: 'visible' });
    const secret = db.password('alice');
    await box.fill(`postgresql://alice:${encodeURIComponent(secret)}@127.0.0.1:${db.server.port}/${db.database}?sslmode=disable`);
    await page.keyboard.press('Enter');
    // No password step: the URI had one. Next comes the name.
    await page.locator('.quick-input-widget').filter({ hasText: '(3/3): name' }).waitFor({ timeout: 15_000 });
    await box.fill('alice by URI');
    await page.keyboard.press('Enter');
    await wb.waitForNotification(/alice by URI is ready for background tasks/, 30_000);
    const settings = fs.readFileSync(path.join(product!.cs.userDataDir, 'User', 'settings.json'), 'utf8');
    assert.match(settings, /alice by URI/);
    assert.ok(!settings.includes(secret) && !settings.includes(encodeURIComponent(secret)), 'the password is not in settings.json');
  });
});
