// isWebviewToHost: the host's only gate for messages from the task panel's webview, which it treats as untrusted
// input (a compromised or buggy webview must not reach readResultPage or the clipboard with arbitrary values).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { isWebviewToHost, type WebviewToHost } from '../../../src/core/protocol/webview';

const valid: WebviewToHost[] = [
  { type: 'ready' },
  { type: 'refresh' },
  { type: 'cancel' },
  { type: 'rerun' },
  { type: 'goToError' },
  { type: 'fetchRows', requestId: 0, step: 1, afterRow: 0, limit: 500 },
  { type: 'fetchRows', requestId: 7, step: 3, afterRow: 99_500, limit: 5000 },
  { type: 'export', step: 1, format: 'csv' },
  { type: 'export', step: 2, format: 'json' },
  { type: 'copy', text: 'a value' },
  { type: 'copy', text: '' },
];

const fetchRows = { type: 'fetchRows', requestId: 1, step: 1, afterRow: 0, limit: 500 };

describe('isWebviewToHost', () => {
  for (const m of valid) {
    test(`accepts ${JSON.stringify(m)}`, () => {
      assert.equal(isWebviewToHost(m), true);
    });
  }

  test('rejects values that are not objects', () => {
    for (const m of [null, undefined, 0, 1, 'ready', true, Symbol('ready')]) {
      assert.equal(isWebviewToHost(m), false, String(m));
    }
  });

  test('rejects arrays', () => {
    assert.equal(isWebviewToHost([]), false);
    assert.equal(isWebviewToHost([{ type: 'ready' }]), false);
    assert.equal(isWebviewToHost(['ready']), false);
  });

  // Harmless today (every field of the message is still checked), but an array is not a message.
  test('rejects an array that carries a type property', () => {
    assert.equal(isWebviewToHost(Object.assign([], { type: 'ready' })), false);
  });

  test('rejects unknown, missing and wrongly typed types', () => {
    for (const type of ['rows', 'task', 'error', 'Ready', 'READY', ' ready', 'fetchrows', '', 'constructor', 'toString']) {
      assert.equal(isWebviewToHost({ type }), false, type);
    }
    assert.equal(isWebviewToHost({}), false);
    assert.equal(isWebviewToHost({ type: 1 }), false);
    assert.equal(isWebviewToHost({ type: null }), false);
    assert.equal(isWebviewToHost({ type: ['ready'] }), false);
    assert.equal(isWebviewToHost({ type: { toString: () => 'ready' } }), false);
  });

  test('fetchRows: rejects each field missing', () => {
    for (const key of ['requestId', 'step', 'afterRow', 'limit']) {
      const m: Record<string, unknown> = { ...fetchRows };
      delete m[key];
      assert.equal(isWebviewToHost(m), false, key);
    }
  });

  test('fetchRows: rejects negative, fractional, non-finite and non-number values in each field', () => {
    const bad: unknown[] = [-1, -0.5, 1.5, Number.NaN, Number.POSITIVE_INFINITY, '1', null, true, [1], 10n];
    for (const key of ['requestId', 'step', 'afterRow', 'limit']) {
      for (const value of bad) {
        assert.equal(isWebviewToHost({ ...fetchRows, [key]: value }), false, `${key} = ${String(value)}`);
      }
    }
  });

  test('fetchRows: accepts limit 5000 and rejects anything above it', () => {
    assert.equal(isWebviewToHost({ ...fetchRows, limit: 5000 }), true);
    assert.equal(isWebviewToHost({ ...fetchRows, limit: 5001 }), false);
    assert.equal(isWebviewToHost({ ...fetchRows, limit: 1_000_000 }), false);
    assert.equal(isWebviewToHost({ ...fetchRows, limit: Number.MAX_SAFE_INTEGER }), false);
  });

  test('export: rejects other formats and a bad step', () => {
    for (const format of ['CSV', 'xlsx', '', null, undefined, 1]) {
      assert.equal(isWebviewToHost({ type: 'export', step: 1, format }), false, String(format));
    }
    for (const step of [-1, 1.5, '1', null, undefined, Number.NaN]) {
      assert.equal(isWebviewToHost({ type: 'export', step, format: 'csv' }), false, String(step));
    }
  });

  test('copy: rejects a missing or non-string text and one over 10,000,000 characters', () => {
    assert.equal(isWebviewToHost({ type: 'copy' }), false);
    for (const text of [null, 1, ['a'], { toString: () => 'a' }]) {
      assert.equal(isWebviewToHost({ type: 'copy', text }), false, String(text));
    }
    assert.equal(isWebviewToHost({ type: 'copy', text: 'x'.repeat(10_000_000) }), true);
    assert.equal(isWebviewToHost({ type: 'copy', text: 'x'.repeat(10_000_001) }), false);
  });
});
