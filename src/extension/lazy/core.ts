/**
 * Entry of dist/core.js: pg and what talks to the server through it. Loaded by lazy.ts when the first
 * connection is made, not while the extension activates (pg alone costs ~30 ms to load: it probes for
 * Cloudflare Workers with `new Response()`, which pulls in Node's fetch implementation).
 */
export { Client, Pool } from 'pg';
export { TaskClient } from '../../core/taskClient';
export { TaskWatcher } from '../../core/taskWatcher';
export { schemaStatus } from '../../core/installer';
