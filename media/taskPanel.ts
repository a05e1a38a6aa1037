import '@vscode-elements/elements/dist/vscode-button/index.js';
import { stepWithRows, type ErrorView, type HostToWebview, type RowsView, type StepView, type TaskView, type WebviewToHost } from '../src/core/protocol/webview';
import { errorExcerpt } from './errorExcerpt';
import { ResultGrid, el } from './grid';

interface PanelState {
  connection: string;
  id: number;
  selectedStep: number | null;
  scrollTop: number;
}
declare function acquireVsCodeApi(): { postMessage(m: WebviewToHost): void; getState(): unknown; setState(s: PanelState): void };

const vscode = acquireVsCodeApi();
const send = (m: WebviewToHost) => vscode.postMessage(m);
const saved = vscode.getState() as Partial<PanelState> | undefined;

const TASK_ICONS: Record<TaskView['state'], string> = { queued: 'clock', running: 'loading', done: 'pass', failed: 'error', cancelled: 'circle-slash', lost: 'warning' };
const STEP_ICONS: Record<StepView['state'], string> = { pending: 'circle-outline', running: 'loading', done: 'pass', failed: 'error', cancelled: 'circle-slash', skipped: 'debug-step-over' };

let task: TaskView | undefined;
let selectedStep: number | null = typeof saved?.selectedStep === 'number' ? saved.selectedStep : null;
let scrollTop = typeof saved?.scrollTop === 'number' ? saved.scrollTop : 0;
let grid: ResultGrid | undefined;
let gridKey = '';
let nextRequest = 1;
let ticker: number | undefined;
let saveTimer: number | undefined;
/** Until the user picks a step, the panel follows the task (a running task's result appears when it ends). */
let stepChosen = selectedStep !== null;

function button(label: string, icon: string, onClick: () => void, secondary = true) {
  const b = el('vscode-button');
  b.textContent = label;
  b.icon = icon;
  b.secondary = secondary;
  b.addEventListener('click', onClick);
  return b;
}

function icon(name: string, spin = false) {
  const i = el('span', `codicon codicon-${name}${spin ? ' codicon-modifier-spin' : ''}`);
  i.setAttribute('aria-hidden', 'true');
  return i;
}

// The page is built once; messages only change text, visibility and the parts that depend on the task.
// The host writes the task's id on <body>, so even a panel whose task cannot be read says which task it is.
const bodyTask = Number(document.body.dataset.task);
const heading = el('h1', undefined, Number.isSafeInteger(bodyTask) && bodyTask > 0 ? `Task #${bodyTask}` : 'Task');
const badge = el('span', 'badge');
const infoLine = el('p', 'info');
const meta = el('dl', 'meta');
const live = el('dl', 'meta live');
const cancelBtn = button('Cancel', 'debug-stop', () => send({ type: 'cancel' }));
const rerunBtn = button('Re-run', 'debug-restart', () => send({ type: 'rerun' }));
const refreshBtn = button('Refresh', 'refresh', () => send({ type: 'refresh' }));
const toolbar = el('div', 'toolbar', cancelBtn, rerunBtn, refreshBtn);
const banner = el('div', 'banner');
const errorTitle = el('h2', undefined, 'Error');
const errorBody = el('div');
const errorSection = el('section', 'error-section', errorTitle, errorBody);
// A long SQL text scrolls inside its box, which the keyboard must reach too.
const sqlPre = el('pre', 'sql');
const sqlSection = el('section', 'sql-section', el('h2', undefined, 'SQL'), sqlPre);
const stepsBody = el('tbody');
const stepsHead = el('tr', undefined, ...['#', 'State', 'Statement', 'Rows', 'Duration', 'Result'].map((h) => el('th', ['#', 'Rows', 'Duration'].includes(h) ? 'num' : undefined, h)));
const stepsSection = el('section', 'steps-section', el('h2', undefined, 'Steps'), el('div', 'steps-scroll', el('table', 'steps', el('thead', undefined, stepsHead), stepsBody)));
const exportCsv = button('Export CSV', 'export', () => selectedStep !== null && send({ type: 'export', step: selectedStep, format: 'csv' }));
const exportJson = button('Export JSON', 'json', () => selectedStep !== null && send({ type: 'export', step: selectedStep, format: 'json' }));
const copyBtn = button('Copy Cell', 'copy', () => grid?.copySelected());
const resultToolbar = el('div', 'toolbar', exportCsv, exportJson, copyBtn);
const resultTitle = el('h2', undefined, 'Result');
const resultCount = el('p', 'result-count');
const resultBody = el('div', 'result-body');
const resultSection = el('section', 'result-section', resultTitle, resultToolbar, resultCount, resultBody);

