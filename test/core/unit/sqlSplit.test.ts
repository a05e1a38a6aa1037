// sqlSplit: statement boundaries where psql puts them, offsets in UTF-16 units, and the cursor and selection helpers.
// Pure functions, no database. The boundary cases marked "psql 15.18" were checked once against a real
// psql -f with log_statement = all: psql sent the same statements (it keeps trailing comments and turns `\;` into `;`).
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { describe, test } from 'node:test';
import { splitSql, statementAt, statementsInRange, type SqlStatement } from '../../../src/core/sqlSplit';

/** Splits and checks the invariants every result must keep, so each case below also tests them. */
function split(input: string): SqlStatement[] {
  const out = splitSql(input);
  let prevEnd = 0;
  for (const s of out) {
    assert.equal(input.slice(s.start, s.start + s.text.length), s.text, 'text is the source at start');
    assert.ok(s.start >= prevEnd, `statements are ordered and disjoint at ${s.start}`);
    assert.ok(s.end >= s.start + s.text.length && s.end <= input.length, `end ${s.end} is within the input`);
    assert.match(s.text, /^\S/, 'text starts at a token');
    // Trailing whitespace only inside an unterminated string or comment, which runs to the end of input.
    if (s.start + s.text.length < input.length) assert.match(s.text, /\S$/, 'text ends at a token');
    // For SQL, end goes past the text only to take the `;` (src/server/resplit.ts relies on it).
    if (s.kind === 'sql' && s.end > s.start + s.text.length) assert.equal(input[s.end - 1], ';', 'end passes the text only for a `;`');
    assert.notEqual(s.kind, 'empty');
    prevEnd = s.end;
  }
  return out;
}
const texts = (input: string) => split(input).map((s) => s.text);
const brief = (input: string) => split(input).map((s) => [s.kind, s.text]);

describe('splitSql: basics', () => {
  test('splits at semicolons; end is just after the `;`, text has neither `;` nor whitespace', () => {
    assert.deepEqual(split('select 1;\n  select 2 ;\nselect 3'), [
      { text: 'select 1', start: 0, end: 9, kind: 'sql' },
      { text: 'select 2', start: 12, end: 22, kind: 'sql' },
      { text: 'select 3', start: 23, end: 31, kind: 'sql' },
    ]);
  });

  test('empty input, whitespace, lone semicolons and comment-only scripts give no statements', () => {
    assert.deepEqual(split(''), []);
    assert.deepEqual(split(' \n\t\r\n'), []);
    assert.deepEqual(split(';; ;\n;'), []);
    assert.deepEqual(split('-- only a comment; really\n/* and /* a nested */ block; */\n-- end'), []);
    assert.deepEqual(split('/* c */ ; -- d\n;'), []);
  });

  test('leading comments on earlier lines belong to no statement', () => {
    const input = '-- about 1\n/* header;\n   block */\nselect 1; -- after 1\n\n-- about 2\nselect 2;';
    const [one, two] = split(input);
    assert.equal(one.start, input.indexOf('select 1'));
    assert.equal(two.start, input.indexOf('select 2'));
    assert.deepEqual([one.text, two.text], ['select 1', 'select 2']);
  });

  test('a block comment on the first token\'s line, or a /*+ hint */, stays with the statement', () => {
    assert.deepEqual(texts('/* report:42 */ /* b */ select 1;'), ['/* report:42 */ /* b */ select 1']);
    assert.deepEqual(texts('/*+ SeqScan(t) */\nselect * from t;'), ['/*+ SeqScan(t) */\nselect * from t']);
    assert.deepEqual(texts('/* doc */\nselect 1;'), ['select 1']);
    assert.deepEqual(texts('/* a */ -- b\nselect 1;'), ['select 1']);
    assert.deepEqual(texts('/*+ SeqScan(t) */ -- why\nselect 1;'), ['/*+ SeqScan(t) */ -- why\nselect 1'], 'a hint is never dropped');
    assert.deepEqual(texts('select 1; /* c */ select 2;'), ['select 1', '/* c */ select 2']);
  });

  test('comments inside a statement stay; trailing ones before the `;` do not', () => {
    assert.deepEqual(texts('select 1 -- it\'s; not\n; select 2;'), ['select 1', 'select 2']); // psql 15.18
    assert.deepEqual(texts('select /* x; */ 1 -- y\n , 2 /* z */;'), ['select /* x; */ 1 -- y\n , 2']);
    assert.deepEqual(texts('select 1 -- trailing'), ['select 1']);
  });
});

