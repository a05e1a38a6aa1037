// The one place SQLSTATEs become reasons the UI acts on (a button per reason): the server's messages for each.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { reasonFor } from '../../../src/core/errors';

test('reasonFor: each server error of the engine maps to the reason whose button fixes it', () => {
  const cases: [string, string, ReturnType<typeof reasonFor>][] = [
    ['28000', 'role alice has no password stored for background tasks in database app', 'noPassword'],
    ['28000', 'the loopback connection of role erik logged in as carol, and a task must run with the rights of the role that submits it', 'noPassword'],
    ['28P01', 'the password stored for role alice was refused by the server', 'passwordRefused'],
    ['28000', 'the server refused the SCRAM pass-through login of role alice', 'passwordRefused'],
    ['28000', 'pg_hba.conf has no entry for the loopback connection of role alice (host 127.0.0.1, database app)', 'notPermitted'],
    ['55000', 'the loopback server bgtask_loopback reaches database a on port 1, not this database b on port 1', 'loopbackMismatch'],
    ['42883', 'function dblink_connect(text, text) does not exist', 'noDblink'],
    ['42883', 'function bgtask.list_tasks(integer) does not exist', 'schemaTooOld'],
    ['3F000', 'schema "bgtask" does not exist', 'noSchema'],
    ['42501', 'permission denied for schema bgtask', 'notPermitted'],
    ['25006', 'cannot submit a background task in a read-only transaction', 'readOnly'],
    ['22023', 'no SQL to run: the text is empty or only comments', 'badInput'],
    ['42601', 'syntax error at or near "selec"', 'syntax'],
    ['08006', 'connection lost', 'connection'],
    ['53300', 'role alice has reached its connection limit (2), and a task needs two connections of its own', 'unknown'],
  ];
  for (const [code, message, reason] of cases) assert.equal(reasonFor(code, message), reason, `${code} ${message}`);
});