toolbar.setAttribute('role', 'toolbar');
toolbar.setAttribute('aria-label', 'Task actions');
resultToolbar.setAttribute('role', 'toolbar');
resultToolbar.setAttribute('aria-label', 'Result actions');
banner.setAttribute('role', 'alert');
sqlPre.tabIndex = 0;
sqlPre.setAttribute('aria-label', 'SQL of the task');
for (const e of [cancelBtn, rerunBtn, banner, errorSection, sqlSection, stepsSection, resultSection, live]) e.hidden = true;
badge.replaceChildren(icon('loading', true), el('span', undefined, 'loading…'));
const header = el('header', 'task-header', el('div', 'title-line', heading, badge), infoLine, meta, live);
// Everything that shows the task, dimmed together while it may be out of date (see the 'error' message).
const content = el('div', 'content', errorSection, sqlSection, stepsSection, resultSection);
(document.getElementById('app') ?? document.body).append(header, toolbar, banner, content);

const fmtTime = (iso: string | null) => (iso ? new Date(iso).toLocaleString() : '');
const fmtCount = (n: number | null) => (n === null ? '' : n.toLocaleString());
const fmtRows = (n: number) => `${n.toLocaleString()} ${n === 1 ? 'row' : 'rows'}`;

function fmtDuration(start: string | null, end: string | null): string {
  if (!start) return '';
  const ms = Math.max(0, (end ? Date.parse(end) : Date.now()) - Date.parse(start));
  if (ms < 1000) return `${ms} ms`;
  // Cut, not rounded, to one decimal: the tree and notifications cut to whole seconds, so 2.97 s reads 2.9 s here and 2 s there, never 3.0 s.
  if (ms < 60_000) return `${(Math.floor(ms / 100) / 10).toFixed(1)} s`;
  const s = Math.floor(ms / 1000);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return `${h ? `${h} h ` : ''}${m} min ${String(s % 60).padStart(2, '0')} s`;
}

function fill(dl: HTMLElement, pairs: [string, string][]): void {
  dl.replaceChildren();
  for (const [k, v] of pairs) {
    if (v === '') continue;
    // A dl may group each dt with its dd in a div, which lets the pairs wrap together.
    dl.append(el('div', 'pair', el('dt', undefined, k), el('dd', undefined, v)));
  }
}

function saveState(): void {
  if (task) vscode.setState({ connection: task.connection, id: task.id, selectedStep, scrollTop });
}

/** pg_stat_progress_* as "phase" plus each "<x>_done / <x>_total"-like pair the view has. */
function progressPairs(p: Record<string, unknown>): [string, string][] {
  const out: [string, string][] = [['Progress', String(p.kind ?? '').replace('_', ' ')], ['Phase', typeof p.phase === 'string' ? p.phase : '']];
  for (const [k, total] of Object.entries(p)) {
    if (!k.endsWith('_total') || typeof total !== 'number' || total <= 0) continue;
    const base = k.slice(0, -'_total'.length);
    const done = ['done', 'scanned', 'processed', 'vacuumed'].map((s) => p[`${base}_${s}`]).find((v) => typeof v === 'number');
    if (typeof done === 'number') out.push([base.replace(/_/g, ' '), `${done.toLocaleString()} / ${total.toLocaleString()} (${Math.floor((100 * done) / total)} %)`]);
  }
  return out;
}

