/**
 * Classifies one statement for the task runner and the language server from its text alone: its first keyword,
 * whether it returns rows, whether it must run outside a transaction block, and transaction control. It lexes
 * with psql's lexer (sqlLex.ts), the one the splitter (sqlSplit.ts) uses, and only as far as a question needs.
 * Pure TypeScript importing only sqlLex.ts: the language server, the extension and plain-Node tests all load it.
 */
import { Lexer, type Tok } from './sqlLex';

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
