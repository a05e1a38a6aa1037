/**
 * Splits an SQL script into statements where psql would, and classifies a statement for the task runner.
 * The lexer follows psql's `src/fe_utils/psqlscan.l` (itself a copy of the backend's `scan.l`), with
 * standard_conforming_strings = on: `'…'` with `''` doubling, `E'…'` with backslash escapes, `"…"`, `$tag$`
 * quotes, `--` and nested `/* … *\/` comments, psql's parenthesis depth, its BEGIN ATOMIC heuristic and its
 * backslash commands (verified against psql 15.18, see the unit tests).
 * It never throws: an unterminated string, comment or dollar quote runs to the end of the input, so code lenses
 * keep working on broken text and the parser then reports the error on that one statement (DESIGN.md §5).
 * Offsets are UTF-16 code units (JS string indices); libpg-query reports UTF-8 bytes and needs its own mapping.
 * Pure TypeScript with no imports: the language server, the extension and plain-Node tests all load it.
 */

/** One statement of a script, as returned by {@link splitSql}. */
export interface SqlStatement {
  /**
   * What to submit: the source from `start` to the end of the statement's last token. It has no trailing `;`,
   * whitespace or trailing comment. An unterminated string or comment counts as a token and stays, up to the
   * end of input (whitespace at the end included: it is inside the string).
   * For 'psql-meta' it is the command line without its newline (plus the inline data of a COPY … FROM STDIN).
   */
  text: string;
  /**
   * Offset of the statement's first token. Comments before it belong to no statement, with two exceptions that
   * users expect to be sent with the query: a block comment on the same line as the first token
   * (`/* report:42 *\/ SELECT …`) and a pg_hint_plan hint (`/*+ SeqScan(t) *\/`, which must precede the query),
   * each only when nothing but whitespace (and, for a hint, line comments) separates it from the statement.
   */
  start: number;
  /**
   * Offset just after the terminating `;`. A statement without one (at the end of input, or cut off by a psql
   * command such as `\gexec`) ends after its last token, so trailing comments and blank lines are not inside it.
   * So for 'sql', `end > start + text.length` exactly when a `;` ended the statement (src/server/resplit.ts
   * relies on that).
   */
  end: number;
  /**
   * 'sql' for SQL; 'psql-meta' for input only psql can handle: a backslash command line (`\set`, `\gexec`, `\i`,
   * `\copy`, …) or a `COPY … FROM STDIN` / `\copy … from stdin` together with its inline data up to `\.`.
   * 'empty' is never returned: comment-only stretches and lone `;` are left out of the result instead.
   */
  kind: 'sql' | 'psql-meta' | 'empty';
}

/** What {@link classify} can tell from a statement's text alone. */
export interface StatementClass {
  /** The first keyword, upper-cased (`SELECT`, `CREATE`, …); `\cmd` for a psql command; '' if there is none. */
  keyword: string;
  /** Whether the statement returns a row set; null when the text alone cannot tell (CALL, EXECUTE, unknown). */
  returnsRows: boolean | null;
  /** 'autocommit' when PostgreSQL refuses to run it inside a transaction block, so it must be its own step. */
  ownStep: 'autocommit' | null;
  /** Transaction control: BEGIN/START TRANSACTION, COMMIT/END, ROLLBACK/ABORT (not TO SAVEPOINT, not PREPARED). */
  transaction: 'begin' | 'commit' | 'rollback' | null;
}

type Tok = 'space' | 'line-comment' | 'block-comment' | 'word' | 'string' | 'ident' | 'number'
  | ';' | '(' | ')' | '\\' | 'other' | 'eof';

// psqlscan.l character classes; every non-ASCII code unit counts as a letter, as psql's \200-\377 bytes do.
const isSpace = (c: number) => c === 32 || (c >= 9 && c <= 13) || c === 0xfeff; // U+FEFF: a BOM, if the editor kept one
const isDigit = (c: number) => c >= 48 && c <= 57;
const isLetter = (c: number) => (c | 0x20) >= 97 && (c | 0x20) <= 122 || c === 95 || c >= 0x80;
const isIdentCont = (c: number) => isLetter(c) || isDigit(c) || c === 36;
const isNewline = (c: number) => c === 10 || c === 13;