describe('splitSql: quoting (psql 15.18)', () => {
  test('the recipe: doubled quotes inside a quoted query', () => {
    const sql = "select bgtask.run_task('select count(*) from test where v <> ''''');";
    assert.deepEqual(texts(`${sql}\nselect 2;`), [sql.slice(0, -1), 'select 2']);
    assert.deepEqual(texts("select 'it''s;'; select 3"), ["select 'it''s;'", 'select 3']);
  });

  test("E'' strings take backslash escapes; plain '' strings do not (standard_conforming_strings = on)", () => {
    assert.deepEqual(texts(String.raw`select E'\''; select 2;`), [String.raw`select E'\''`, 'select 2']);
    assert.deepEqual(texts(String.raw`select e'a\\'; select 2;`), [String.raw`select e'a\\'`, 'select 2']);
    assert.deepEqual(texts(String.raw`select E'\'; select 2;'; select 3;`), [String.raw`select E'\'; select 2;'`, 'select 3']);
    assert.deepEqual(texts(String.raw`select 'a\'; select 2;`), [String.raw`select 'a\'`, 'select 2']);
    assert.deepEqual(texts("select E'a\\\n'; select 2;"), ["select E'a\\\n'", 'select 2'], 'a backslash escapes a newline');
    assert.deepEqual(texts("select E''''; select 2;"), ["select E''''", 'select 2']);
    assert.deepEqual(texts(String.raw`select E'it''s \'q\''; select 2;`), [String.raw`select E'it''s \'q\''`, 'select 2']);
  });

  test('only a one-letter E prefix makes an escape string', () => {
    assert.deepEqual(texts(String.raw`select some'\'; select 2;`), [String.raw`select some'\'`, 'select 2']);
    assert.deepEqual(texts(String.raw`select 1e'\'; select 2;`), [String.raw`select 1e'\'`, 'select 2']);
  });

  test("psql lexes each line alone, so a continuation line after E'…' is a plain string", () => {
    // The server would continue the E rules; psql sends everything up to the end as one query.
    assert.deepEqual(texts("select E'a'\n'\\''; select 2;"), ["select E'a'\n'\\''; select 2;"]);
    assert.deepEqual(texts("select 'a'\n'b;'; select 2;"), ["select 'a'\n'b;'", 'select 2']);
  });

  test("U&'', B'', X'', N'' strings and double-quoted identifiers", () => {
    assert.deepEqual(texts(String.raw`select U&'\'; select 2;`), [String.raw`select U&'\'`, 'select 2']);
    assert.deepEqual(texts(String.raw`select u&"a;""b" from x; select 2;`), [String.raw`select u&"a;""b" from x`, 'select 2']);
    assert.deepEqual(texts(String.raw`select x'1f'; select b'1;'; select n'a;\'; select 2;`),
      ["select x'1f'", "select b'1;'", String.raw`select n'a;\'`, 'select 2']);
    assert.deepEqual(texts('select 1 as "a;""b"; select 2;'), ['select 1 as "a;""b"', 'select 2']);
  });

  test('dollar quotes: $$, $tag$ (case-sensitive, closed only by the same tag), and $1 parameters', () => {
    assert.deepEqual(texts("select $$ ; ' $$; select 2;"), ["select $$ ; ' $$", 'select 2']);
    assert.deepEqual(texts('select $_tag_$ $$ ; $$ ; $_tag_$; select 2;'), ['select $_tag_$ $$ ; $$ ; $_tag_$', 'select 2']);
    assert.deepEqual(texts('select $a$ x $b$a$; select 2;'), ['select $a$ x $b$a$', 'select 2']);
    assert.deepEqual(texts('select $A$ ; $a$ ; $A$; select 2;'), ['select $A$ ; $a$ ; $A$', 'select 2']);
    assert.deepEqual(texts('select $é$ ; $é$; select 2;'), ['select $é$ ; $é$', 'select 2']);
    assert.deepEqual(texts('select $t1$ ; $t1$; select 2;'), ['select $t1$ ; $t1$', 'select 2']);
    assert.deepEqual(texts('prepare p(int) as select $1; select $2;'), ['prepare p(int) as select $1', 'select $2']);
    assert.deepEqual(texts('select $1a$ ; select 2;'), ['select $1a$', 'select 2'], '$1 is a parameter even before a $');
    assert.deepEqual(texts('select $ab ; select 2;'), ['select $ab', 'select 2'], '$ab without a closing $ is no quote');
  });

  test('a $ inside an identifier does not open a dollar quote', () => {
    assert.deepEqual(texts('select 1 as a$$b; select 2 as c$$;'), ['select 1 as a$$b', 'select 2 as c$$']);
    assert.deepEqual(texts('select 1 as ab$c$d; select 2;'), ['select 1 as ab$c$d', 'select 2']);
  });

  test('a DO block', () => {
    const body = "do $$\nbegin\n  perform 1; raise notice 'x;y';\nend\n$$";
    assert.deepEqual(texts(`${body};\nselect 6;`), [body, 'select 6']);
  });
});

