// TaskWatcher against a real server: LISTEN bgtask as alice, state events in order, reconnect after a server
// restart, dispose() closing the LISTEN backend (also in the middle of connecting), and a connect() that always
// fails — polls instead, never throws.
import assert from 'node:assert/strict';
import * as net from 'node:net';
import { after, afterEach, before, describe, test } from 'node:test';
import { Client } from 'pg';
import { BgtaskDb, startBgtaskDb } from '../harness/bgtaskDb';
import { TaskEvent, TaskWatcher, TaskWatcherOptions } from '../../src/core/taskWatcher';

let db: BgtaskDb;
const opened: Client[] = [];
const openedBy = new Map<string, number>();
const watchers: TaskWatcher[] = [];
const crashes: unknown[] = [];
const onCrash = (e: unknown) => crashes.push(e);

before(async () => {
  db = await startBgtaskDb();
  // server.restart() ends every idle pooled connection with FATAL 57P01; a pg Pool re-emits that as 'error'
  // and, with no listener, Node would turn it into an uncaught exception. The pools reconnect on next use.
  for (const role of ['postgres', 'alice', 'bob', 'carol'] as const) db.pool(role).on('error', () => undefined);
  process.on('uncaughtException', onCrash);
  process.on('unhandledRejection', onCrash);
});
after(async () => {
  for (const w of watchers) w.dispose();
  for (const c of opened) await c.end().catch(() => undefined); // most are ended by their watcher already
  process.off('uncaughtException', onCrash);
  process.off('unhandledRejection', onCrash);
  await db?.close();
});
afterEach(() => {
  for (const w of watchers.splice(0)) w.dispose();
  assert.deepEqual(crashes.splice(0), [], 'nothing may escape a watcher as an uncaught exception or rejection');
});

/** Polls `check` until it returns a value other than undefined; fails with `what` after timeoutMs. */
async function waitUntil<T>(what: string, check: () => T | undefined | Promise<T | undefined>, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (let nap = 2; ; nap = Math.min(nap * 2, 50)) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, nap));
  }
}

/** A connect() that opens a pg Client as alice under `appName`, so the test can find its backend. */
function connectAsAlice(appName: string, tweak?: (c: Client) => void): () => Promise<Client> {
  return async () => {
    const c = new Client({ ...db.server.connectionConfig('alice', db.password('alice'), db.database), application_name: appName });
    opened.push(c);
    await c.connect();
    openedBy.set(appName, (openedBy.get(appName) ?? 0) + 1);
    tweak?.(c);
    return c;
  };
}

const backends = async (appName: string): Promise<number> =>
  (await db.sql(`select count(*)::int as n from pg_stat_activity where application_name = $1 and usename = 'alice'`, [appName]))[0].n;

/** Starts a watcher that records what it reports. */
function watch(connect: () => Promise<Client>, options: TaskWatcherOptions = {}) {
  const events: TaskEvent[] = [];
  const w = new TaskWatcher(connect, (e) => events.push(e), options);
  watchers.push(w);
  w.start();
  const states = (id: number) => events.flatMap((e) => (e.kind === 'state' && e.id === id ? [e.state] : []));
  const count = (why: 'connected' | 'poll') => events.filter((e) => e.kind === 'resync' && e.why === why).length;
  return { w, events, states, count };
}