/** A tokenizer over psql's lexical rules. Only token boundaries matter here, so most tokens carry no value. */
class Lexer {
  /** Start of the token `next` returned last. */
  start = 0;
  /** Where the next token begins; the splitter moves it past psql command lines and COPY data. */
  pos = 0;
  /** The last token ran into the end of input: an unterminated string, comment, quoted identifier or dollar quote. */
  unterminated = false;

  constructor(private readonly src: string) {}

  next(): Tok {
    const s = this.src;
    let p = this.pos;
    this.start = p;
    this.unterminated = false;
    if (p >= s.length) return 'eof';
    const c = s.charCodeAt(p);
    const d = s.charCodeAt(p + 1);
    if (isSpace(c)) {
      do p++; while (p < s.length && isSpace(s.charCodeAt(p)));
      return this.to(p, 'space');
    }
    switch (c) {
      case 45: if (d === 45) return this.to(lineEnd(s, p), 'line-comment'); break; // --
      case 47: if (d === 42) return this.blockComment(p + 2); break; // /*
      case 39: return this.quoted(p + 1, "'", 'string');
      case 34: return this.quoted(p + 1, '"', 'ident');
      case 36: return this.dollar(p);
      case 59: return this.to(p + 1, ';');
      case 40: return this.to(p + 1, '(');
      case 41: return this.to(p + 1, ')');
      // psql's `\;` and `\:` put a literal `;` or `:` into the query without ending it.
      case 92: return d === 59 || d === 58 ? this.to(p + 2, 'other') : this.to(p + 1, '\\');
    }
    if (isLetter(c)) {
      // psql's xestart wins over a one-letter identifier because flex takes the longest match; inside a longer
      // word (`some'…'`) the quote starts a plain string. B'', X'', N'' and U&'' lex like plain strings once
      // their prefix is read as a word, so they need no rule of their own here.
      if (d === 39 && (c | 0x20) === 101) return this.eString(p + 2);
      do p++; while (p < s.length && isIdentCont(s.charCodeAt(p)));
      return this.to(p, 'word');
    }
    if (isDigit(c)) {
      // Digits, then any identifier glued on (PostgreSQL 16+ lexes `1e'x'` as junk plus a plain string).
      do p++; while (p < s.length && (isDigit(s.charCodeAt(p)) || s.charCodeAt(p) === 46 || s.charCodeAt(p) === 95));
      if (isLetter(s.charCodeAt(p))) do p++; while (p < s.length && isIdentCont(s.charCodeAt(p)));
      return this.to(p, 'number');
    }
    return this.to(p + 1, 'other');
  }

  private to(end: number, tok: Tok): Tok {
    this.pos = end;
    return tok;
  }

  private open(tok: Tok): Tok {
    this.unterminated = true;
    return this.to(this.src.length, tok);
  }

  /** A quote with doubling (`''`, `""`) and no escapes: standard strings and quoted identifiers. */
  private quoted(p: number, q: string, tok: Tok): Tok {
    const s = this.src;
    for (;;) {
      const i = s.indexOf(q, p);
      if (i < 0) return this.open(tok);
      if (s[i + 1] !== q) return this.to(i + 1, tok);
      p = i + 2;
    }
  }

  /**
   * An E'' string: backslash escapes any character (E'\'' is one quote) and `''` doubles. The server would
   * continue the E rules into a continuation line (`E'a'` newline `'b'`), but psql lexes each input line on its
   * own and never sees the continuation, so the next line's quote opens a plain string, as here.
   */
  private eString(p: number): Tok {
    const s = this.src;
    for (;;) {
      if (p >= s.length) return this.open('string');
      const c = s.charCodeAt(p);
      if (c === 92) p += 2;
      else if (c !== 39) p++;
      else if (s.charCodeAt(p + 1) === 39) p += 2;
      else return this.to(p + 1, 'string');
    }
  }

