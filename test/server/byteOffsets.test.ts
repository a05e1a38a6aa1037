// Offset units: libpg-query's statement locations are UTF-8 bytes, its error cursor is code points, LSP wants
// UTF-16. The second half pins those facts against the real parser, so an upgrade that changes them fails here.
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { codePointToUtf16, utf16ToUtf8Byte, utf8ByteToUtf16, Utf8ToUtf16Cursor } from '../../src/server/byteOffsets';
import { loadPgParser, type PgParser } from '../../src/server/pgParser';

const mixed = "select 'é', '😀', 'ß€' from t";

describe('offset conversions', () => {
  test('ASCII maps one to one', () => {
    for (let i = 0; i <= 10; i++) assert.equal(utf8ByteToUtf16('select 1;', i), Math.min(i, 9));
    assert.equal(codePointToUtf16('select 1;', 4), 4);
  });

  test('utf8ByteToUtf16 inverts utf16ToUtf8Byte at every character boundary', () => {
    for (let i = 0; i <= mixed.length; i++) {
      if (i > 0 && mixed.charCodeAt(i - 1) >= 0xd800 && mixed.charCodeAt(i - 1) <= 0xdbff) continue; // inside a pair
      assert.equal(utf8ByteToUtf16(mixed, utf16ToUtf8Byte(mixed, i)), i, `offset ${i}`);
    }
  });

  test('a byte inside a character maps to its start; past the end clamps', () => {
    const at = mixed.indexOf('😀');
    const b = utf16ToUtf8Byte(mixed, at);
    for (const k of [1, 2, 3]) assert.equal(utf8ByteToUtf16(mixed, b + k), at);
    assert.equal(utf8ByteToUtf16(mixed, 10_000), mixed.length);
  });

  test('codePointToUtf16 counts a surrogate pair as one', () => {
    const at = mixed.indexOf('😀');
    const cps = [...mixed.slice(0, at)].length;
    assert.equal(codePointToUtf16(mixed, cps), at);
    assert.equal(codePointToUtf16(mixed, cps + 1), at + 2);
  });

  test('Utf8ToUtf16Cursor agrees with utf8ByteToUtf16, forwards and after going back', () => {
    const cursor = new Utf8ToUtf16Cursor(mixed);
    const total = Buffer.byteLength(mixed);
    for (let b = 0; b <= total; b++) assert.equal(cursor.map(b), utf8ByteToUtf16(mixed, b), `byte ${b}`);
    assert.equal(cursor.map(3), 3);
  });
});

describe('libpg-query units (pinned)', () => {
  let parser: PgParser;
  before(async () => {
    parser = await loadPgParser();
  });

  test('the error cursor counts code points, not bytes or UTF-16 units', () => {
    const sql = "select '😀😀' frm t";
    const r = parser.parse(sql);
    assert.equal(r.ok, false);
    if (r.ok) return;
    assert.match(r.message, /syntax error at or near "t"/);
    assert.equal(r.cursor, [...sql].length - 1); // 16 code points before "t"; 18 UTF-16 units, 22 bytes
    assert.equal(codePointToUtf16(sql, r.cursor), sql.lastIndexOf('t'));
  });

  test('statement locations are UTF-8 bytes', async () => {
    const { parseSync } = await import('libpg-query');
    const sql = "select '😀'; select 'é';\nselect 3";
    const stmts = parseSync(sql).stmts ?? [];
    assert.equal(stmts.length, 3);
    assert.equal(stmts[0].stmt_location, undefined); // omitted when 0
    assert.equal(stmts[2].stmt_len, undefined); // missing: to the end
    const cursor = new Utf8ToUtf16Cursor(sql);
    const starts = stmts.map((s) => cursor.map(s.stmt_location ?? 0));
    assert.deepEqual(starts, [0, sql.indexOf("select 'é'"), sql.indexOf('select 3')]);
  });

  test('empty and comment-only texts parse to no statements', () => {
    assert.deepEqual(parser.parse(''), { ok: true, stmtTypes: [] });
    assert.deepEqual(parser.parse('-- nothing\n/* here */'), { ok: true, stmtTypes: [] });
  });

  test('the WASM module loads once', async () => {
    assert.equal(await loadPgParser(), parser);
    console.log(`libpg-query WASM load: ${parser.loadMs.toFixed(1)} ms`);
  });
});
