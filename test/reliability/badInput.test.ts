// Issue 4, case 8: bad input gets a clear error or a clean `failed` record, and nothing else is harmed.
// Covered elsewhere and not repeated: every quoting style of the recipe ('every quoting style of the recipe'),
// CREATE INDEX CONCURRENTLY in one string with another statement (25001), a transaction left open by the last of
// several steps (25001, rolled back), a read-only transaction refused — all in test/core/engine.test.ts.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { BgtaskDb, startBgtaskDb } from '../harness/bgtaskDb';
import { figure, nothingLeft, since, submitWith } from './helpers';

let db: BgtaskDb;
before(async () => {
  db = await startBgtaskDb();
  await db.sql(`create table rel_t (id int, v text); insert into rel_t values (1, 'one');
                create table rel_once (v int); create sequence rel_seq;
                grant select, insert on rel_t, rel_once to alice; grant usage on rel_seq to alice`);
});
after(async () => db?.close());

const submit = (sql: string | string[] | null, info: string | null = null) => submitWith(db.pool('alice'), sql as string, { info });
const taskCount = async () => (await db.sql('select count(*)::int as n from bgtask.tbl_task'))[0].n as number;

/** Where PostgreSQL itself puts the error, running the text directly (as psql would report it). */
async function directError(sql: string): Promise<{ code?: string; position?: number }> {
  const c = await db.client('alice');
  try {
    await c.query('begin');
    await c.query(sql);
    return {};
  } catch (e) {
    const err = e as { code?: string; position?: string };
    return { code: err.code, position: err.position === undefined ? undefined : Number(err.position) };
  } finally {
    await c.query('rollback').catch(() => undefined);
    await c.end();
  }
}

