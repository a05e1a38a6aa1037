// The psql-level contract of sql/000001_init.sql against a real server: states, the recipe's calls and
// quoting styles, errors, multi-step tasks, capture of rows, cancel, transactional submit, outliving the client.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { BgtaskDb, startBgtaskDb } from '../harness/bgtaskDb';

let db: BgtaskDb;
before(async () => {
  db = await startBgtaskDb();
  await db.sql('create table test (id int primary key, v text, t timestamptz, n numeric)');
  await db.sql(`insert into test select g, md5(g::text), '2024-01-01'::timestamptz + g * interval '1 s', g / 7.0 from generate_series(1, 10000) g`);
  await db.sql('grant select, update on test to alice, bob');
});
after(async () => db?.close());

const run = async (sql: string, ...args: unknown[]) => Number((await db.sql('select bgtask.run_task($1, $2, $3) as id', [sql, args[0] ?? null, args[1] ?? '{}']))[0].id);

describe('the recipe call', () => {
  test('select bgtask.run_task(sql, info) runs and records done with its row', async () => {
    const [{ id }] = await db.sql(`select bgtask.run_task('select count(*) from test', 'test dblink async call') as id`);
    const t = await db.waitFor(Number(id));
    assert.equal(t.state, 'done');
    assert.equal(t.info, 'test dblink async call');
    assert.equal(t.steps[0].capture, 'subquery');
    assert.equal(t.steps[0].resultTable, `task_${id}_1`, 'the documented name, when no one has taken it');
    const rows = await db.sql(`select * from bgtask_result.task_${id}_1`);
    assert.deepEqual(rows.map((r) => ({ ...r, _row: Number(r._row) })), [{ _row: 1, count: '10000' }]);
  });

  test('every quoting style of the recipe', async () => {
    const ids = await db.sql(`select bgtask.run_task('select count(*) from test where v <> ''''') as a,
                                     bgtask.run_task(E'select count(*) from test where v <> \\'\\'') as b,
                                     bgtask.run_task($$select count(*) from test where v <> ''$$) as c,
                                     bgtask.run_task($_tag_$select count(*) from test where v <> $$x$$$_tag_$) as d`);
    for (const id of Object.values(ids[0])) {
      const t = await db.waitFor(Number(id));
      assert.equal(t.state, 'done', JSON.stringify(t.error));
      assert.equal(t.steps[0].resultRows, 1);
    }
  });
});

describe('outcomes', () => {
  test('a failing task records SQLSTATE, message, detail, hint and context', async () => {
    const id = await run(`do $$ begin raise exception 'boom %', 42 using detail = 'the detail', hint = 'the hint', errcode = 'P0042'; end $$`);
    const t = await db.waitFor(id);
    assert.equal(t.state, 'failed');
    assert.equal(t.error?.sqlstate, 'P0042');
    assert.equal(t.error?.message, 'boom 42');
    assert.equal(t.error?.detail, 'the detail');
    assert.equal(t.error?.hint, 'the hint');
    assert.match(t.error?.context ?? '', /PL\/pgSQL function inline_code_block line 1 at RAISE/);
    assert.doesNotMatch(t.error?.context ?? '', /dblink|bgtask\./, 'our own frames are trimmed');
    assert.equal(t.error?.step, 1);
    assert.equal(t.steps[0].state, 'failed');
  });

  test('a syntax error keeps its position', async () => {
    const id = await run('select 1,\n  2 fromm test');
    const t = await db.waitFor(id);
    assert.equal(t.state, 'failed');
    assert.equal(t.error?.sqlstate, '42601');
    assert.equal(t.error?.position, 'select 1,\n  2 fromm test'.indexOf('test') + 1);
  });

  test('multi-step task: VACUUM and CREATE INDEX CONCURRENTLY run as autocommit steps', async () => {
    const [{ id }] = await db.sql(`select bgtask.run_task(array['vacuum (analyze) test', 'create index concurrently test_v on test (v)',
                                                             'select id, v from test where id <= 3'], 'maintenance') as id`);
    const t = await db.waitFor(Number(id));
    assert.equal(t.state, 'done', JSON.stringify(t.error));
    assert.deepEqual(t.steps.map((s) => [s.state, s.commandTag]), [['done', 'VACUUM'], ['done', 'CREATE INDEX'], ['done', 'SELECT 3']]);
    const [{ valid }] = await db.sql(`select indisvalid as valid from pg_index where indexrelid = 'test_v'::regclass`);
    assert.equal(valid, true);
  });

  test('CREATE INDEX CONCURRENTLY fails as a single string with other statements (implicit transaction), cleanly recorded', async () => {
    const id = await run('select 1; create index concurrently test_v2 on test (v)');
    const t = await db.waitFor(id);
    assert.equal(t.state, 'failed');
    assert.equal(t.error?.sqlstate, '25001');
  });

  test('stop_on_error: false runs every step and the task still fails', async () => {
    const [{ id }] = await db.sql(`select bgtask.run_task(array['select 1/0', 'select 2'], null, '{"stop_on_error": false}') as id`);
    const t = await db.waitFor(Number(id));
    assert.equal(t.state, 'failed');
    assert.deepEqual(t.steps.map((s) => s.state), ['failed', 'done']);
    const [{ id: id2 }] = await db.sql(`select bgtask.run_task(array['select 1/0', 'select 2']) as id`);
    const t2 = await db.waitFor(Number(id2));
    assert.deepEqual(t2.steps.map((s) => s.state), ['failed', 'skipped']);
  });

  test('a transaction left open by the last step is rolled back and the task fails', async () => {
    const [{ id }] = await db.sql(`select bgtask.run_task(array['begin', 'update test set v = ''open'' where id = 1']) as id`);
    const t = await db.waitFor(Number(id));
    assert.equal(t.state, 'failed');
    assert.equal(t.error?.sqlstate, '25001');
    const [{ v }] = await db.sql('select v from test where id = 1');
    assert.notEqual(v, 'open');
  });

  test('COMMIT of a transaction a step aborted answers ROLLBACK and fails the task', async () => {
    const [{ id }] = await db.sql(`select bgtask.run_task(array['begin', 'select 1/0', 'commit'], null, '{"stop_on_error": false}') as id`);
    const t = await db.waitFor(Number(id));
    assert.equal(t.state, 'failed');
    assert.equal(t.steps[2].commandTag, 'ROLLBACK');
    assert.equal(t.steps[2].state, 'failed');
  });
});

