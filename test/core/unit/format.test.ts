// format: the pure text helpers of the Task Explorer, status bar and notifications (src/extension/format/).
// No VS Code and no database: durations, counts, relative times, SQL previews, icons, and that foreign task
// text cannot turn into markdown or notification links.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { TaskSummary } from '../../../src/core/models';
import { connectionAdvice, connectionDescription } from '../../../src/extension/format/connection';
import { connectionIcon, stateIcon } from '../../../src/extension/format/icons';
import { finishMessage, notificationText, statusBarText, summaryMessage } from '../../../src/extension/format/messages';
import { formatCount, formatDuration, formatRelative, formatTimestamp, plural } from '../../../src/extension/format/quantities';
import { progressText, taskDescription, taskLabel, taskTooltipLines, taskTooltipMarkdown } from '../../../src/extension/format/task';
import { codeFence, escapeMarkdown, oneLine, sqlHead, sqlPreview, truncate } from '../../../src/extension/format/text';

const S = 1000;
const MIN = 60 * S;
const H = 60 * MIN;
const D = 24 * H;
const NOW = new Date(2024, 5, 15, 12, 0, 0);
const ago = (ms: number) => new Date(NOW.getTime() - ms);

function task(over: Partial<TaskSummary> = {}): TaskSummary {
  return {
    id: 12, owner: 'alice', state: 'done', info: null, sql: 'select 1', submittedAt: ago(10 * MIN), startTime: ago(10 * MIN),
    endTime: ago(10 * MIN - 123 * S), stepCount: 1, stepCurrent: null, rowsAffected: null, error: null, exitReason: null,
    cancelRequested: false, waitEventType: null, waitEvent: null, workerState: null, blockedBy: null, progress: null, ...over,
  };
}

describe('formatDuration', () => {
  const cases: [number, string][] = [
    [0, '0 ms'], [340, '340 ms'], [999, '999 ms'], [1000, '1 s'], [12_345, '12 s'], [59_999, '59 s'], [60_000, '1 min'],
    [123_000, '2 min 3 s'], [59 * MIN + 59 * S, '59 min 59 s'], [H, '1 h 00 min'], [H + 2 * MIN + 30 * S, '1 h 02 min'],
    [23 * H + 59 * MIN, '23 h 59 min'], [D, '1 d 00 h'], [3 * D + 4 * H + 5 * MIN, '3 d 04 h'],
  ];
  for (const [ms, want] of cases) test(`${ms} ms → ${want}`, () => assert.equal(formatDuration(ms), want));
  test('negative (clock skew) and NaN read as zero', () => {
    assert.equal(formatDuration(-5000), '0 ms');
    assert.equal(formatDuration(Number.NaN), '0 ms');
  });
});

describe('counts', () => {
  test('thousands separators, independent of the locale', () => {
    assert.equal(formatCount(0), '0');
    assert.equal(formatCount(999), '999');
    assert.equal(formatCount(1000), '1,000');
    assert.equal(formatCount(1_234_567), '1,234,567');
    assert.equal(formatCount(-1000), '-1,000');
    assert.equal(formatCount(12.7), '12');
  });
  test('plural', () => {
    assert.equal(plural(1, 'row'), '1 row');
    assert.equal(plural(0, 'row'), '0 rows');
    assert.equal(plural(1000, 'row'), '1,000 rows');
    assert.equal(plural(2, 'child', 'children'), '2 children');
  });
});

describe('times', () => {
  test('relative', () => {
    assert.equal(formatRelative(ago(30 * S), NOW), 'just now');
    assert.equal(formatRelative(new Date(NOW.getTime() + 5 * MIN), NOW), 'just now');
    assert.equal(formatRelative(ago(5 * MIN + 10 * S), NOW), '5 min ago');
    assert.equal(formatRelative(ago(3 * H + 59 * MIN), NOW), '3 h ago');
    assert.equal(formatRelative(ago(25 * H), NOW), 'yesterday');
    assert.equal(formatRelative(ago(4 * D + H), NOW), '4 days ago');
    assert.equal(formatRelative(new Date(2024, 3, 1, 8, 0, 0), NOW), '2024-04-01');
  });
  test('timestamp is local time, zero-padded', () => {
    assert.equal(formatTimestamp(new Date(2024, 0, 2, 3, 4, 5)), '2024-01-02 03:04:05');
    assert.equal(formatTimestamp(new Date(2024, 11, 31, 23, 59, 58)), '2024-12-31 23:59:58');
  });
});

