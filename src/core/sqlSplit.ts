/**
 * Splits an SQL script into statements where psql would. The lexer (sqlLex.ts) follows psql's
 * `src/fe_utils/psqlscan.l`; on top of it this follows psql's parenthesis depth, its BEGIN ATOMIC heuristic and its
 * backslash commands (verified against psql 15.18, see the unit tests).
 * It never throws: an unterminated string, comment or dollar quote runs to the end of the input, so code lenses
 * keep working on broken text and the parser then reports the error on that one statement (DESIGN.md §5).
 * Offsets are UTF-16 code units (JS string indices); libpg-query reports UTF-8 bytes and needs its own mapping.
 * Pure TypeScript importing only sqlLex.ts: the language server, the extension and plain-Node tests all load it.
 * What a statement does (its keyword, whether it returns rows, …) is sqlClassify.ts's business.
 */
import { isIdentCont, isNewline, isSpace, Lexer, lineEnd } from './sqlLex';

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