  /**
   * `$$` or `$tag$` opens a quote closed by the same delimiter (case-sensitive); a tag does not start with a digit,
   * so `$1` is a `$` and a number here, the parameter psql sees.
   */
  private dollar(p: number): Tok {
    const s = this.src;
    let q = p + 1;
    if (isLetter(s.charCodeAt(q))) do q++; while (q < s.length && (isLetter(s.charCodeAt(q)) || isDigit(s.charCodeAt(q))));
    if (s.charCodeAt(q) !== 36) return this.to(p + 1, 'other'); // psql's dolqfailed: only the `$` is consumed
    const delim = s.slice(p, q + 1);
    const close = s.indexOf(delim, q + 1);
    return close < 0 ? this.open('string') : this.to(close + delim.length, 'string');
  }

  /** Block comments nest, unlike in C. */
  private blockComment(p: number): Tok {
    const s = this.src;
    let depth = 1;
    while (p < s.length) {
      const c = s.charCodeAt(p);
      if (c === 42 && s.charCodeAt(p + 1) === 47) {
        p += 2;
        if (--depth === 0) return this.to(p, 'block-comment');
      } else if (c === 47 && s.charCodeAt(p + 1) === 42) {
        p += 2;
        depth++;
      } else p++;
    }
    return this.open('block-comment');
  }
}

/** Index of the newline that ends the line containing `p`, or the end of input. */
function lineEnd(s: string, p: number): number {
  while (p < s.length && !isNewline(s.charCodeAt(p))) p++;
  return p;
}

/** Index of the first character of the line after the one ending at `e` (`\r\n` counts once). */
function nextLine(s: string, e: number): number {
  return s.charCodeAt(e) === 13 && s.charCodeAt(e + 1) === 10 ? e + 2 : e + 1;
}

const hasNewline = (s: string, from: number, to: number) => {
  for (let i = from; i < to; i++) if (isNewline(s.charCodeAt(i))) return true;
  return false;
};

/** psql commands whose argument is the rest of the line, so quotes and `\\` in it mean nothing to psql. */
const WHOLE_LINE = new Set(['copy', '!', 'h', 'help', 'ef', 'ev', 'sf', 'sf+', 'sv', 'sv+']);

/**
 * Scans a psql command from its backslash. Arguments end at the end of the line, or at an unquoted `\\`, after
 * which psql reads SQL again. Returns where the command's text ends and where scanning resumes.
 */
