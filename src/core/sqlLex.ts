/**
 * psql's lexer, shared by the statement splitter (sqlSplit.ts) and the statement classifier (sqlClassify.ts).
 * It follows psql's `src/fe_utils/psqlscan.l` (itself a copy of the backend's `scan.l`), with
 * standard_conforming_strings = on: `'…'` with `''` doubling, `E'…'` with backslash escapes, `"…"`, `$tag$`
 * quotes, `--` and nested `/* … *\/` comments, `(`, `)`, `;` and psql's backslash.
 * It never throws: an unterminated string, comment or dollar quote runs to the end of the input.
 * Offsets are UTF-16 code units (JS string indices).
 * Pure TypeScript with no imports: the language server, the extension and plain-Node tests all load it.
 */

export type Tok = 'space' | 'line-comment' | 'block-comment' | 'word' | 'string' | 'ident' | 'number'
  | ';' | '(' | ')' | '\\' | 'other' | 'eof';

// psqlscan.l character classes; every non-ASCII code unit counts as a letter, as psql's \200-\377 bytes do.
export const isSpace = (c: number) => c === 32 || (c >= 9 && c <= 13) || c === 0xfeff; // U+FEFF: a BOM, if the editor kept one
const isDigit = (c: number) => c >= 48 && c <= 57;
const isLetter = (c: number) => (c | 0x20) >= 97 && (c | 0x20) <= 122 || c === 95 || c >= 0x80;
export const isIdentCont = (c: number) => isLetter(c) || isDigit(c) || c === 36;
export const isNewline = (c: number) => c === 10 || c === 13;

/** A tokenizer over psql's lexical rules. Only token boundaries matter here, so most tokens carry no value. */
export class Lexer {
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
export function lineEnd(s: string, p: number): number {
  while (p < s.length && !isNewline(s.charCodeAt(p))) p++;
  return p;
}
