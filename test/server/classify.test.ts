// classify as the language server uses it on every statement of a document: the figures for the 1 MB corpus
// (test/server/corpus.ts), counted with the classify that lexed and lower-cased every token before it learnt
// to lex only as far as needed and to compare keywords in place, and the non-ASCII words where comparing in
// place must still mean comparing the lower-cased text.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { classify } from '../../src/core/sqlClassify';
import { splitSql } from '../../src/core/sqlSplit';
import { bigScript } from './corpus';

describe('classify on the server', () => {
  test('the 1 MB corpus: the same classes as before', () => {
    const counts = new Map<string, number>();
    for (const s of splitSql(bigScript(1024 * 1024))) {
      const c = classify(s.text);
      const key = `${s.kind} ${c.keyword} ${c.returnsRows} ${c.ownStep} ${c.transaction}`;
      counts.set(key, (counts.get(key) ?? 0) + 1);
    }
    assert.deepEqual([...counts].sort(), [
      ['sql ALTER false null null', 819],
      ['sql BEGIN false null begin', 819],
      ['sql COMMIT false null commit', 819],
      ['sql CREATE false autocommit null', 819],
      ['sql CREATE false null null', 819],
      ['sql EXPLAIN true null null', 819],
      ['sql INSERT false null null', 819],
      ['sql INSERT true null null', 820],
      ['sql SELECT false null null', 819],
      ['sql SELECT true null null', 820],
      ['sql UPDATE false null null', 1639],
      ['sql VACUUM false autocommit null', 819],
      ['sql WITH true null null', 820],
    ]);
  });

  test('keywords are compared as lower-cased text, also beyond ASCII', () => {
    // The Kelvin sign lower-cases to an ASCII k: "worK" is WORK, so PREPARED follows it.
    assert.equal(classify('commit wor\u212a prepared').transaction, null);
    assert.equal(classify('commit wor\u212a').transaction, 'commit');
    // İ lower-cases to i plus a combining dot: not INTO, not RETURNING.
    assert.equal(classify('select 1 \u0130nto t').returnsRows, true);
    assert.equal(classify('select 1 INTO t').returnsRows, false);
    assert.equal(classify('insert into t values (1) RETURN\u0130NG x').returnsRows, false);
    assert.equal(classify('update t set a = 1 Returning a').returnsRows, true);
    assert.equal(classify('with a as (select 1) INSERT into t select * from a RETURNING *').returnsRows, true);
    assert.equal(classify('alter table t detach partition p CONCURRENTLY').ownStep, 'autocommit');
    assert.equal(classify('ROLLBACK TO x').transaction, null);
    assert.equal(classify('stra\u00dfe').keyword, 'STRASSE');
    // The keyword is the first word lower-cased, then upper-cased: İ comes back as I plus the combining dot.
    assert.deepEqual(classify('\u0130NSERT into t values (1) returning 1'), { keyword: 'I\u0307NSERT', returnsRows: null, ownStep: null, transaction: null });
  });
});