describe('splitSql: comments and parentheses (psql 15.18)', () => {
  test('nested block comments hold semicolons and quotes', () => {
    assert.deepEqual(texts("select /* a /* ; ' */ still ; */ 1; select 2;"), ["select /* a /* ; ' */ still ; */ 1", 'select 2']);
    assert.deepEqual(texts('select 1 /*/ ; */ ; select 2 /**/; select 3;'), ['select 1', 'select 2', 'select 3']);
    assert.deepEqual(texts('select 1 -/* c; */ 2; select 3 */* c; */ 4;'), ['select 1 -/* c; */ 2', 'select 3 */* c; */ 4']);
  });

  test('a semicolon inside parentheses does not end the statement; a stray ) does not go negative', () => {
    assert.deepEqual(texts('select (1;2); select 3;'), ['select (1;2)', 'select 3']);
    assert.deepEqual(texts('select 1); select 2;'), ['select 1)', 'select 2']);
    assert.deepEqual(texts('select array[1;2]; select 3;'), ['select array[1', '2]', 'select 3'], 'psql counts only ( )');
  });
});

describe('splitSql: SQL-standard function bodies (psql 15.18)', () => {
  test('CREATE FUNCTION … BEGIN ATOMIC … END keeps its inner semicolons, CASE … END included', () => {
    const fn = 'CREATE OR REPLACE FUNCTION f() RETURNS int LANGUAGE sql\nBEGIN ATOMIC\n  SELECT 1;\n'
      + '  SELECT CASE WHEN true THEN CASE WHEN false THEN 1 END END;\nEND';
    assert.deepEqual(texts(`${fn};\nselect 2;`), [fn, 'select 2']);
    const proc = 'create procedure p(x int) language sql begin atomic insert into t values (x); update t set v = case when x > 0 then 1 else 2 end; end';
    assert.deepEqual(texts(`${proc}; select 3;`), [proc, 'select 3']);
    assert.deepEqual(texts('Create Or Replace Function f() returns int language sql Begin Atomic select 1; End; select 7;'),
      ['Create Or Replace Function f() returns int language sql Begin Atomic select 1; End', 'select 7']);
  });

  test('outside CREATE FUNCTION/PROCEDURE, BEGIN and END are ordinary statements', () => {
    assert.deepEqual(texts('begin; select 1; end;'), ['begin', 'select 1', 'end']);
    assert.deepEqual(texts('create table begin_log (x int); select 5;'), ['create table begin_log (x int)', 'select 5']);
    assert.deepEqual(texts('create or replace trigger x before insert on t for each row execute function f(); begin; select 6; end;'),
      ['create or replace trigger x before insert on t for each row execute function f()', 'begin', 'select 6', 'end']);
    assert.deepEqual(texts('create function f() returns int language sql return 1; begin; commit;'),
      ['create function f() returns int language sql return 1', 'begin', 'commit']);
  });

  test('words inside parentheses or quotes do not count', () => {
    assert.deepEqual(texts('create function f(begin int) returns int language sql return 1; select 3;'),
      ['create function f(begin int) returns int language sql return 1', 'select 3']);
    assert.deepEqual(texts('create function f() returns int language sql begin atomic select 1 as "end"; select 2; end; select 8;'),
      ['create function f() returns int language sql begin atomic select 1 as "end"; select 2; end', 'select 8']);
  });
});