describe('bad input', () => {
  test('empty, whitespace, only comments or semicolons, NULL: a clear error, nothing submitted; an unterminated comment fails cleanly', async () => {
    const before = await taskCount();
    const blanks: (string | null)[] = ['', '   \n\t\r\n ', '-- only a comment', '/* only */ -- comments', ';', ' ; ;\n;',
      '/* nested /* comments */ are one comment */', '/* a */ ; -- b\n;', null];
    for (const sql of blanks) {
      await assert.rejects(submit(sql), (e: Error & { code?: string }) => e.code === '22023' && /no SQL to run/.test(e.message), JSON.stringify(sql));
    }
    await assert.rejects(submitWith(db.pool('alice'), ['select 1', ' ; '], {}), /no SQL to run in step 2/);
    assert.equal(await taskCount(), before, 'nothing was submitted');
    // Not blank to PostgreSQL either: the server's own error, recorded.
    const id = await submit('/* never closed');
    const t = await db.waitFor(id);
    assert.equal(t.state, 'failed');
    assert.equal(t.error?.sqlstate, '42601');
    assert.match(t.error?.message ?? '', /unterminated \/\* comment/);
    figure(`blank input: ${blanks.length}/${blanks.length} refused with 22023 "no SQL to run" (incl. ";" and a nested comment, which used to fail as 08006 "could not obtain message string"), nothing submitted`);
  });

  test('a syntax error keeps its position, in characters as PostgreSQL reports it, after emoji, CJK, tabs, CR/LF and on long lines', async () => {
    const cases: { name: string; sql: string | string[] }[] = [
      { name: 'emoji', sql: `select '😀' fromm x` },
      { name: 'accents, CJK and emoji', sql: `select 'é', '中文', '😀😀' fromm x` },
      { name: 'a symbol wide only in Unicode 16 (PostgreSQL 18)', sql: `select '☰☰☰ ⚊' fromm x` },
      { name: 'lines', sql: `select 1,\n  '😀'\n  fromm x` },
      { name: 'CR LF', sql: `select 1,\r\n  '中'\r\n  fromm x` },
      { name: 'lone CR', sql: `select 1,\r'中' fromm x` },
      { name: 'tabs', sql: `select\t'😀',\t2 fromm x` },
      { name: 'long line, cut on the left', sql: `select '${'abc😀'.repeat(30)}' fromm x` },
      { name: 'long line of wide characters', sql: `select '${'中'.repeat(40)}', '${'😀'.repeat(10)}' fromm x` },
      { name: 'long line, cut on the right', sql: `select fromm x y, '${'z'.repeat(200)}'` },
      { name: 'an undefined column (not a syntax error)', sql: `select '😀', nosuch from rel_t` },
      { name: 'end of input, step 2', sql: ['select 1', `select '😀' +`] },
    ];
    const rows: string[] = [];
    for (const c of cases) {
      const failing = Array.isArray(c.sql) ? c.sql[c.sql.length - 1] : c.sql;
      const direct = await directError(failing);
      assert.ok(direct.position, `${c.name}: PostgreSQL reports a position`);
      const t = await db.waitFor(await submit(c.sql));
      assert.equal(t.state, 'failed', c.name);
      assert.equal(t.error?.sqlstate, direct.code, c.name);
      assert.equal(t.error?.position, direct.position, `${c.name}: ${JSON.stringify(failing.slice(0, 80))}`);
      const step = t.steps[t.steps.length - 1];
      assert.equal(step.error?.position, direct.position);
      rows.push(`${c.name} ${direct.position}`);
    }
    // A position inside a function's own query is not a position in the task's text: none is recorded.
    const internal = `do $$ begin execute 'select fromm x y'; end $$`;
    assert.equal((await directError(internal)).position, undefined);
    const t = await db.waitFor(await submit(internal));
    assert.equal(t.error?.sqlstate, '42601');
    assert.equal(t.error?.position, undefined);
    figure(`syntax error positions: ${cases.length}/${cases.length} equal to PostgreSQL's own (characters, not bytes or screen columns), ` +
           `PostgreSQL ${db.server.major}; none for an error inside dynamic SQL`);
  });

  test('10 MB of SQL runs or fails cleanly, and fast: one literal, 100,000 statements, a syntax error at the very end', async () => {
    const started = Date.now();
    const timings: string[] = [];
    const time = async (name: string, sql: string) => {
      const t0 = Date.now();
      const t = await db.waitFor(await submit(sql), { timeoutMs: 60_000 });
      const ms = Date.now() - t0;
      timings.push(`${name} ${t.state} in ${ms} ms`);
      assert.ok(ms < 30_000, `${name}: ${ms} ms`);
      const [{ n }] = await db.sql('select length(sql)::int as n from bgtask.tbl_task where id = $1', [t.id]);
      assert.equal(n, sql.length, 'the text is stored whole');
      return t;
    };
    const big = 'x'.repeat(10 * 1024 * 1024);
    const literal = await time('a 10 MB literal', `select length('${big}') as n`);
    assert.equal(literal.state, 'done', JSON.stringify(literal.error));
    assert.equal((await db.sql(`select n from bgtask_result.${literal.steps[0].resultTable}`))[0].n, 10 * 1024 * 1024);

    const script = Array.from({ length: 100_000 }, (_, i) => `select '${'y'.repeat(80)}' as c${i}`).join(';\n');
    assert.ok(script.length > 10_000_000);
    const many = await time('100,000 statements (10 MB)', script);
    assert.equal(many.state, 'done', JSON.stringify(many.error));

    const broken = `select '${big}' fromm x`;
    const direct = await directError(broken);
    const failed = await time('10 MB with a syntax error at the end', broken);
    assert.equal(failed.state, 'failed');
    assert.equal(failed.error?.sqlstate, '42601');
    assert.equal(failed.error?.position, direct.position);
    assert.equal(failed.error?.position, broken.length);
    await nothingLeft(db);
    figure(`10 MB of SQL: 3/3 ended cleanly (${timings.join('; ')}); ${since(started)}`);
  });

  test('unicode and emoji in SQL and info, HTML and script in info: stored and listed verbatim, result intact', async () => {
    const cases = [
      { info: 'Résumé 📊 — 週次レポート ✓ \u202eRTL\u202c 👨‍👩‍👧 e\u0301',
        sql: `select '😀 naïve café 中文 한국어 עברית العربية 👨‍👩‍👧 e\u0301 \u200b𝄞' as "列😀", 'ok' as "ß"`,
        value: '😀 naïve café 中文 한국어 עברית العربية 👨‍👩‍👧 e\u0301 \u200b𝄞', column: '列😀' },
      { info: `<script>alert("x")</script><img src=x onerror="alert(1)"> &amp; & ' " \` \${x} <!-- -->`,
        sql: `select '<b>bold</b><script>alert(2)</script>' as "<i>col</i>", 'ok' as "ß"`,
        value: '<b>bold</b><script>alert(2)</script>', column: '<i>col</i>' },
    ];
    for (const c of cases) {
      const id = await submit(c.sql, c.info);
      const t = await db.waitFor(id);
      assert.equal(t.state, 'done', JSON.stringify(t.error));
      const [raw] = await db.sql('select sql, info from bgtask.tbl_task where id = $1', [id]);
      assert.deepEqual(raw, { sql: c.sql, info: c.info }, 'tbl_task');
      assert.equal((await db.sql('select sql from bgtask.tbl_task_step where task_id = $1', [id]))[0].sql, c.sql, 'tbl_task_step');
      const listed = (await db.tasks('alice').list()).find((x) => x.id === id);
      assert.deepEqual([listed?.sql, listed?.info], [c.sql, c.info], 'list_tasks');
      assert.deepEqual([t.sql, t.info], [c.sql, c.info], 'the task as the extension reads it');
      const rows = await db.sql(`select * from bgtask_result.${t.steps[0].resultTable}`);
      assert.deepEqual(Object.keys(rows[0]), ['_row', c.column, 'ß']);
      assert.equal(rows[0][c.column], c.value, 'result table');
    }
    // An error message with the same characters comes back whole.
    const t = await db.waitFor(await submit(`do $$ begin raise exception '失败 😀 <b>x</b>'; end $$`));
    assert.equal(t.error?.message, '失败 😀 <b>x</b>');
    figure('unicode, emoji and HTML/script: 2/2 tasks round-trip exactly through tbl_task, tbl_task_step, list_tasks and the result table; the error message too');
  });

  test('a statement that cannot run in a transaction, in one string with another: failed 25001, the other rolled back', async () => {
    const t = await db.waitFor(await submit('insert into rel_t values (2, \'two\'); vacuum rel_t'));
    assert.equal(t.state, 'failed');
    assert.equal(t.error?.sqlstate, '25001');
    assert.match(t.error?.message ?? '', /VACUUM cannot run inside a transaction block/);
    assert.deepEqual(await db.sql('select id from rel_t order by id'), [{ id: 1 }], 'the INSERT of the same string was rolled back');
    // The same statements as steps run (the way the extension sends a script).
    const ok = await db.waitFor(await submit(['insert into rel_t values (3, \'three\')', 'vacuum rel_t']));
    assert.equal(ok.state, 'done', JSON.stringify(ok.error));
    await db.sql('delete from rel_t where id = 3');
    figure('VACUUM in one string with an INSERT: failed 25001, the INSERT rolled back; as two steps: done');
  });

  test('a transaction opened and never committed (one string): rolled back, failed 25001', async () => {
    const t = await db.waitFor(await submit('begin; insert into rel_t values (4, \'four\')'));
    assert.equal(t.state, 'failed');
    assert.equal(t.error?.sqlstate, '25001');
    assert.match(t.error?.message ?? '', /left a transaction open/);
    assert.deepEqual(await db.sql('select id from rel_t order by id'), [{ id: 1 }]);
    await nothingLeft(db);
    figure('BEGIN without COMMIT in one string: failed 25001, the insert rolled back, the worker gone');
  });

  test('a psql meta-command as a step: failed 42601 at position 1, the next steps skipped', async () => {
    const t = await db.waitFor(await submit(['select 1', '\\set x 1', 'select 2']));
    assert.equal(t.state, 'failed');
    assert.deepEqual(t.steps.map((s) => s.state), ['done', 'failed', 'skipped']);
    assert.deepEqual([t.error?.sqlstate, t.error?.position, t.error?.step], ['42601', 1, 2]);
    const one = await db.waitFor(await submit('\\timing on'));
    assert.deepEqual([one.state, one.error?.sqlstate], ['failed', '42601']);
    figure('psql meta-commands (\\set, \\timing): failed 42601 at position 1, later steps skipped');
  });

  test('a string of several statements runs each statement exactly once', async () => {
    // Before the fix in _run_step/_probe the EXPLAIN probe of the 'direct' capture form ran every statement after
    // the first, and then the step ran them all again: two rows for one INSERT.
    await db.sql('delete from rel_once');
    const texts = [
      'select 1; insert into rel_once values (1)',
      `select nextval('rel_seq'); select nextval('rel_seq')`,
      'with a as (select 1) select * from a; insert into rel_once values (2)',
      'explain select 1; insert into rel_once values (4)',
    ];
    for (const sql of texts) {
      const t = await db.waitFor(await submit(sql));
      assert.equal(t.state, 'done', `${sql}: ${JSON.stringify(t.error)}`);
    }
    // Text that only parses once wrapped (it closes the wrapper's parenthesis) is the syntax error it is as written.
    const odd = await db.waitFor(await submit('select 1) as q; insert into rel_once values (3); select (1'));
    assert.deepEqual([odd.state, odd.error?.sqlstate], ['failed', '42601']);
    assert.deepEqual((await db.sql('select v from rel_once order by v')).map((r) => r.v), [1, 2, 4]);
    assert.equal(Number((await db.sql('select last_value from rel_seq'))[0].last_value), 2);
    // A single statement is still captured.
    const one = await db.waitFor(await submit('select 41 + 1 as answer;  -- trailing comment'));
    assert.equal(one.steps[0].capture, 'subquery');
    assert.equal((await db.sql(`select answer from bgtask_result.${one.steps[0].resultTable}`))[0].answer, 42);
    figure('several statements in one string: 4/4 ran each statement once (was twice), a wrapper-escaping text fails 42601 with nothing run');
  });

  test('a submit after SET ROLE inside a transaction leaves the caller\'s role alone; the task records its worker', async () => {
    // Before the fix the loopback login's SET LOCAL role lasted to the end of the caller's transaction: the rest of
    // it ran as alice (a table created after the submit belonged to her), and the supervisor of an app_owner task
    // recorded no worker pid (its UPDATE ran as alice, whom row-level security shows no app_owner row).
    const c = await db.client('alice');
    try {
      await c.query('begin');
      await c.query('set role app_owner');
      const id = await submitWith(c, 'select 1 as one');
      assert.equal((await c.query('select current_user::text as u')).rows[0].u, 'app_owner');
      await c.query('create table rel_after_submit (v int)');
      await c.query('commit');
      const [{ owner }] = await db.sql(`select pg_get_userbyid(relowner)::text as owner from pg_class where oid = 'rel_after_submit'::regclass`);
      assert.equal(owner, 'app_owner');
      const t = await db.waitFor(id);
      assert.equal(t.state, 'done', JSON.stringify(t.error));
      const [{ worker_pid }] = await db.sql('select worker_pid from bgtask.tbl_task where id = $1', [id]);
      assert.ok(worker_pid, 'the worker of an app_owner task is recorded (the reaper and the list need it)');
      figure('SET ROLE app_owner; run_task; …: the rest of the transaction still runs as app_owner (was: the login role), the task records its worker pid (was: none)');
    } finally {
      await c.end();
    }
  });

  test('after all of it, nothing else is harmed: the next task runs, nothing is left running', async () => {
    const t = await db.waitFor(await submit('select count(*) as n from rel_t'));
    assert.equal(t.state, 'done');
    assert.equal(Number((await db.sql(`select n from bgtask_result.${t.steps[0].resultTable}`))[0].n), 1);
    await nothingLeft(db);
  });
});