describe('TaskWatcher', () => {
  test('state events of a submitted task arrive in order: queued, running, done', async () => {
    const { w, states, count } = watch(connectAsAlice('watcher order'));
    await waitUntil('the first connect', () => (count('connected') === 1 ? true : undefined));
    assert.equal(w.isListening, true);
    assert.equal(await backends('watcher order'), 1);

    const id = await db.tasks('alice').submit(['select 1', 'select pg_sleep(0.05)', 'select 3']);
    await waitUntil(`task #${id} done`, () => (states(id).includes('done') ? true : undefined));
    assert.deepEqual(states(id), ['queued', 'running', 'done'], 'one event per task state change, none per step');
    const failed = await db.tasks('alice').submit('select 1/0');
    await waitUntil(`task #${failed} failed`, () => (states(failed).includes('failed') ? true : undefined));
    assert.deepEqual(states(failed), ['queued', 'running', 'failed']);
    // The channel is shared by every role and carries only id and state; readers re-read through RLS.
    const bobs = await db.tasks('bob').submit('select 1');
    await waitUntil(`bob's task #${bobs} done`, () => (states(bobs).includes('done') ? true : undefined));
  });

  test('after a server restart it reconnects, says connected again and keeps receiving events', async () => {
    const { w, states, count } = watch(connectAsAlice('watcher restart'), { minBackoffMs: 20, maxBackoffMs: 200, fastPollMs: 50 });
    await waitUntil('the first connect', () => (count('connected') === 1 ? true : undefined));
    await db.server.restart('fast');
    await waitUntil('a reconnect', () => (count('connected') === 2 ? true : undefined), 30_000);
    assert.equal(w.isListening, true);
    assert.equal(await backends('watcher restart'), 1, 'exactly one LISTEN connection after the reconnect');
    const id = await db.tasks('alice').submit('select 1');
    await waitUntil(`task #${id} done`, () => (states(id).includes('done') ? true : undefined));
    assert.deepEqual(states(id), ['queued', 'running', 'done']);
    assert.equal(count('connected'), 2, 'no further reconnects');
  });

  test('dispose() closes the LISTEN connection and stops every timer', async () => {
    const { w, events, count } = watch(connectAsAlice('watcher dispose'), { slowPollMs: 20, fastPollMs: 20 });
    await waitUntil('the first connect', () => (count('connected') === 1 ? true : undefined));
    await waitUntil('a few polls while listening', () => (count('poll') >= 3 ? true : undefined));
    assert.equal(await backends('watcher dispose'), 1);
    w.dispose();
    const seen = events.length;
    assert.equal(w.isListening, false);
    await waitUntil("the LISTEN backend's exit", async () => ((await backends('watcher dispose')) === 0 ? true : undefined));
    // A whole task lifecycle (three notifications, and dozens of 20 ms poll periods) passes in silence.
    const id = await db.tasks('alice').submit('select pg_sleep(0.3)');
    await db.waitFor(id);
    assert.deepEqual(events.slice(seen), [], 'events after dispose()');
    w.dispose(); // twice is harmless
  });

  test('dispose() while connecting or while LISTEN is on its way leaves no connection and no event', async () => {
    // The hooks call dispose() at two exact points of open(): when connect() has resolved, and when LISTEN is sent.
    let whileListening: TaskWatcher | undefined;
    const a = watch(connectAsAlice('watcher dispose listen', (c) => {
      const query = c.query.bind(c) as (...args: unknown[]) => unknown;
      (c as unknown as { query: (...args: unknown[]) => unknown }).query = (...args) => {
        const sent = query(...args);
        whileListening?.dispose();
        return sent;
      };
    }));
    whileListening = a.w;
    let whileConnecting: TaskWatcher | undefined;
    const b = watch(connectAsAlice('watcher dispose connect', () => whileConnecting?.dispose()));
    whileConnecting = b.w;
    await waitUntil('both connections to be opened', () =>
      (openedBy.get('watcher dispose listen') === 1 && openedBy.get('watcher dispose connect') === 1 ? true : undefined));
    for (const name of ['watcher dispose listen', 'watcher dispose connect']) {
      await waitUntil(`no backend left for ${name}`, async () => ((await backends(name)) === 0 ? true : undefined));
    }
    // Let a full task lifecycle pass: a connection kept by mistake would report it.
    const id = await db.tasks('alice').submit('select 1');
    await db.waitFor(id);
    assert.deepEqual(a.events, []);
    assert.deepEqual(b.events, []);
    assert.equal(a.w.isListening || b.w.isListening, false);
  });

  test('a connect() that always fails: fast poll resyncs, retries with backoff, never throws, quiet after dispose()', async () => {
    const port = await closedPort();
    let attempts = 0;
    const refused = async () => {
      attempts++;
      const c = new Client({ host: '127.0.0.1', port, user: 'alice', password: 'x', database: 'x', connectionTimeoutMillis: 2_000 });
      await c.connect(); // ECONNREFUSED
      return c;
    };
    const logged: string[] = [];
    const log = { trace: () => undefined, info: () => undefined, warn: (m: string) => logged.push(m), error: (m: string | Error) => logged.push(String(m)) };
    const { w, events, count } = watch(refused, { fastPollMs: 10, slowPollMs: 60_000, minBackoffMs: 5, maxBackoffMs: 40, log });
    await waitUntil('5 poll resyncs and 3 connect attempts', () => (count('poll') >= 5 && attempts >= 3 ? true : undefined));
    assert.equal(count('connected'), 0);
    assert.equal(w.isListening, false);
    assert.ok(logged.some((m) => /cannot listen.*ECONNREFUSED|cannot listen.*connect/i.test(m)), logged.join('\n'));

    // A connect() that throws synchronously is no different.
    let syncAttempts = 0;
    const sync = watch(() => {
      syncAttempts++;
      throw new Error('no configuration');
    }, { fastPollMs: 10, minBackoffMs: 5, maxBackoffMs: 40 });
    await waitUntil('polls and retries of the synchronous thrower', () => (sync.count('poll') >= 3 && syncAttempts >= 3 ? true : undefined));

    // After dispose: no poll and no attempt while a second, live watcher polls 5 times and retries 3 times.
    w.dispose();
    sync.w.dispose();
    const [seen, tried, syncSeen, syncTried] = [events.length, attempts, sync.events.length, syncAttempts];
    let witnessAttempts = 0;
    const witness = watch(async () => {
      witnessAttempts++;
      throw new Error('refused');
    }, { fastPollMs: 10, minBackoffMs: 5, maxBackoffMs: 40 });
    await waitUntil('the witness to poll and retry', () => (witness.count('poll') >= 5 && witnessAttempts >= 3 ? true : undefined));
    assert.deepEqual([events.length, attempts, sync.events.length, syncAttempts], [seen, tried, syncSeen, syncTried]);
  });

  test('an onEvent handler that throws neither stops polling nor escapes', async () => {
    let polls = 0;
    const events: TaskEvent[] = [];
    const logged: string[] = [];
    const w = new TaskWatcher(async () => {
      throw new Error('down');
    }, (e) => {
      events.push(e);
      if (e.kind === 'resync' && e.why === 'poll') polls++;
      throw new Error('a bug in the consumer');
    }, { fastPollMs: 10, minBackoffMs: 5, maxBackoffMs: 40, log: { trace: () => undefined, info: () => undefined, warn: () => undefined, error: (m) => logged.push(String(m)) } });
    watchers.push(w);
    w.start();
    await waitUntil('polling to go on past a throwing handler', () => (polls >= 4 ? true : undefined));
    assert.ok(logged.some((m) => m.includes('a bug in the consumer')), 'the handler error is logged');
    assert.ok(events.every((e) => e.kind === 'resync'));
  });
});

/** A TCP port on 127.0.0.1 where nothing listens (bound, then released). */
function closedPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}