describe('splitSql: psql meta-commands', () => {
  test('a backslash command is its own statement, to the end of its line', () => {
    assert.deepEqual(brief('\\set x 1\nselect :x;\n\\i other.sql\r\n\\echo \'a;b\'\nselect 2;'), [
      ['psql-meta', '\\set x 1'], ['sql', 'select :x'], ['psql-meta', '\\i other.sql'], ['psql-meta', "\\echo 'a;b'"], ['sql', 'select 2'],
    ]);
  });

  test('\\g, \\gexec and friends end the query before them', () => {
    const input = "select format('vacuum %I', relname) from pg_class \\gexec\nselect 2 \\g out.txt\nselect 3;";
    const out = split(input);
    assert.deepEqual(out.map((s) => [s.kind, s.text]), [
      ['sql', "select format('vacuum %I', relname) from pg_class"], ['psql-meta', '\\gexec'],
      ['sql', 'select 2'], ['psql-meta', '\\g out.txt'], ['sql', 'select 3'],
    ]);
    assert.equal(out[0].end, input.indexOf(' \\gexec'), 'a query ended by \\gexec ends after its last token');
    assert.equal(out[1].start, input.indexOf('\\gexec'));
    assert.equal(out[1].end, input.indexOf('\nselect 2'));
  });

  test('\\\\ ends a command and SQL resumes; `\\;` joins two statements into one query, as in psql', () => {
    assert.deepEqual(brief("\\echo 'a \\\\ b' \\\\ select 1; select 2;"), [['psql-meta', "\\echo 'a \\\\ b'"], ['sql', 'select 1'], ['sql', 'select 2']]);
    assert.deepEqual(brief('\\! ls \\\\ x\nselect 2'), [['psql-meta', '\\! ls \\\\ x'], ['sql', 'select 2']], '\\! takes the whole line');
    assert.deepEqual(texts('select 1\\; select 2; select 3;'), ['select 1\\; select 2', 'select 3']);
    assert.deepEqual(texts('select 1\\; create function f() returns int language sql begin atomic select 1; end; select 2;'),
      ['select 1\\; create function f() returns int language sql begin atomic select 1; end', 'select 2'], 'a new query starts after `\\;`');
  });

  test('COPY … FROM STDIN and \\copy … from stdin take the data lines up to \\. with them', () => {
    const copy = "COPY public.t (id, v) FROM stdin;\n1\tit's; \"q\"\n2\t$$\n\\.";
    assert.deepEqual(brief(`${copy}\nselect 5;`), [['psql-meta', copy], ['sql', 'select 5']]);
    const meta = "\\copy t from stdin\r\na;'\r\n\\.";
    assert.deepEqual(brief(`${meta}\r\nselect 4;`), [['psql-meta', meta], ['sql', 'select 4']]);
    assert.deepEqual(brief("copy t from stdin;\n1\t';"), [['psql-meta', "copy t from stdin;\n1\t';"]], 'no \\. : data to the end');
    assert.deepEqual(brief("copy t from '/f'; select 1;\\copy t to 'f'\nselect 2;"),
      [['sql', "copy t from '/f'"], ['sql', 'select 1'], ['psql-meta', "\\copy t to 'f'"], ['sql', 'select 2']]);
    assert.deepEqual(brief('\\copy (select 1 from stdin) to stdout\nselect 2;'),
      [['psql-meta', '\\copy (select 1 from stdin) to stdout'], ['sql', 'select 2']]);
  });
});

