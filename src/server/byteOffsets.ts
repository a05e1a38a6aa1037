/**
 * Offset conversions between what libpg-query reports and what LSP wants (UTF-16 code units).
 *
 * libpg-query 18 uses two units, verified by experiment (test/server/byteOffsets.test.ts):
 * - `stmt_location` / `stmt_len` of a parse result are UTF-8 **byte** offsets (the C parser's raw locations);
 * - an error's `sqlDetails.cursorPosition` is a **character** (code point) offset, already made 0-based by the
 *   JS wrapper, because PostgreSQL's `scanner_errposition` turns the byte location into a character count
 *   with `pg_mbstrlen_with_len` (the same number psql prints as "LINE 1: … ^").
 * Astral characters (emoji) are one code point, four UTF-8 bytes and two UTF-16 code units, so all three differ.
 */

const ASCII_ONLY = /^[\x00-\x7f]*$/;

/** The UTF-16 offset in `text` of UTF-8 byte offset `byteOffset` (clamped to the text; a byte inside a character maps to its start). */
export function utf8ByteToUtf16(text: string, byteOffset: number): number {
  if (byteOffset <= 0) return 0;
  let bytes = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    const size = c < 0x80 ? 1 : c < 0x800 ? 2 : isHighSurrogate(c) && isLowSurrogate(text.charCodeAt(i + 1)) ? 4 : 3;
    if (bytes + size > byteOffset) return i;
    bytes += size;
    if (size === 4) i++;
    if (bytes === byteOffset) return i + 1;
  }
  return text.length;
}

/** The UTF-8 byte offset of UTF-16 offset `offset` in `text` (the inverse of utf8ByteToUtf16). */
export function utf16ToUtf8Byte(text: string, offset: number): number {
  if (ASCII_ONLY.test(text)) return Math.min(offset, text.length);
  return Buffer.byteLength(text.slice(0, offset), 'utf8');
}

/** The UTF-16 offset in `text` of code point offset `codePoint` (clamped to the text). */
export function codePointToUtf16(text: string, codePoint: number): number {
  let cp = 0;
  let i = 0;
  while (i < text.length && cp < codePoint) {
    i += isHighSurrogate(text.charCodeAt(i)) && isLowSurrogate(text.charCodeAt(i + 1)) ? 2 : 1;
    cp++;
  }
  return i;
}

/**
 * Maps many byte offsets of one text in increasing order in O(text) overall (a fresh utf8ByteToUtf16 per
 * offset would be quadratic over the 7,000+ statements of a 1 MB script). Going backwards restarts the scan.
 */
export class Utf8ToUtf16Cursor {
  private readonly ascii: boolean;
  private i = 0;
  private bytes = 0;

  constructor(private readonly text: string) {
    this.ascii = ASCII_ONLY.test(text);
  }

  map(byteOffset: number): number {
    if (this.ascii) return Math.max(0, Math.min(byteOffset, this.text.length));
    if (byteOffset < this.bytes) {
      this.i = 0;
      this.bytes = 0;
    }
    const text = this.text;
    while (this.i < text.length) {
      const c = text.charCodeAt(this.i);
      const pair = isHighSurrogate(c) && isLowSurrogate(text.charCodeAt(this.i + 1));
      const size = c < 0x80 ? 1 : c < 0x800 ? 2 : pair ? 4 : 3;
      if (this.bytes + size > byteOffset) break;
      this.bytes += size;
      this.i += pair ? 2 : 1;
    }
    return this.i;
  }
}

function isHighSurrogate(c: number): boolean {
  return c >= 0xd800 && c <= 0xdbff;
}

function isLowSurrogate(c: number): boolean {
  return c >= 0xdc00 && c <= 0xdfff;
}