function scanMeta(s: string, p: number): { textEnd: number; next: number; copyIn: boolean } {
  let q = p + 1;
  while (q < s.length && (isIdentCont(s.charCodeAt(q)) || s.charCodeAt(q) === 43)) q++;
  if (q === p + 1 && q < s.length && !isNewline(s.charCodeAt(q)) && !isSpace(s.charCodeAt(q))) q++;
  const name = s.slice(p + 1, q).toLowerCase();
  const eol = lineEnd(s, q);
  let next = -1; // after a `\\` separator
  if (WHOLE_LINE.has(name)) q = eol;
  for (; q < eol && next < 0; q++) {
    const c = s.charCodeAt(q);
    if (c === 39 || c === 34 || c === 96) { // '…' (with \ escapes), "…", `…`
      for (q++; q < eol && s.charCodeAt(q) !== c; q++) if (c === 39 && s.charCodeAt(q) === 92) q++;
    } else if (c === 92 && s.charCodeAt(q + 1) === 92) next = q + 2;
  }
  const textEnd = trimEnd(s, p, next < 0 ? eol : next - 2);
  const copyIn = name === 'copy' && /^\s+[^(\s][^]*\bfrom\s+stdin\b/i.test(s.slice(p + 5, textEnd));
  return { textEnd, next: next < 0 ? textEnd : next, copyIn };
}

/**
 * After `COPY … FROM STDIN;` (or `\copy … from stdin`), psql reads data lines from the script until a line `\.`.
 * The data starts on the line after `p`. Returns the end of the `\.` line, or of the input.
 */
function copyDataEnd(s: string, p: number): number {
  for (let q = nextLine(s, lineEnd(s, p)); q < s.length; q = nextLine(s, lineEnd(s, q))) {
    if (s.charCodeAt(q) === 92 && s.charCodeAt(q + 1) === 46 && lineEnd(s, q) === q + 2) return q + 2;
  }
  return s.length;
}

const HEAD_WORDS = new Set(['create', 'or', 'replace', 'function', 'procedure']);

/**
 * Splits a script into statements exactly where psql ends a query: at a `;` outside quotes, comments and
 * parentheses, and outside the body of `CREATE [OR REPLACE] FUNCTION|PROCEDURE … BEGIN [ATOMIC] … END`, where
 * psql counts BEGIN/CASE … END (its own heuristic, ported as is). A psql backslash command also ends the
 * query in progress, as `\g`/`\gexec` do in psql; for other commands psql would keep the query buffer open across
 * the command line, but a statement here is one contiguous range, so the SQL before the command stands alone.
 * `\;` does not split (psql sends both parts as one query), so such a statement keeps `\;` in its text.
 * A final statement without `;` is included. Comment-only stretches and empty statements are left out.
 */
export function splitSql(text: string): SqlStatement[] {
  const out: SqlStatement[] = [];
  const lx = new Lexer(text);
  let start = -1; // -1 between statements
  let last = 0; // end of the current statement's last token
  let parens = 0;
  let begins = 0;
  let words = 0; // psql's identifier_count
  const heads = [0, 0, 0, 0]; // psql's identifiers[]: first letters of CREATE, OR, REPLACE, FUNCTION, PROCEDURE
  let copy = 0; // 1: a COPY statement, 2: just after FROM at depth 0, 3: FROM STDIN seen
  const lead: number[] = []; // [start, end, …] of the block comments before the next statement

  const push = (kind: SqlStatement['kind'], from: number, to: number, end: number) =>
    out.push({ text: text.slice(from, to), start: from, end, kind });
  const reset = () => {
    start = -1;
    parens = begins = words = copy = 0;
    lead.length = 0;
  };
  const firstToken = (t: number) => {
    for (let i = lead.length - 2; i >= 0; i -= 2) {
      if (text.charCodeAt(lead[i] + 2) !== 43 && hasNewline(text, lead[i + 1], t)) break; // `/*+` is a hint
      t = lead[i];
    }
    return t;
  };

  for (;;) {
    const tok = lx.next();
    switch (tok) {
      case 'eof':
        if (start >= 0) push('sql', start, last, last);
        return out;
      case 'space':
      case 'line-comment':
        continue;
      case 'block-comment':
        if (lx.unterminated) break;
        if (start < 0) lead.push(lx.start, lx.pos);
        continue;
      case ';':
        if (start < 0) {
          lead.length = 0;
          continue;
        }
        if (parens > 0 || begins > 0) break;
        if (copy === 3) {
          const end = copyDataEnd(text, lx.pos);
          push('psql-meta', start, trimEnd(text, start, end), end);
          lx.pos = end;
        } else push('sql', start, last, lx.pos);
        reset();
        continue;
      case '\\': {
        if (start >= 0) push('sql', start, last, last);
        const meta = scanMeta(text, lx.start);
        let end = meta.next;
        if (meta.copyIn) end = copyDataEnd(text, meta.textEnd);
        push('psql-meta', lx.start, meta.copyIn ? trimEnd(text, lx.start, end) : meta.textEnd, end);
        lx.pos = end;
        reset();
        continue;
      }
    }
    // A token that belongs to a statement.
    if (start < 0) start = firstToken(lx.start);
    last = lx.pos;
    if (tok === '(') parens++;
    else if (tok === ')') parens = Math.max(0, parens - 1);
    else if (tok === 'other' && text.charCodeAt(lx.start) === 92) words = 0; // `\;`, as psql resets identifier_count
    else if (tok === 'word') {
      // Lower-casing every word would cost; only the first words, COPY and CREATE statements need them.
      const need = words < 4 || copy === 1 || copy === 2 || heads[0] === 99;
      const word = need && lx.pos - lx.start <= 9 ? text.slice(lx.start, lx.pos).toLowerCase() : '';
      if (words === 0) {
        heads.fill(0);
        copy = word === 'copy' ? 1 : 0;
      } else if (copy === 1 && parens === 0 && word === 'from') copy = 2;
      else if (copy === 2) copy = word === 'stdin' ? 3 : 1;
      if (words < 4 && HEAD_WORDS.has(word)) heads[words] = word.charCodeAt(0);
      words++;
      if (parens === 0 && heads[0] === 99 && (heads[1] === 102 || heads[1] === 112 ||
          (heads[1] === 111 && heads[2] === 114 && (heads[3] === 102 || heads[3] === 112)))) {
        if (word === 'begin') begins++;
        else if (word === 'case' && begins > 0) begins++;
        else if (word === 'end' && begins > 0) begins--;
      }
      continue;
    }
    if (copy === 2) copy = 1;
  }
}

function trimEnd(s: string, from: number, to: number): number {
  while (to > from && isSpace(s.charCodeAt(to - 1))) to--;
  return to;
}

/**
 * The statement under the cursor. Inside a statement (`start <= offset < end`) that statement; in the gap between
 * two statements the previous one if the cursor is on the line where it ends, else the next one; after the last
 * statement the last one. Pass the script text as `source` to decide "same line"; without it, only a cursor right
 * at the previous statement's end counts as on its line. `statements` must be sorted, as splitSql returns them.
 */
export function statementAt(statements: readonly SqlStatement[], offset: number, source?: string): SqlStatement | undefined {
  let lo = 0;
  let hi = statements.length; // first statement with start > offset
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (statements[mid].start <= offset) lo = mid + 1;
    else hi = mid;
  }
  const prev = statements[lo - 1] as SqlStatement | undefined;
  const next = statements[lo] as SqlStatement | undefined;
  if (prev && offset < prev.end) return prev;
  if (prev && (source === undefined ? offset === prev.end : !hasNewline(source, prev.end, offset))) return prev;
  return next ?? prev;
}