describe('splitSql: unterminated constructs run to the end of input', () => {
  for (const [name, input, first] of [
    ['a string', "select 'abc; select 2;", "select 'abc; select 2;"],
    ['an E string ending in a backslash', "select E'abc\\", "select E'abc\\"],
    ['a quoted identifier', 'select "abc; select 2;', 'select "abc; select 2;'],
    ['a dollar quote', 'select $x$ x; select 2;', 'select $x$ x; select 2;'],
    ['a block comment', 'select 1 /* x; select 2;', 'select 1 /* x; select 2;'],
    ['a parenthesis', 'select (1,\n2\n; select 3;\n', 'select (1,\n2\n; select 3;'],
  ] as const) {
    test(name, () => {
      assert.doesNotThrow(() => splitSql(input));
      assert.deepEqual(texts(`select 0; ${input}`), ['select 0', first]);
      assert.equal(split(`select 0; ${input}`)[1].end, input.trimEnd().length + 'select 0; '.length);
    });
  }
  test('trailing whitespace inside an unterminated string stays: end is the end of input and of the text', () => {
    const input = "select 1; select 'abc \n";
    assert.deepEqual(split(input)[1], { text: "select 'abc \n", start: 10, end: input.length, kind: 'sql' });
  });
  test('an unterminated comment before any token is kept so the parser can report it', () => {
    assert.deepEqual(texts('select 1;\n/* unterminated\nselect 2;'), ['select 1', '/* unterminated\nselect 2;']);
  });
});

