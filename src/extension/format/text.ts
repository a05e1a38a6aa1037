/**
 * Text cut to fit and escaped for where it is shown: one-line previews (of any text, and of SQL) and markdown
 * that renders foreign text literally. Task text (`sql`, `info`, error messages) is foreign data, since an
 * admin sees other roles' tasks: everything meant for markdown goes through escapeMarkdown or codeFence.
 * No `vscode` import (see quantities.ts).
 */

/** Cuts text to at most `max` characters (code points, so no half emoji), ending with "…" when cut. */
export function truncate(text: string, max: number): string {
  const chars = Array.from(text);
  if (chars.length <= max) return text;
  return `${chars.slice(0, Math.max(0, max - 1)).join('').trimEnd()}…`;
}

/** Collapses all whitespace (newlines included) to single spaces, trims, and truncates. */
export function oneLine(text: string, max = 80): string {
  return truncate(text.replace(/\s+/g, ' ').trim(), max);
}

/**
 * A one-line preview of SQL: comments dropped (`--` and nested `/* *\/`), whitespace collapsed, truncated
 * with "…". Quoted text (strings, E'' strings, identifiers, dollar quotes) is kept, so `'--'` survives.
 */
export function sqlPreview(sql: string, max = 80): string {
  let out = '';
  let i = 0;
  const n = sql.length;
  while (i < n) {
    const c = sql[i];
    const next = sql[i + 1];
    if (c === '-' && next === '-') {
      while (i < n && sql[i] !== '\n') i++;
      out += ' ';
    } else if (c === '/' && next === '*') {
      let depth = 1;
      i += 2;
      while (i < n && depth > 0) {
        if (sql[i] === '/' && sql[i + 1] === '*') {
          depth++;
          i += 2;
        } else if (sql[i] === '*' && sql[i + 1] === '/') {
          depth--;
          i += 2;
        } else {
          i++;
        }
      }
      out += ' ';
    } else if (c === "'" || c === '"') {
      // E'…' strings allow backslash escapes; elsewhere a doubled quote is the only escape.
      const backslash = c === "'" && /(^|[^\w$])[eE]$/.test(sql.slice(Math.max(0, i - 2), i));
      let j = i + 1;
      while (j < n) {
        if (backslash && sql[j] === '\\') j += 2;
        else if (sql[j] === c && sql[j + 1] === c) j += 2;
        else if (sql[j] === c) break;
        else j++;
      }
      out += sql.slice(i, j + 1);
      i = j + 1;
    } else if (c === '$') {
      const tag = /^\$([A-Za-z_][A-Za-z0-9_]*)?\$/.exec(sql.slice(i));
      const identChar = i > 0 && /[\w$]/.test(sql[i - 1]);
      if (tag && !identChar) {
        const end = sql.indexOf(tag[0], i + tag[0].length);
        const stop = end < 0 ? n : end + tag[0].length;
        out += sql.slice(i, stop);
        i = stop;
      } else {
        out += c;
        i++;
      }
    } else {
      out += c;
      i++;
    }
  }
  return oneLine(out, max);
}

/** Backslash-escapes every ASCII punctuation character, so text renders literally in markdown (CommonMark §2.4). */
export function escapeMarkdown(text: string): string {
  return text.replace(/[!-/:-@[-`{-~]/g, '\\$&');
}

/** A fenced markdown code block that the code cannot close early: the fence is longer than any backtick run in it. */
export function codeFence(code: string, language = ''): string {
  const longest = Math.max(0, ...Array.from(code.matchAll(/`+/g), (m) => m[0].length));
  const fence = '`'.repeat(Math.max(3, longest + 1));
  return `${fence}${language}\n${code}\n${fence}`;
}

/** Keeps the head of long SQL for a tooltip: at most `maxLines` lines and `maxChars` characters. */
export function sqlHead(sql: string, maxLines = 30, maxChars = 3000): string {
  const lines = sql.replace(/\s+$/, '').split('\n');
  let head = lines.slice(0, maxLines).join('\n');
  const cut = lines.length > maxLines || head.length > maxChars;
  if (head.length > maxChars) head = Array.from(head).slice(0, maxChars).join('');
  return cut ? `${head}\n…` : head;
}
