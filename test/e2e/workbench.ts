/**
 * A page object for VS Code's workbench served by code-server (scripts/codeServer.ts), driven through
 * playwright-core in Debian's Chromium (DESIGN.md §6: never `playwright` or `npx playwright install`, which
 * download browsers). Screenshots go to `<repo>/test-results/`.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { chromium, type BrowserContext, type Locator, type Page } from 'playwright-core';
import { ensureAptPackages, REPO_ROOT } from '../../scripts/codeServer';

export const CHROMIUM = '/usr/bin/chromium';
export const SELECTORS = {
  workbench: '.monaco-workbench .part.activitybar',
  quickInput: '.quick-input-widget',
  quickInputBox: '.quick-input-widget input.input',
  quickInputRow: '.quick-input-list .monaco-list-row',
  toast: '.notifications-toasts .notification-toast',
} as const;

/** Installs Debian's `chromium` when /usr/bin/chromium is missing. Call it from test setup. */
export function ensureChromium(log: (s: string) => void = (s) => console.log(`chromium: ${s}`)): string {
  if (!fs.existsSync(CHROMIUM)) {
    log(`${CHROMIUM} missing: installing Debian's chromium (≈ 300 MB)…`);
    ensureAptPackages(['chromium'], log);
    if (!fs.existsSync(CHROMIUM)) throw new Error(`apt-get installed chromium but ${CHROMIUM} is still missing; check \`dpkg -L chromium\`.`);
  }
  return CHROMIUM;
}

export interface OpenWorkbenchOptions {
  /** Default `<repo>/test-results`. */
  screenshotsDir?: string;
  /** Default true. */
  headless?: boolean;
  /** How long to wait for the workbench; default 60 s. */
  timeoutMs?: number;
  /**
   * Called with the exit code when an in-host test suite (`extensionTestsPath`) finishes: VS Code calls
   * `window.codeAutomationExit(code)`, so it is exposed before the page loads.
   */
  onExit?: (code: number) => void;
}

export interface Workbench {
  page: Page;
  context: BrowserContext;
  /** Milliseconds from navigation to the activity bar being visible. */
  loadMs: number;
  /** Runs a command from the palette (F1) by its title as listed there, e.g. `Smoke: Hello`. */
  runCommand(title: string): Promise<void>;
  /** Texts of the visible notification toasts. */
  notifications(): Promise<string[]>;
  /** Waits for a toast whose text contains `text` (or matches it) and returns the toast's text. */
  waitForNotification(text: string | RegExp, timeoutMs?: number): Promise<string>;
  /** Saves `<screenshotsDir>/<name>.png` and returns its path. */
  screenshot(name: string): Promise<string>;
  /** Messages the page printed to its console (errors help when the extension does not show up). */
  consoleMessages(): string[];
  close(): Promise<void>;
}

/** Launches Chromium on a fresh profile, opens `url`, and waits for the workbench. */
export async function openWorkbench(url: string, opts: OpenWorkbenchOptions = {}): Promise<Workbench> {
  const executablePath = ensureChromium();
  const screenshotsDir = path.resolve(opts.screenshotsDir ?? path.join(REPO_ROOT, 'test-results'));
  const timeout = opts.timeoutMs ?? 60_000;
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'pgbt-chromium-'));
  const context = await chromium.launchPersistentContext(path.join(profile, 'profile'), {
    executablePath,
    headless: opts.headless ?? true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    env: { ...process.env, XDG_CONFIG_HOME: path.join(profile, 'xdg-config'), XDG_CACHE_HOME: path.join(profile, 'xdg-cache') },
    viewport: { width: 1400, height: 900 },
  }).catch((err: Error) => {
    fs.rmSync(profile, { recursive: true, force: true });
    throw new Error(`Chromium (${executablePath}) did not start: ${err.message}`);
  });
  let closed = false;
  const close = async (): Promise<void> => {
    if (closed) return;
    closed = true;
    await context.close().catch(() => undefined);
    fs.rmSync(profile, { recursive: true, force: true });
  };

  const messages: string[] = [];
  try {
    const page = context.pages()[0] ?? await context.newPage();
    page.on('console', (m) => messages.push(`[${m.type()}] ${m.text()}`));
    page.on('pageerror', (e) => messages.push(`[pageerror] ${e.message}`));
    if (opts.onExit) {
      const onExit = opts.onExit;
      await page.exposeFunction('codeAutomationExit', (code: number) => onExit(code));
    }
    const t0 = Date.now();
    await page.goto(url, { waitUntil: 'domcontentloaded', timeout });
    await page.locator(SELECTORS.workbench).waitFor({ state: 'visible', timeout }).catch((err: Error) => {
      throw new Error(`The workbench did not appear within ${timeout} ms at ${url}: ${err.message}\nPage console:\n${messages.slice(-20).join('\n')}`);
    });
    const loadMs = Date.now() - t0;

    const quickInput = page.locator(SELECTORS.quickInput);
    const wb: Workbench = {
      page,
      context,
      loadMs,
      async runCommand(title) {
        // The palette lists the commands registered when it opens: an extension still activating (a loaded
        // machine) registers its own a moment later, so reopen it until the command is there.
        for (let attempt = 1; ; attempt++) {
          await page.locator('.monaco-workbench').first().focus().catch(() => undefined);
          await page.keyboard.press('F1');
          const box = page.locator(SELECTORS.quickInputBox);
          await box.waitFor({ state: 'visible', timeout: 10_000 });
          await box.fill(`>${title}`);
          let row: Locator;
          try {
            row = await findRow(page, title);
          } catch (e) {
            if (attempt >= 4) throw e;
            await page.keyboard.press('Escape');
            continue;
          }
          await row.click();
          await quickInput.waitFor({ state: 'hidden', timeout: 10_000 }).catch(() => undefined);
          return;
        }
      },
      async notifications() {
        return (await page.locator(SELECTORS.toast).allInnerTexts()).map((t) => t.trim());
      },
      async waitForNotification(text, timeoutMs = 15_000) {
        const toast = page.locator(SELECTORS.toast).filter({ hasText: text }).first();
        await toast.waitFor({ state: 'visible', timeout: timeoutMs }).catch(async (err: Error) => {
          throw new Error(`No notification matching ${String(text)} within ${timeoutMs} ms (${err.message}). Visible: ${JSON.stringify(await wb.notifications())}`);
        });
        return (await toast.innerText()).trim();
      },
      async screenshot(name) {
        fs.mkdirSync(screenshotsDir, { recursive: true });
        const file = path.join(screenshotsDir, name.endsWith('.png') ? name : `${name}.png`);
        await page.screenshot({ path: file });
        return file;
      },
      consoleMessages: () => [...messages],
      close,
    };
    return wb;
  } catch (err) {
    await close();
    throw err;
  }
}

/**
 * The palette row for `title`: the one whose label is exactly the title, else the first whose label contains it.
 * Waits up to 10 s (the list fills in as extensions register commands).
 */
async function findRow(page: Page, title: string): Promise<Locator> {
  const rows = page.locator(SELECTORS.quickInputRow);
  const deadline = Date.now() + 10_000;
  for (;;) {
    const labels = (await rows.evaluateAll((els) => els.map((el) => (el.querySelector('.label-name')?.textContent ?? el.textContent ?? '').trim())));
    let i = labels.findIndex((l) => l === title);
    if (i < 0) i = labels.findIndex((l) => l.includes(title));
    if (i >= 0) return rows.nth(i);
    if (Date.now() > deadline) throw new Error(`Command '${title}' not in the palette. Rows: ${JSON.stringify(labels)}`);
    await page.waitForTimeout(200);
  }
}