/**
 * The statements a selection `[start, end)` overlaps, in order. An empty selection (a caret) returns the statement
 * that contains it, if any. A selection of only the whitespace or comments between statements returns none.
 */
export function statementsInRange(statements: readonly SqlStatement[], start: number, end: number): SqlStatement[] {
  if (end < start) [start, end] = [end, start];
  if (start === end) return statements.filter((s) => s.start <= start && start < s.end);
  return statements.filter((s) => s.start < end && start < s.end);
}

/**
 * The significant tokens of one statement for classify (comments and whitespace skipped), each with its
 * parenthesis depth, lexed only as far as a question needs: most statements are told by their first words, and
 * no token's text is copied to answer one. A token's value is its lower-cased text for a word or an 'other'
 * token, `'` for a string, else its kind (`(`, `)`, `;`, `\`, 'ident', 'number'); '' past the last token.
 */
class Sigs {
  private readonly lx: Lexer;
  private readonly kinds: Tok[] = [];
  private readonly starts: number[] = [];
  private readonly ends: number[] = [];
  private readonly depths: number[] = [];
  private depth = 0;
  private done = false;

  constructor(private readonly text: string) {
    this.lx = new Lexer(text);
  }

  /** Whether there is a token `k` (lexing up to it). */
  has(k: number): boolean {
    while (this.kinds.length <= k && !this.done) this.lexOne();
    return k >= 0 && k < this.kinds.length;
  }

  kind(k: number): Tok | undefined {
    return this.has(k) ? this.kinds[k] : undefined;
  }

  /** The depth of token `k`, which must exist. */
  depthOf(k: number): number {
    return this.depths[k];
  }

  value(k: number): string {
    if (!this.has(k)) return '';
    const tok = this.kinds[k];
    if (tok === 'word' || tok === 'other') return this.text.slice(this.starts[k], this.ends[k]).toLowerCase();
    return tok === 'string' ? "'" : tok;
  }