describe('result capture', () => {
  test('types, column names and order are kept; DML RETURNING, EXPLAIN and duplicate names are collected', async () => {
    const [{ id }] = await db.sql(`select bgtask.run_task(array[
        'select id, v, t, n from test where id <= 5 order by id desc;  -- newest first',
        'update test set v = v where id <= 2 returning id',
        'explain (costs off) select * from test where id = 1',
        'select a.id, b.id, 1 as _row from test a join test b using (id) where a.id = 1',
        'select 1 into temp x']) as id`);
    const t = await db.waitFor(Number(id));
    assert.equal(t.state, 'done', JSON.stringify(t.error));
    assert.deepEqual(t.steps.map((s) => s.capture), ['subquery', 'cte', 'explain', 'subquery', 'none']);
    const cols = await db.sql(`select attname, format_type(atttypid, atttypmod) as type from pg_attribute
                               where attrelid = $1::regclass and attnum > 0 order by attnum`, [`bgtask_result.${t.steps[0].resultTable}`]);
    assert.deepEqual(cols.map((c) => `${c.attname}:${c.type}`), ['_row:bigint', 'id:integer', 'v:text', 't:timestamp with time zone', 'n:numeric']);
    const rows = await db.sql(`select id from bgtask_result.${t.steps[0].resultTable} order by _row`);
    assert.deepEqual(rows.map((r) => r.id), [5, 4, 3, 2, 1]);
    assert.equal(t.steps[1].resultRows, 2);
    const plan = await db.sql(`select "QUERY PLAN" as p from bgtask_result.${t.steps[2].resultTable} order by _row`);
    assert.match(plan[0].p, /Index Scan|Seq Scan|Bitmap/);
    const dup = await db.sql(`select * from bgtask_result.${t.steps[3].resultTable}`);
    assert.deepEqual(Object.keys(dup[0]), ['_row', 'id', 'id_2', '_row_2']);
  });

  test('max_rows caps what is stored but never stops the statement early', async () => {
    await db.sql('create sequence if not exists capseq');
    const [{ id }] = await db.sql(`select bgtask.run_task('select g, nextval(''capseq'') from generate_series(1, 1000) g', null, '{"max_rows": 10}') as id`);
    const t = await db.waitFor(Number(id));
    assert.equal(t.state, 'done', JSON.stringify(t.error));
    assert.equal(t.steps[0].resultStored, 10);
    assert.equal(t.steps[0].resultRows, 1000);
    const [{ last_value }] = await db.sql('select last_value from capseq');
    assert.equal(Number(last_value), 1000);
  });
});

