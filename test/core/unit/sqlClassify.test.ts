// classify: a statement's first keyword, whether it returns rows, whether PostgreSQL needs it outside a transaction
// block, and transaction control, from its text alone. Pure functions, no database.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { classify } from '../../../src/core/sqlClassify';

describe('classify', () => {
  const rows = (sql: string) => classify(sql).returnsRows;

  test('keyword: the first word after comments, upper-cased', () => {
    assert.equal(classify('/* c */ -- d\n  select 1').keyword, 'SELECT');
    assert.equal(classify('(values (1)) union all values (2)').keyword, 'VALUES');
    assert.equal(classify('\\gexec').keyword, '\\gexec');
    assert.deepEqual(classify('-- nothing'), { keyword: '', returnsRows: null, ownStep: null, transaction: null });
    assert.deepEqual(classify(''), { keyword: '', returnsRows: null, ownStep: null, transaction: null });
  });

  test('returnsRows: queries, RETURNING at top level, SELECT INTO, WITH', () => {
    for (const sql of ['select 1', 'VALUES (1)', 'table t', 'show all', 'explain analyze select 1', 'fetch 10 from c',
      '(select 1) union select 2', 'insert into t values (1) returning id', 'UPDATE t SET v = 1 RETURNING *',
      'delete from t returning 1', 'merge into t using s on true when matched then delete returning *',
      'with x as (select 1) select * from x', 'with x as (select 1) update t set a = 1 returning a',
      'with x as (select 1) (select 2)', 'with update as (select 1) select * from update']) {
      assert.equal(rows(sql), true, sql);
    }
    for (const sql of ['select * into t2 from t', 'insert into t values (1)', "delete from t where v = 'returning'",
      'update t set x = (select y from u returning z)', 'insert into t select 1 -- returning\n',
      'with x as (insert into t values (1) returning *) insert into u select * from x', 'with x as (select 1) select * into y from x',
      'create table t as select 1', 'vacuum t', 'do $$ begin end $$', 'set x = 1', 'begin', 'copy t to stdout']) {
      assert.equal(rows(sql), false, sql);
    }
    for (const sql of ['call p()', 'execute s(1)', 'with recursive', 'frobnicate', '\\gexec']) assert.equal(rows(sql), null, sql);
  });

  test('ownStep: only what PostgreSQL refuses to run inside a transaction block', () => {
    // Each "yes" was checked against PostgreSQL 15.18: "… cannot run inside a transaction block".
    for (const sql of ['vacuum t', 'VACUUM (ANALYZE)', 'create index concurrently i on t(x)',
      'create unique index concurrently if not exists i on t(x)', 'drop index concurrently i', 'reindex table concurrently t',
      'reindex (verbose) index concurrently i', 'reindex (concurrently) index i', 'reindex schema public', 'reindex database d',
      'reindex system', 'create database d', 'drop database if exists d', "alter system set work_mem = '5MB'",
      "create tablespace ts location '/x'", 'drop tablespace ts', 'cluster', 'cluster verbose', 'cluster (verbose)',
      'alter database d set tablespace ts', 'discard all', "commit prepared 'x'", "rollback prepared 'x'",
      'alter table p detach partition c concurrently', "create subscription s connection 'x' publication p",
      'drop subscription s', 'alter subscription s refresh publication']) {
      assert.equal(classify(sql).ownStep, 'autocommit', sql);
    }
    for (const sql of ['create index i on t(x)', 'reindex table t', 'cluster t', 'cluster t using i', 'analyze t', 'discard plans',
      'alter database d set search_path = x', "alter type mood add value 'x'", 'checkpoint', 'refresh materialized view concurrently m',
      'alter table p detach partition c', "select 'vacuum'", 'commit', 'alter subscription s disable']) {
      assert.equal(classify(sql).ownStep, null, sql);
    }
  });

  test('transaction control', () => {
    const tx = (sql: string) => classify(sql).transaction;
    for (const sql of ['begin', 'BEGIN ISOLATION LEVEL SERIALIZABLE', 'start transaction read only']) assert.equal(tx(sql), 'begin', sql);
    for (const sql of ['commit', 'COMMIT WORK', 'end', 'end transaction', 'commit and chain']) assert.equal(tx(sql), 'commit', sql);
    for (const sql of ['rollback', 'ROLLBACK TRANSACTION', 'abort']) assert.equal(tx(sql), 'rollback', sql);
    for (const sql of ['rollback to savepoint a', 'ROLLBACK WORK TO a', 'savepoint a', 'release a', "commit prepared 'x'",
      "rollback prepared 'x'", "prepare transaction 'x'", 'start', 'select 1']) {
      assert.equal(tx(sql), null, sql);
    }
  });
});