function renderHeader(t: TaskView): void {
  heading.textContent = `Task #${t.id}`;
  badge.className = `badge state-${t.state}`;
  badge.replaceChildren(icon(TASK_ICONS[t.state], t.state === 'running'), el('span', undefined, t.cancelRequested && !t.endTime ? `${t.state} (cancel requested)` : t.state));
  infoLine.textContent = t.info ?? '';
  infoLine.hidden = !t.info;
  const durationPair: [string, string] = ['Duration', fmtDuration(t.startTime, t.endTime)];
  // Only what says something: "Step 1 / 1", "Rows 0" for a CREATE INDEX or "Exit reason finished" are noise.
  const counted = t.steps.some((s) => s.rowsAffected !== null || s.resultRows !== null);
  const obvious = ['finished', 'a step failed'];
  fill(meta, [
    ['Connection', t.connection], ['Owner', t.owner], ['Submitted', fmtTime(t.submittedAt)], ['Started', fmtTime(t.startTime)],
    ['Ended', fmtTime(t.endTime)], durationPair,
    ['Step', t.stepCount > 1 ? `${t.stepCurrent ?? 0} of ${t.stepCount}` : ''],
    ['Rows', counted ? fmtCount(t.rowsAffected) : ''], ['Why it ended', t.exitReason && !obvious.includes(t.exitReason) ? t.exitReason : ''],
  ]);
  window.clearInterval(ticker);
  if (t.state === 'running' && t.startTime) {
    // A ticking elapsed time; the host re-reads live data on its own schedule.
    const dd = [...meta.querySelectorAll('dt')].find((d) => d.textContent === 'Duration')?.nextElementSibling;
    ticker = window.setInterval(() => dd && (dd.textContent = fmtDuration(t.startTime, null)), 1000);
  }
  const l = t.live;
  live.hidden = !l;
  if (l) {
    fill(live, [
      ['Waiting on', l.waitEvent ?? 'nothing (working)'],
      ['Blocked by', l.blockedBy?.length ? `PID ${l.blockedBy.join(', ')}` : ''],
      ...(l.progress ? progressPairs(l.progress) : []),
    ]);
  }
  cancelBtn.hidden = t.state !== 'queued' && t.state !== 'running';
  cancelBtn.disabled = t.cancelRequested;
  rerunBtn.hidden = refreshBtn.hidden = false;
  rerunBtn.disabled = t.state === 'queued' || t.state === 'running';
}

/**
 * The error box. A task the user cancelled carries SQLSTATE 57014 too, but that is the expected outcome, not
 * a failure: it gets a quiet note instead of the red box.
 */
function renderError(t: TaskView, e: ErrorView | null): void {
  errorSection.hidden = !e;
  if (!e) return;
  const cancelled = t.state === 'cancelled' && (e.sqlstate === '57014' || e.sqlstate === '');
  errorSection.classList.toggle('cancelled', cancelled);
  errorTitle.textContent = cancelled ? 'Cancelled' : 'Error';
  if (cancelled) {
    const where = e.step && t.steps.length > 1 ? ` while step ${e.step} of ${t.steps.length} ran` : '';
    const later = t.steps.some((s) => s.state === 'skipped') ? ' The steps after it were skipped.' : '';
    const before = t.steps.some((s) => s.state === 'done') ? ' Steps that had finished stay committed.' : '';
    errorBody.replaceChildren(el('p', undefined, `The task was cancelled${where}; its running statement was rolled back.${before}${later}`));
    return;
  }
  const parts: HTMLElement[] = [el('p', 'error-message', el('code', 'sqlstate', e.sqlstate), ' ', el('span', undefined, e.message))];
  const field = (name: string, value: string | undefined, pre = false) =>
    value && parts.push(el('div', 'error-field', el('span', 'field-name', `${name}: `), el(pre ? 'pre' : 'span', undefined, value)));
  field('Step', e.step && t.steps.length > 1 ? `${e.step} of ${t.steps.length}` : undefined);
  field('Detail', e.detail);
  field('Hint', e.hint);
  field('Context', e.context, true);
  const stepSql = t.steps.find((s) => s.n === e.step)?.sql ?? (t.steps.length === 1 ? t.steps[0].sql : undefined);
  const excerpt = e.position && stepSql !== undefined ? errorExcerpt(stepSql, e.position) : undefined;
  if (excerpt) {
    const pre = el('pre', 'excerpt', `${excerpt.line}\n${excerpt.caret}`);
    pre.setAttribute('aria-label', `Error at character ${e.position}`);
    parts.push(pre);
  } else if (e.position) {
    field('Position', `character ${e.position}`);
  }
  // Only a position gives the editor somewhere to go; without one the SQL below says as much.
  if (e.position) parts.push(button('Go to Error', 'go-to-file', () => send({ type: 'goToError' }), false));
  errorBody.replaceChildren(...parts);
}

