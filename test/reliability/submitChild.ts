/**
 * A submitting client in its own process, for test/reliability/clientGone.test.ts: connects, calls
 * bgtask.run_task, prints `id <n>` the moment it returns, then keeps its session doing something until the test
 * SIGKILLs it. Input: BGTASK_CHILD (JSON: host, port, database, user, sql, info, appName, after) and
 * BGTASK_CHILD_PASSWORD (kept out of argv, which any local user can read).
 */
import { Client } from 'pg';

const o = JSON.parse(process.env.BGTASK_CHILD ?? '{}');

async function main(): Promise<void> {
  const c = new Client({ host: o.host, port: o.port, database: o.database, user: o.user,
    password: process.env.BGTASK_CHILD_PASSWORD, application_name: o.appName });
  await c.connect();
  const type = Array.isArray(o.sql) ? 'text[]' : 'text';
  const { rows } = await c.query(`select bgtask.run_task($1::${type}, $2) as id`, [o.sql, o.info]);
  process.stdout.write(`id ${rows[0].id}\n`);
  // Whatever the session does when the kill comes: nothing, a statement in flight, LISTEN, or reading the list.
  switch (o.after) {
    case 'busy':
      for (let i = 0; i < 60; i++) await c.query('select pg_sleep(1)'); // the session notices its dead client within 1 s
      break;
    case 'listen':
      await c.query('listen bgtask');
      break;
    case 'list':
      for (let i = 0; i < 100_000; i++) await c.query('select id, state from bgtask.list_tasks(null, 20)');
      break;
    default:
      break;
  }
  // Stay alive until killed (bounded: the test kills within 50 ms; exit on our own after a minute).
  setTimeout(() => process.exit(3), 60_000);
}

main().catch((e) => {
  process.stderr.write(`${e?.stack ?? e}\n`);
  process.exit(2);
});