describe('truncation', () => {
  test('short text is unchanged, long text ends with … within the limit', () => {
    assert.equal(truncate('abc', 3), 'abc');
    assert.equal(truncate('abcdef', 4), 'abc…');
    assert.equal(Array.from(truncate('x'.repeat(100), 10)).length, 10);
  });
  test('never splits a surrogate pair', () => {
    assert.equal(truncate('😀😀😀😀', 3), '😀😀…');
  });
  test('no space before the ellipsis', () => {
    assert.equal(truncate('ab cdef', 4), 'ab…');
  });
  test('oneLine collapses newlines and runs of spaces', () => {
    assert.equal(oneLine('  a\n\n\tb   c  '), 'a b c');
  });
});

describe('sqlPreview', () => {
  test('collapses whitespace and newlines', () => {
    assert.equal(sqlPreview('select a,\n       b\n  from   t\n'), 'select a, b from t');
  });
  test('drops line and nested block comments', () => {
    assert.equal(sqlPreview('-- nightly job\nupdate t /* outer /* inner */ still */ set x = 1 -- end'), 'update t set x = 1');
  });
  test('keeps comment markers inside quotes', () => {
    assert.equal(sqlPreview("select '--not a comment', \"/*col*/\" from t"), "select '--not a comment', \"/*col*/\" from t");
    assert.equal(sqlPreview("select 'it''s -- here'"), "select 'it''s -- here'");
  });
  test('E strings take backslash escapes', () => {
    assert.equal(sqlPreview("select E'a\\' -- b' -- c"), "select E'a\\' -- b'");
  });
  test('dollar quotes are kept whole, parameters are not quotes', () => {
    assert.equal(sqlPreview('do $x$ begin -- hi\nend $x$; -- c'), 'do $x$ begin -- hi end $x$;');
    assert.equal(sqlPreview('select $1 -- p'), 'select $1');
  });
  test('truncates with …', () => {
    const p = sqlPreview(`select ${'col, '.repeat(50)}x from t`, 30);
    assert.equal(Array.from(p).length <= 30, true);
    assert.match(p, /^select col, col, .*…$/);
  });
  test('only comments give an empty preview', () => {
    assert.equal(sqlPreview('-- nothing\n/* here */'), '');
  });
});

describe('task items', () => {
  test('label prefers info, falls back to the SQL preview', () => {
    assert.equal(taskLabel(task({ info: '  nightly\nrollup ' })), '#12 nightly rollup');
    assert.equal(taskLabel(task({ info: '   ', sql: 'vacuum  -- x\n analyze t' })), '#12 vacuum analyze t');
  });
  test('icons by state', () => {
    assert.deepEqual(stateIcon('running'), { id: 'loading~spin' });
    assert.deepEqual(stateIcon('queued'), { id: 'clock' });
    assert.deepEqual(stateIcon('done'), { id: 'pass', color: 'testing.iconPassed' });
    assert.deepEqual(stateIcon('failed'), { id: 'error', color: 'testing.iconFailed' });
    assert.deepEqual(stateIcon('cancelled'), { id: 'circle-slash' });
    assert.deepEqual(stateIcon('lost'), { id: 'warning', color: 'problemsWarningIcon.foreground' });
  });
  test('running: duration so far, step and wait event', () => {
    const t = task({ state: 'running', startTime: ago(3 * MIN), endTime: null, stepCount: 5, stepCurrent: 2, waitEventType: 'IO', waitEvent: 'DataFileRead' });
    assert.equal(taskDescription(t, NOW), '3 min · step 2/5 · IO DataFileRead');
  });
  test('running: blocking wins over the wait event, and a cancel shows', () => {
    const t = task({ state: 'running', startTime: ago(12 * S), endTime: null, blockedBy: [101, 202], waitEventType: 'Lock', waitEvent: 'relation', cancelRequested: true });
    assert.equal(taskDescription(t, NOW), 'cancelling… · 12 s · blocked by pid 101, 202');
  });
  test('running: progress of a maintenance command', () => {
    const progress = { kind: 'create_index', phase: 'building index', blocks_done: 42, blocks_total: 100 };
    assert.equal(progressText(progress), 'create index: building index 42%');
    assert.equal(progressText({ kind: 'vacuum', phase: 'scanning heap', heap_blks_scanned: 0, heap_blks_total: 0 }), 'vacuum: scanning heap');
    assert.equal(progressText(null), undefined);
  });
  test('queued: since when', () => {
    assert.equal(taskDescription(task({ state: 'queued', submittedAt: ago(2 * MIN), startTime: null, endTime: null }), NOW), 'queued 2 min ago');
  });
  test('done: duration, rows, when', () => {
    assert.equal(taskDescription(task({ rowsAffected: 1000, startTime: ago(2 * H + 12 * S), endTime: ago(2 * H) }), NOW), '12 s · 1,000 rows · 2 h ago');
  });
  test('failed: the SQLSTATE', () => {
    const t = task({ state: 'failed', error: { sqlstate: '22012', message: 'division by zero' }, startTime: ago(5 * S), endTime: ago(S) });
    assert.equal(taskDescription(t, NOW), '4 s · error 22012 · just now');
  });
  test('cancelled before it started', () => {
    assert.equal(taskDescription(task({ state: 'cancelled', startTime: null, endTime: ago(3 * MIN) }), NOW), 'cancelled before it started · 3 min ago');
  });
});