/** What the Result column says about a step's rows: kept (and how many), a plan, or why not. */
function resultNote(s: StepView): { text: string; title: string } {
  const how = s.capture ?? '';
  if (s.hasResult) return how === 'explain' ? { text: 'plan kept', title: 'EXPLAIN output kept' } : { text: `${fmtCount(s.resultStored ?? 0)} kept`, title: `rows kept on the server (${how})` };
  if (how.startsWith('not captured')) return { text: 'not kept', title: how };
  return { text: '', title: '' };
}

function renderSteps(t: TaskView): void {
  const focused = (document.activeElement as HTMLElement | null)?.dataset?.step;
  stepsSection.hidden = t.steps.length === 0;
  stepsBody.replaceChildren(...t.steps.map((s) => {
    const tr = el('tr', s.n === selectedStep ? 'selected' : undefined,
      el('td', 'num', String(s.n)),
      el('td', `state-${s.state}`, icon(STEP_ICONS[s.state], s.state === 'running'), ` ${s.state}`),
      el('td', 'statement', oneLine(s.sql)),
      el('td', 'num', fmtCount(s.resultRows ?? s.rowsAffected)),
      el('td', 'num', fmtDuration(s.startTime, s.endTime)),
      resultCell(s));
    tr.tabIndex = 0;
    tr.dataset.step = String(s.n);
    if (s.n === selectedStep) tr.setAttribute('aria-current', 'true');
    tr.title = s.sql.length > 500 ? `${s.sql.slice(0, 500)}…` : s.sql;
    const pick = () => selectStep(s.n);
    tr.addEventListener('click', pick);
    tr.addEventListener('keydown', (e) => (e.key === 'Enter' || e.key === ' ') && (e.preventDefault(), pick()));
    return tr;
  }));
  if (focused) (stepsBody.querySelector(`tr[data-step="${CSS.escape(focused)}"]`) as HTMLElement | null)?.focus();
}

function oneLine(sql: string): string {
  const flat = sql.replace(/\s+/g, ' ').trim();
  return flat.length > 200 ? `${flat.slice(0, 199)}…` : flat;
}

function resultCell(s: StepView): HTMLElement {
  const note = resultNote(s);
  const td = el('td', undefined, note.text);
  if (note.title) td.title = note.title;
  return td;
}

function selectStep(n: number): void {
  stepChosen = true;
  if (n === selectedStep) return;
  selectedStep = n;
  scrollTop = 0;
  saveState();
  if (task) {
    renderSteps(task);
    renderResult(task);
  }
}

/** Why a step shows no grid, in words a DBA would use. */
function noRowsReason(t: TaskView, s: StepView): string {
  const what = t.steps.length === 1 ? 'This task' : 'This statement';
  if (s.hasResult) return s.resultRows ? `${what} returned ${fmtRows(s.resultRows)}; none were stored (the max rows setting).` : `${what} returned no rows.`;
  if (s.state === 'pending' || s.state === 'running') return 'Rows appear here when the statement has finished.';
  if (s.state !== 'done') return `The statement ${s.state === 'failed' ? 'failed' : s.state === 'skipped' ? 'was skipped' : 'was cancelled'}, so there are no rows.`;
  if (s.capture?.startsWith('not captured')) return `Rows were ${s.capture}.`;
  return `Rows are collected for statements that return rows${s.commandTag ? `; ${s.commandTag} does not` : ''}.`;
}

