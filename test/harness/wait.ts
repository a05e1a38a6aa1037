/** Waiting for a condition instead of sleeping a fixed time (STYLE.md: no fixed sleeps in tests). */
import assert from 'node:assert/strict';

/** A pause between polls; only ever used inside a bounded wait. */
export const nap = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Polls fn (backing off 5 → 100 ms) until it returns something truthy; fails with `what` after timeoutMs. */
export async function waitUntil<T>(what: string, fn: () => Promise<T | undefined | null | false>, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (let wait = 5; ; wait = Math.min(wait * 2, 100)) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) assert.fail(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await nap(wait);
  }
}