describe('tooltips', () => {
  test('escapeMarkdown makes links and emphasis literal', () => {
    assert.equal(escapeMarkdown('[x](command:evil)'), '\\[x\\]\\(command\\:evil\\)');
    assert.equal(escapeMarkdown('*a* _b_ <img>'), '\\*a\\* \\_b\\_ \\<img\\>');
    assert.equal(escapeMarkdown('plain words 42'), 'plain words 42');
  });
  test('codeFence outgrows any backtick run in the code', () => {
    assert.equal(codeFence('select 1', 'sql'), '```sql\nselect 1\n```');
    assert.equal(codeFence('a ``` b ```` c', 'sql'), '`````sql\na ``` b ```` c\n`````');
  });
  test('sqlHead keeps the head of long SQL', () => {
    assert.equal(sqlHead('a\nb\nc\n', 2), 'a\nb\n…');
    assert.equal(sqlHead('a\nb', 2), 'a\nb');
    assert.equal(sqlHead('x'.repeat(10), 30, 4), 'xxxx\n…');
  });
  test('lines: owner, info, times, error', () => {
    const t = task({
      state: 'failed', info: 'monthly load', rowsAffected: 5, exitReason: 'a step failed', submittedAt: new Date(2024, 5, 15, 11, 50, 0),
      startTime: new Date(2024, 5, 15, 11, 50, 0), endTime: new Date(2024, 5, 15, 11, 52, 3), stepCount: 3, stepCurrent: 2,
      error: { sqlstate: '23505', message: 'duplicate key', detail: 'Key (id)=(1) already exists.', hint: 'Use ON CONFLICT.', step: 2 },
    });
    assert.deepEqual(taskTooltipLines(t, NOW), [
      '#12 · failed · owner alice',
      'monthly load',
      'Submitted 2024-06-15 11:50:00 (10 min ago)',
      'Started 2024-06-15 11:50:00',
      'Ended 2024-06-15 11:52:03 (7 min ago)',
      'Ran for 2 min 3 s',
      'Step 2 of 3',
      '5 rows affected',
      'Error: 23505 duplicate key (step 2)',
      'Detail: Key (id)=(1) already exists.',
      'Hint: Use ON CONFLICT.',
    ]);
  });
  test('lines: why a task was lost', () => {
    const lines = taskTooltipLines(task({ state: 'lost', exitReason: 'the supervisor backend (pid 7) is gone' }), NOW);
    assert.equal(lines.at(-1), 'Why: the supervisor backend (pid 7) is gone');
  });
  test('markdown: foreign info is escaped, the SQL sits in a code block it cannot leave', () => {
    const md = taskTooltipMarkdown(task({ info: '[click](command:workbench.action.terminal.new)\nsecond', sql: 'select 1 -- ```\n[x](command:y)' }), NOW);
    assert.ok(md.startsWith('\\#12 · done · owner alice  \n\\[click\\]\\(command\\:workbench\\.action\\.terminal\\.new\\)  \nsecond  \nSubmitted 2024\\-06\\-15 '), md);
    assert.ok(md.endsWith('\n\n````sql\nselect 1 -- ```\n[x](command:y)\n````'), md);
    assert.equal(md.includes('[click]('), false);
  });
});