  /** `value(k) === w`, without building the value of a word. */
  is(k: number, w: string): boolean {
    if (!this.has(k)) return w === '';
    const tok = this.kinds[k];
    if (tok !== 'word' && tok !== 'other') return (tok === 'string' ? "'" : tok) === w;
    const text = this.text;
    const end = this.ends[k];
    let j = 0;
    for (let p = this.starts[k]; p < end; p++, j++) {
      const c = text.charCodeAt(p);
      // Lower-casing beyond ASCII can change a text's length ('İ'), or give an ASCII letter (the Kelvin sign).
      // Up to here the token was ASCII, which lower-cases one to one, so a mismatch so far stays one.
      if (c >= 0x80) return this.value(k) === w;
      if (j >= w.length || (c >= 65 && c <= 90 ? c + 32 : c) !== w.charCodeAt(j)) return false;
    }
    return j === w.length;
  }

  /** Whether `value(k)` is one of `words`. */
  isOneOf(k: number, words: readonly string[]): boolean {
    for (const w of words) if (this.is(k, w)) return true;
    return false;
  }

  /** Whether a token at or after `from`, outside parentheses, has the value `w` (never '(' or ')'). */
  topHas(from: number, w: string): boolean {
    for (let k = Math.max(0, from); this.has(k); k++) if (this.depths[k] === 0 && this.is(k, w)) return true;
    return false;
  }

  /** Whether any token at or after `from`, at any depth, has the value `w`. */
  anyHas(from: number, w: string): boolean {
    for (let k = Math.max(0, from); this.has(k); k++) if (this.is(k, w)) return true;
    return false;
  }

  /** The values of the tokens after `i` outside parentheses, the parentheses themselves left out. */
  topValues(i: number): string[] {
    const out: string[] = [];
    for (let k = i + 1; this.has(k); k++) {
      const tok = this.kinds[k];
      if (this.depths[k] === 0 && tok !== '(' && tok !== ')') out.push(this.value(k));
    }
    return out;
  }

  private lexOne(): void {
    const lx = this.lx;
    for (;;) {
      const tok = lx.next();
      if (tok === 'eof') {
        this.done = true;
        return;
      }
      if (tok === 'space' || tok === 'line-comment' || tok === 'block-comment') continue;
      if (tok === ')') this.depth = Math.max(0, this.depth - 1);
      this.kinds.push(tok);
      this.starts.push(lx.start);
      this.ends.push(lx.pos);
      this.depths.push(this.depth);
      if (tok === '(') this.depth++;
      return;
    }
  }
}

/** Keywords of statements that never return rows. */
const NO_ROWS = new Set([
  'abort', 'alter', 'analyse', 'analyze', 'begin', 'checkpoint', 'close', 'cluster', 'comment', 'commit', 'copy',
  'create', 'deallocate', 'declare', 'discard', 'do', 'drop', 'end', 'grant', 'import', 'listen', 'load', 'lock',
  'move', 'notify', 'prepare', 'reassign', 'refresh', 'reindex', 'release', 'reset', 'revoke', 'rollback',
  'savepoint', 'security', 'set', 'start', 'truncate', 'unlisten', 'vacuum',
]);
const ROWS = new Set(['select', 'values', 'table', 'show', 'explain', 'fetch']);
const DML = new Set(['insert', 'update', 'delete', 'merge']);
const DML_WORDS = [...DML];
/** What CREATE or DROP of which cannot run inside a transaction block. */
const OWN_STEP_OBJECTS = ['database', 'tablespace', 'subscription'];

/**
 * A light classification from the first keywords, for hints and for the task's per-statement options; the real
 * parser has the last word. Comments are skipped and only words outside strings, comments and parentheses count,
 * so `RETURNING` in a subquery or `INTO` in a string changes nothing.
 */