describe('submit', () => {
  test('a submit inside a transaction that rolls back never runs and leaves no backend', async () => {
    const c = await db.client('postgres');
    try {
      await c.query('begin');
      const id = Number((await c.query(`select bgtask.run_task('update test set v = ''rolled back'' where id = 2') as id`)).rows[0].id);
      await c.query('rollback');
      // The supervisor waited for our lock and found no row: wait for it to go away.
      const deadline = Date.now() + 10_000;
      while ((await db.sql(`select count(*)::int as n from pg_stat_activity where pid <> pg_backend_pid() and (application_name = 'bgtask supervisor ${id}' or query like '%bgtask.supervise(${id},%')`))[0].n > 0) {
        assert.ok(Date.now() < deadline, 'supervisor backend still there');
        await new Promise((r) => setTimeout(r, 20));
      }
      assert.deepEqual(await db.sql('select id from bgtask.tbl_task where id = $1', [id]), []);
      const [{ v }] = await db.sql('select v from test where id = 2');
      assert.notEqual(v, 'rolled back');
      assert.deepEqual((await c.query('select dblink_get_connections() as c')).rows[0].c, null);
    } finally {
      await c.end();
    }
  });

  test('inside an open transaction the task waits for COMMIT, then runs', async () => {
    const c = await db.client('postgres');
    try {
      await c.query('begin');
      const id = Number((await c.query(`select bgtask.run_task('select 1') as id`)).rows[0].id);
      await new Promise((r) => setTimeout(r, 200)); // give a wrongly eager supervisor the chance to run
      assert.deepEqual(await db.sql('select id from bgtask.tbl_task where id = $1', [id]), [], 'not visible before commit');
      await c.query('commit');
      assert.equal((await db.waitFor(id)).state, 'done');
    } finally {
      await c.end();
    }
  });

  test('the task outlives its client: the submitting connection is killed right after submit', async () => {
    const c = await db.client('postgres');
    c.on('error', () => undefined); // the socket is destroyed on purpose below
    const id = Number((await c.query(`select bgtask.run_task('select pg_sleep(0.5), count(*) from test') as id`)).rows[0].id);
    (c as unknown as { connection: { stream: { destroy(): void } } }).connection.stream.destroy();
    const t = await db.waitFor(id);
    assert.equal(t.state, 'done');
    assert.equal(t.steps[0].resultRows, 1);
  });

  test('1,000,000 rows after the client is gone are collected with their types', async () => {
    const c = await db.client('postgres');
    c.on('error', () => undefined);
    const id = Number((await c.query(`select bgtask.run_task('select g::bigint as id, g::numeric / 3 as third, now() as at from generate_series(1, 1000000) g') as id`)).rows[0].id);
    await c.end();
    const t = await db.waitFor(id, { timeoutMs: 120_000 });
    assert.equal(t.state, 'done', JSON.stringify(t.error));
    assert.equal(t.steps[0].resultRows, 1_000_000);
    const [{ n, m, type }] = await db.sql(`select count(*)::int as n, max(id)::int as m, pg_typeof(max(third))::text as type from bgtask_result.${t.steps[0].resultTable}`);
    assert.deepEqual([n, m, type], [1_000_000, 1_000_000, 'numeric']);
  });

  test('bad input gets a clear error and submits nothing', async () => {
    const before = (await db.sql('select count(*)::int as n from bgtask.tbl_task'))[0].n;
    for (const [sql, pattern] of [
      ["''", /no SQL to run/],
      ["'   \n '", /no SQL to run/],
      ["'-- only a comment\n/* and another */'", /no SQL to run/],
      ['null::text', /no SQL to run/],
      ["array[]::text[]", /no SQL to run/],
      ["array['select 1', '']", /step 2/],
    ] as const) {
      await assert.rejects(db.sql(`select bgtask.run_task(${sql})`), pattern, sql);
    }
    await assert.rejects(db.sql(`select bgtask.run_task('select 1', null, '[1]')`), /options must be a JSON object/);
    assert.equal((await db.sql('select count(*)::int as n from bgtask.tbl_task'))[0].n, before);
  });

  test('a read-only transaction is refused with what to do', async () => {
    const c = await db.client('postgres');
    try {
      await c.query('begin read only');
      await assert.rejects(c.query(`select bgtask.run_task('select 1')`), (e: Error & { code?: string; hint?: string }) =>
        e.code === '25006' && /read-only transaction/.test(e.message) && /READ WRITE/.test(e.hint ?? ''));
    } finally {
      await c.end();
    }
  });
});

describe('cancel', () => {
  test('a running step is cancelled, remaining steps skipped, the worker gone within 2 s', async () => {
    const [{ id }] = await db.sql(`select bgtask.run_task(array['select pg_sleep(60)', 'select 2']) as id`);
    const running = await db.waitFor(Number(id), { states: ['running'] });
    await db.waitFor(running.id, { states: ['running'] });
    // Wait for the worker to be inside the sleep, then cancel.
    for (let i = 0; i < 200 && (await db.sql(`select 1 from pg_stat_activity where application_name = 'bgtask worker ${id}' and wait_event = 'PgSleep'`)).length === 0; i++) {
      await new Promise((r) => setTimeout(r, 20));
    }
    const [{ cancelled }] = await db.sql('select bgtask.cancel_task($1) as cancelled', [id]);
    assert.equal(cancelled, true);
    const started = Date.now();
    const t = await db.waitFor(Number(id), { timeoutMs: 5_000 });
    assert.equal(t.state, 'cancelled');
    assert.deepEqual(t.steps.map((s) => s.state), ['cancelled', 'skipped']);
    for (;;) {
      const left = await db.sql(`select 1 from pg_stat_activity where application_name = 'bgtask worker ${id}'`);
      if (left.length === 0) break;
      assert.ok(Date.now() - started < 2_000, 'worker backend still there after 2 s');
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.equal((await db.sql('select bgtask.cancel_task($1) as c', [id]))[0].c, false, 'an ended task cannot be cancelled');
  });
});