describe('notifications', () => {
  test('notificationText breaks link syntax, flattens and truncates', () => {
    assert.equal(notificationText('see [here](command:evil)\nnow'), 'see [here] (command:evil) now');
    assert.equal(notificationText('[a]  (b)'), '[a] (b)');
    assert.equal(Array.from(notificationText('y'.repeat(500), 50)).length, 50);
  });
  test('done', () => {
    assert.deepEqual(finishMessage(task({ info: 'nightly rollup' }), NOW), { text: 'Task #12 finished in 2 min 3 s: nightly rollup', severity: 'info' });
  });
  test('done without info previews the SQL and defuses links in it', () => {
    assert.equal(finishMessage(task({ sql: "select '[a](command:x)'" }), NOW).text, "Task #12 finished in 2 min 3 s: select '[a] (command:x)'");
  });
  test('failed shows SQLSTATE and message', () => {
    const t = task({ state: 'failed', error: { sqlstate: '22012', message: 'division by zero', step: 2 } });
    assert.deepEqual(finishMessage(t, NOW), { text: 'Task #12 failed: 22012 division by zero (step 2)', severity: 'error' });
  });
  test('cancelled and lost', () => {
    assert.deepEqual(finishMessage(task({ state: 'cancelled', startTime: null }), NOW), { text: 'Task #12 was cancelled: select 1', severity: 'info' });
    const lost = finishMessage(task({ state: 'lost', exitReason: 'the server restarted' }), NOW);
    assert.deepEqual(lost, { text: 'Task #12 was lost: the server restarted (select 1)', severity: 'warning' });
  });
  test('summary counts by state in lifecycle order', () => {
    assert.equal(summaryMessage(['failed', 'done', 'done', 'done', 'done'], true), '5 background tasks ended while VS Code was closed: 4 done, 1 failed');
    assert.equal(summaryMessage(['lost', 'cancelled', 'done', 'cancelled'], false), '4 background tasks ended: 1 done, 2 cancelled, 1 lost');
  });
});

describe('status bar', () => {
  test('text by counts', () => {
    assert.equal(statusBarText(0, 0), '');
    assert.equal(statusBarText(1, 0), '$(loading~spin) 1 task running');
    assert.equal(statusBarText(3, 0), '$(loading~spin) 3 tasks running');
    assert.equal(statusBarText(2, 1000), '$(loading~spin) 2 tasks running · 1,000 queued');
    assert.equal(statusBarText(0, 2), '$(clock) 2 tasks queued');
  });
});

describe('connections', () => {
  const base = { label: 'alice@db1:5432/app' };
  test('description: address when ready, else the trouble', () => {
    assert.equal(connectionDescription({ ...base, state: 'ready' }), 'alice@db1:5432/app');
    assert.equal(connectionDescription({ ...base, state: 'noSchema' }), 'bgtask schema not installed');
    assert.equal(connectionDescription({ ...base, state: 'error', problem: 'connect ECONNREFUSED\n127.0.0.1:5432' }), 'connect ECONNREFUSED 127.0.0.1:5432');
    assert.equal(connectionDescription({ ...base, state: 'error' }), 'cannot connect');
  });
  test('icons', () => {
    assert.deepEqual(connectionIcon('ready'), { id: 'database' });
    assert.deepEqual(connectionIcon('noPassword'), { id: 'warning', color: 'problemsWarningIcon.foreground' });
    assert.deepEqual(connectionIcon('error'), { id: 'error', color: 'problemsErrorIcon.foreground' });
  });
  test('advice names versions and what to do', () => {
    assert.equal(connectionAdvice({ ...base, state: 'outdated', installedVersion: 1, latestVersion: 2 }), 'The bgtask schema is older than this extension (installed v1, this extension v2). Upgrade it.');
    assert.match(connectionAdvice({ ...base, state: 'error', problem: 'password authentication failed' }), /^Cannot use this connection: password authentication failed\. .*retry\.$/);
  });
});
