// resplit must always agree with a full splitSql of the new text: the server's statement boundaries (and so
// what a task submits) may never depend on the edit history. Random edits include the ones that move
// boundaries far away: an opened quote, dollar quote or comment, a new `;`, a psql command line.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { splitSql } from '../../src/core/sqlSplit';
import { commonEnds, resplit } from '../../src/server/resplit';
import { bigScript } from './corpus';

const snippets = ["'", '$$', '$body$', '/*', '*/', ';', '\n\\set x 1\n', '(', ')', 'E\'\\', '"', '--', '\n', 'select 1;', ' BEGIN ATOMIC ', 'end;', 'x', 'COPY t FROM STDIN;\n1\n\\.\n',
  'create function f() returns int begin atomic select 1; end;', '\\\\', 'case', ' \\; ', '/*+ hint */'];

/** A small deterministic PRNG, so a failure can be replayed. */
function rng(seed: number): () => number {
  return () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
}

describe('resplit', () => {
  test('an opened quote re-splits from the edit to the end, not from the start', () => {
    const text = bigScript(50_000);
    const old = splitSql(text);
    const at = old[200].start + 8;
    const next = text.slice(0, at) + "'" + text.slice(at);
    const { statements, fresh } = resplit(text, old, next);
    assert.deepEqual(statements, splitSql(next));
    assert.equal(fresh[0], 200);
  });

  test('commonEnds never overlaps', () => {
    assert.deepEqual(commonEnds('aaa', 'aaaa'), { prefix: 3, suffix: 0 });
    assert.deepEqual(commonEnds('abcxdef', 'abcdef'), { prefix: 3, suffix: 3 });
    assert.deepEqual(commonEnds('same', 'same'), { prefix: 4, suffix: 0 });
    const long = 'x'.repeat(70_000);
    assert.deepEqual(commonEnds(long + 'a' + long, long + 'b' + long), { prefix: 70_000, suffix: 70_000 });
    assert.deepEqual(commonEnds(long, long + 'x'), { prefix: 70_000, suffix: 0 });
  });

  test('agrees with a full split after 400 random edits, applied one after another', () => {
    const random = rng(42);
    let text = bigScript(60_000);
    let statements = splitSql(text);
    for (let n = 0; n < 400; n++) {
      const at = Math.floor(random() * text.length);
      const r = random();
      let next: string;
      if (r < 0.5) next = text.slice(0, at) + snippets[Math.floor(random() * snippets.length)] + text.slice(at);
      else if (r < 0.8) next = text.slice(0, at) + text.slice(Math.min(text.length, at + 1 + Math.floor(random() * 40)));
      else next = text.slice(0, at) + String.fromCharCode(97 + Math.floor(random() * 26)) + text.slice(at + 1);
      const got = resplit(text, statements, next).statements;
      assert.deepEqual(got, splitSql(next), `edit ${n} at ${at}`);
      text = next;
      statements = got;
    }
  });

  test('an edit inside one statement re-splits only near it and keeps the other statement objects', () => {
    const text = bigScript(200_000);
    const old = splitSql(text);
    const mid = old[Math.floor(old.length / 2)];
    const at = mid.start + 3;
    const next = text.slice(0, at) + 'x' + text.slice(at);
    const { statements: got, fresh } = resplit(text, old, next);
    assert.deepEqual(got, splitSql(next));
    assert.equal(got[0], old[0], 'statements before the edit are reused as they are');
    assert.ok(fresh[1] - fresh[0] <= 2, `only the edited statement is new (${fresh})`);
    assert.equal(got[fresh[1]].text, old[fresh[1]].text, 'later ones carry over, shifted');
  });

  test('no change returns the same statements', () => {
    const text = bigScript(10_000);
    const old = splitSql(text);
    assert.deepEqual(resplit(text, old, text), { statements: old, fresh: [0, 0] });
  });
});
