/** Pure text helpers of the task panel, kept apart from the DOM code so they run under plain node too. */

/**
 * psql's way of pointing at an error: the line with "LINE n: " in front and a caret under the character.
 * `position` counts characters (code points) from 1, with \r\n as one, as the server reports it.
 */
export function errorExcerpt(sql: string, position: number): { line: string; caret: string } | undefined {
  const chars = Array.from(sql.replace(/\r\n/g, '\n'));
  if (position < 1 || position > chars.length + 1) return undefined;
  const before = chars.slice(0, position - 1).join('').split('\n');
  const lineNo = before.length;
  const lineText = Array.from(chars.join('').split('\n')[lineNo - 1] ?? '').map((c) => (c === '\t' ? ' ' : c));
  let col = Array.from(before[before.length - 1]).length;
  // Long lines are cut to a window around the error, as psql does, so the caret stays on screen.
  const WIDTH = 60;
  let shown = lineText;
  let prefix = '';
  if (lineText.length > WIDTH * 2) {
    const from = Math.max(0, Math.min(col - WIDTH, lineText.length - WIDTH * 2));
    shown = lineText.slice(from, from + WIDTH * 2);
    col -= from;
    if (from > 0) prefix = '…';
    if (from + WIDTH * 2 < lineText.length) shown.push('…');
  }
  const head = `LINE ${lineNo}: ${prefix}`;
  return { line: head + shown.join(''), caret: `${' '.repeat(Array.from(head).length + col)}^` };
}