function renderResult(t: TaskView, firstRows?: RowsView): void {
  const s = t.steps.find((x) => x.n === selectedStep);
  resultSection.hidden = !s;
  if (!s) return;
  resultTitle.textContent = t.steps.length > 1 ? `Result of step ${s.n}` : 'Result';
  exportCsv.hidden = exportJson.hidden = !s.hasResult;
  const stored = s.hasResult ? (s.resultStored ?? 0) : 0;
  copyBtn.hidden = stored === 0;
  resultCount.hidden = stored === 0;
  const total = s.resultRows ?? stored;
  resultCount.textContent = total === stored ? fmtRows(total) : `${fmtRows(total)} (${fmtCount(stored)} stored)`;
  // The state is part of the key: a step that ends without rows must replace "Rows appear when…".
  const key = stored > 0 ? `${s.n}:${stored}` : `${s.n}:empty:${s.state}:${s.capture ?? ''}`;
  if (key === gridKey) return;
  gridKey = key;
  grid?.dispose();
  grid = undefined;
  if (stored === 0) {
    resultBody.replaceChildren(el('p', 'empty', noRowsReason(t, s)));
    return;
  }
  const step = s.n;
  grid = new ResultGrid(
    {
      fetch: (afterRow, limit) => {
        const requestId = nextRequest++;
        send({ type: 'fetchRows', requestId, step, afterRow, limit });
        return requestId;
      },
      copy: (text) => send({ type: 'copy', text }),
      scrolled: (top) => {
        // setState travels to the extension host; once per scroll gesture is enough.
        scrollTop = top;
        window.clearTimeout(saveTimer);
        saveTimer = window.setTimeout(saveState, 250);
      },
      selectionChanged: () => (copyBtn.disabled = grid?.selectedValue() === undefined),
    },
    stored,
    scrollTop,
    firstRows?.step === step ? firstRows : undefined,
  );
  copyBtn.disabled = true;
  resultBody.replaceChildren(grid.element);
}

function onTask(t: TaskView, firstRows?: RowsView): void {
  task = t;
  banner.hidden = true;
  content.classList.remove('stale');
  header.classList.remove('stale');
  if (!stepChosen || !t.steps.some((s) => s.n === selectedStep)) {
    // The last step with rows is what a DBA usually came for; else the failed one, the running one, the last.
    const pick = stepWithRows(t.steps) ?? t.steps.find((s) => s.state === 'failed' || s.state === 'running') ?? t.steps.at(-1);
    if (pick?.n !== selectedStep) scrollTop = 0;
    selectedStep = pick?.n ?? null;
  }
  document.title = `Task #${t.id}`;
  renderHeader(t);
  renderError(t, t.error ?? t.steps.find((s) => s.error)?.error ?? null);
  sqlSection.hidden = false;
  sqlPre.textContent = t.sql;
  renderSteps(t);
  renderResult(t, firstRows);
  saveState();
}

window.addEventListener('message', (event: MessageEvent<HostToWebview>) => {
  const m = event.data;
  switch (m.type) {
    case 'task':
      onTask(m.task, m.firstRows);
      break;
    case 'rows':
      grid?.onRows(m.requestId, m.columns, m.firstRow, m.rows, m.totalStored);
      break;
    case 'error':
      if (m.requestId !== undefined && grid?.onError(m.requestId, m.message)) break;
      // What is on screen may be out of date now (server down, task purged): say so, dim it, stop the clock.
      banner.textContent = task ? `${m.message.replace(/[.]?$/, '.')} What you see below is the last state read.` : m.message;
      banner.hidden = false;
      refreshBtn.hidden = false;
      window.clearInterval(ticker);
      if (task) {
        content.classList.add('stale');
        header.classList.add('stale');
      } else {
        badge.replaceChildren(icon('warning'), el('span', undefined, 'not available'));
      }
      break;
    default: {
      const unknown: never = m;
      console.warn('unknown message', unknown);
    }
  }
});

send({ type: 'ready' });