test('random scripts never throw and keep the invariants (fixed seed)', () => {
  let seed = 0x5eed;
  const random = () => { // mulberry32: a seeded generator, so a failure can be replayed
    seed = (seed + 0x6d2b79f5) | 0;
    let x = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
  const pieces = ["'", '"', '$$', '$t$', 'E', 'e', ';', '(', ')', '--', '/*', '*/', '\\', '\\\\', '\n', '\r\n', ' ', 'select', 'begin',
    'end', 'case', 'create function', 'copy t from stdin', '\\.', '😀', 'é', 'x', '1', '$1', 'U&', ':v'];
  for (let n = 0; n < 3000; n++) {
    let input = '';
    const len = Math.floor(random() * 40);
    for (let i = 0; i < len; i++) input += pieces[Math.floor(random() * pieces.length)];
    const out = split(input); // asserts the invariants
    for (const s of out) assert.equal(statementAt(out, s.start, input), s, `statementAt finds each statement of ${JSON.stringify(input)}`);
  }
});

describe('splitSql: offsets', () => {
  test('a lone CR ends a line comment, as psql\'s lexer treats \\r as a newline', () => {
    assert.deepEqual(texts('select 1 -- c\rselect 2; select 3'), ['select 1 -- c\rselect 2', 'select 3']);
  });

  test('CRLF line endings', () => {
    const input = 'select 1;\r\nselect \'a;\r\nb\';\r\n-- c;\r\nselect 3\r\n';
    const out = split(input);
    assert.deepEqual(out.map((s) => s.text), ['select 1', "select 'a;\r\nb'", 'select 3']);
    assert.deepEqual(out.map((s) => s.start), [0, 11, 35]);
    assert.deepEqual(out.map((s) => s.end), [9, 26, 43]);
  });

  test('emoji and accents before and inside statements: offsets are UTF-16 code units', () => {
    const input = "-- 😀 émoji; here\nselect '😀;' as \"é😀\"; select 2 -- 😀;\n;\n/* ü */ select 'ü'";
    const out = split(input);
    assert.deepEqual(out.map((s) => s.text), ["select '😀;' as \"é😀\"", 'select 2', "/* ü */ select 'ü'"]);
    // The first statement starts after 17 code points, 22 UTF-8 bytes, 18 UTF-16 units: 😀 counts as two units.
    assert.deepEqual(out.map((s) => [s.start, s.end]), [[18, 40], [41, 58], [59, 77]]);
    assert.equal(input.length, 77);
  });
});

describe('statementAt', () => {
  const source = 'select 1;  -- one\n\nselect 2; select 3;\n\nselect 4\n\n';
  const all = splitSql(source);
  const at = (o: number, src?: string) => statementAt(all, o, src)?.text;

  test('inside a statement, from its first character up to its `;`', () => {
    assert.equal(at(0, source), 'select 1');
    assert.equal(at(8, source), 'select 1');
    assert.equal(at(source.indexOf('select 3') + 3, source), 'select 3');
  });

  test('between statements: the previous one on the line where it ends, else the next one', () => {
    assert.equal(at(9, source), 'select 1', 'just after the `;`');
    assert.equal(at(source.indexOf('-- one') + 3, source), 'select 1', 'in a trailing comment');
    assert.equal(at(source.indexOf('\n\nselect 2') + 1, source), 'select 2', 'on the blank line');
    assert.equal(at(source.indexOf(' select 3'), source), 'select 2', 'between two statements on one line');
  });

  test('without the source only the offset right at the end counts as the same line', () => {
    assert.equal(at(9), 'select 1');
    assert.equal(at(10), 'select 2');
  });

  test('before the first and after the last statement; no statements', () => {
    assert.equal(statementAt(splitSql('\n\n  select 1;'), 0)?.text, 'select 1');
    assert.equal(at(source.length, source), 'select 4');
    assert.equal(statementAt([], 0), undefined);
  });

  test('adjacent statements: the offset between `;` and the next token belongs to the next', () => {
    const adj = splitSql('select 1;select 2;');
    assert.equal(statementAt(adj, 9, 'select 1;select 2;')?.text, 'select 2');
  });
});

describe('statementsInRange', () => {
  const source = 'select 1;\n\nselect 2;\nselect 3;';
  const all = splitSql(source);
  const range = (a: number, b: number) => statementsInRange(all, a, b).map((s) => s.text);
  const s2 = source.indexOf('select 2');

  test('statements the selection overlaps, in either direction', () => {
    assert.deepEqual(range(4, s2 + 3), ['select 1', 'select 2']);
    assert.deepEqual(range(s2 + 3, 4), ['select 1', 'select 2']);
    assert.deepEqual(range(0, source.length), ['select 1', 'select 2', 'select 3']);
    assert.deepEqual(range(s2, s2 + 'select 2;'.length), ['select 2']);
    assert.deepEqual(range(9, s2 + 1), ['select 2'], 'a selection starting after the `;`');
  });

  test('a selection of only the gap gives none; a caret gives the statement around it', () => {
    assert.deepEqual(range(9, s2), []);
    assert.deepEqual(range(s2 + 2, s2 + 2), ['select 2']);
    assert.deepEqual(range(s2, s2), ['select 2'], 'a caret before the first character');
    assert.deepEqual(range(10, 10), []);
  });
});

test('a 1 MiB script splits fast (the real lexer, every rule exercised)', (t) => {
  const parts = (i: number): [string, string][] => [
    ['', `-- step ${i}: it's a comment; with a quote\n`],
    ["select bgtask.run_task('select count(*) from test where v <> ''''')", ';\n'],
    [`insert into t values (${i}, E'it\\'s; ${i}', $$dollar; 'quoted'$$) returning id`, ';\n'],
    [`/* nested /* ; */ ' */ update t set v = 'x;y' where id = ${i}`, ';\n'],
    [`create function f${i}() returns int language sql begin atomic select 1; select case when true then 2 end; end`, ';\n'],
    ['do $_tag_$ begin perform $$;$$; end $_tag_$', ';\n'],
    [`\\set x ${i}`, '\n'],
    [`select (1;2) as "a;""b", 'é😀;'`, ';\n'],
  ];
  const chunks: string[] = [];
  const expected: string[] = [];
  let size = 0;
  for (let i = 0; size < 1 << 20; i++) {
    for (const [stmt, tail] of parts(i)) {
      chunks.push(stmt, tail);
      if (stmt) expected.push(stmt);
      size += stmt.length + tail.length;
    }
  }
  const script = chunks.join('');

  let started = performance.now();
  const out = splitSql(script);
  const cold = performance.now() - started;
  let warm = Infinity;
  for (let i = 0; i < 3; i++) {
    started = performance.now();
    splitSql(script);
    warm = Math.min(warm, performance.now() - started);
  }
  t.diagnostic(`splitSql of ${script.length} UTF-16 units, ${out.length} statements: ${cold.toFixed(1)} ms cold, ${warm.toFixed(1)} ms warm`);

  assert.deepEqual(out.map((s) => s.text), expected);
  assert.equal(out.filter((s) => s.kind === 'psql-meta').length, expected.filter((s) => s.startsWith('\\')).length);
  assert.ok(cold < 1000, `took ${cold.toFixed(1)} ms; the target is 100 ms, the limit leaves room for a slow CI`);
});