export function classify(text: string): StatementClass {
  const toks = new Sigs(text);
  let i = 0;
  while (toks.kind(i) === '(') i++; // a parenthesized query: `(SELECT …) UNION …`
  const first = toks.value(i);
  if (first === '\\') return { keyword: `\\${toks.value(i + 1)}`, returnsRows: null, ownStep: null, transaction: null };
  const keyword = /^[a-z_\u0080-\uffff]/.test(first) ? first.toUpperCase() : '';
  const kw = keyword.toLowerCase();

  let returnsRows: boolean | null = null;
  if (kw === 'select') returnsRows = !toks.topHas(i, 'into');
  else if (ROWS.has(kw)) returnsRows = true;
  else if (DML.has(kw)) returnsRows = toks.topHas(i, 'returning');
  else if (kw === 'with') returnsRows = withReturnsRows(toks, i + 1);
  else if (NO_ROWS.has(kw)) returnsRows = false;

  let transaction: StatementClass['transaction'] = null;
  if (kw === 'begin' || (kw === 'start' && toks.is(i + 1, 'transaction'))) transaction = 'begin';
  else if (kw === 'commit' || kw === 'end' || kw === 'rollback' || kw === 'abort') {
    let k = i + 1;
    while (toks.is(k, 'work') || toks.is(k, 'transaction')) k++;
    if ((kw === 'commit' || kw === 'end') && !toks.is(k, 'prepared')) transaction = 'commit';
    else if ((kw === 'rollback' || kw === 'abort') && !toks.is(k, 'prepared') && !toks.is(k, 'to')) transaction = 'rollback';
  }

  return { keyword, returnsRows, ownStep: needsOwnStep(toks, i, kw) ? 'autocommit' : null, transaction };
}

/** The rows question for WITH: find the main statement after the CTE list and ask it. */
function withReturnsRows(toks: Sigs, from: number): boolean | null {
  for (let k = from; toks.has(k); k++) {
    if (toks.depthOf(k) !== 0) continue;
    // A CTE may be named after a non-reserved keyword (`update AS (…)`); the main verb is never followed by AS.
    if (toks.is(k, 'select') || toks.is(k, 'table') || (toks.is(k, 'values') && !toks.is(k + 1, 'as')) ||
        (toks.kind(k) === '(' && toks.kind(k - 1) === ')')) {
      return !toks.topHas(k + 1, 'into');
    }
    if (toks.isOneOf(k, DML_WORDS) && !toks.is(k + 1, 'as') && toks.kind(k + 1) !== '(') return toks.topHas(k + 1, 'returning');
  }
  return null;
}

/**
 * The statements PostgreSQL documents as "cannot be executed inside a transaction block". Marking one that could
 * run in a block costs nothing (it runs as its own step), so conditional cases lean towards 'autocommit':
 * subscription commands that may create, drop or refresh a slot. Undetectable cases (REINDEX or CLUSTER of a
 * partitioned table) are left to the server's error.
 */
function needsOwnStep(toks: Sigs, i: number, kw: string): boolean {
  switch (kw) {
    case 'vacuum': return true;
    case 'create': {
      const what = toks.is(i + 1, 'unique') ? i + 2 : i + 1;
      return (toks.is(what, 'index') && toks.is(what + 1, 'concurrently')) || toks.isOneOf(i + 1, OWN_STEP_OBJECTS);
    }
    case 'drop':
      return (toks.is(i + 1, 'index') && toks.is(i + 2, 'concurrently')) || toks.isOneOf(i + 1, OWN_STEP_OBJECTS);
    case 'reindex':
      return toks.anyHas(i + 1, 'concurrently') || ['schema', 'database', 'system'].includes(toks.topValues(i)[0] ?? '');
    case 'alter': {
      if (toks.is(i + 1, 'system')) return true;
      if (toks.is(i + 1, 'database')) {
        const top = toks.topValues(i);
        return top.some((t, k) => t === 'set' && top[k + 1] === 'tablespace');
      }
      if (toks.is(i + 1, 'subscription')) return toks.topHas(i + 1, 'refresh') || toks.topHas(i + 1, 'publication') || toks.anyHas(0, 'failover');
      return toks.is(i + 1, 'table') && toks.topHas(i + 1, 'detach') && toks.topHas(i + 1, 'concurrently');
    }
    case 'cluster': return toks.topValues(i).every((t) => t === 'verbose' || t === ';'); // CLUSTER with no table
    case 'discard': return toks.is(i + 1, 'all');
    case 'commit': case 'rollback': return toks.is(i + 1, 'prepared');
    default: return false;
  }
}
