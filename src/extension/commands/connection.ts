import * as vscode from 'vscode';
import { parseConnectionUri, resolveConnection, type ParsedConnectionString, type SslMode } from '../../core/connectionSettings';
import { toTaskError } from '../../core/errors';
import { latestVersion } from '../../core/generated/sql';
import type { SavedConnection } from '../config';
import type { Connection } from '../connections';
import type { Ctx } from '../ctx';
import { connectionAdvice } from '../format/connection';
import { core, installer } from '../lazy';
import { pickConnection } from '../pick';
import { describeError, showProblem } from '../problems';

type Spec = Omit<SavedConnection, 'name'>;

const SSL_MODES: { label: SslMode; description: string }[] = [
  { label: 'prefer', description: 'SSL if the server offers it, else plain (libpq default)' },
  { label: 'disable', description: 'never SSL' },
  { label: 'require', description: 'SSL, without checking the server certificate' },
  { label: 'verify-ca', description: 'SSL, certificate signed by a trusted CA' },
  { label: 'verify-full', description: 'SSL, certificate and host name checked' },
];

/**
 * Add Connection: a URI or field by field, the password into SecretStorage, tested before it is saved. Each
 * input says which step of how many it is; a failed test lets the user fix the password or start over.
 */
export function addConnection(ctx: Ctx) {
  return async (): Promise<void> => {
    const how = await vscode.window.showQuickPick(
      [
        { label: '$(list-flat) Enter host, port, database and user', id: 'fields' },
        { label: '$(link) Paste a connection URI', id: 'uri', detail: 'postgresql://user@host:5432/database?sslmode=require, or host=… dbname=… key=value pairs' },
      ],
      { title: 'Add a PostgreSQL connection', placeHolder: 'How do you want to give the connection settings?', ignoreFocusOut: true },
    );
    if (!how) return;
    const total = how.id === 'uri' ? 3 : 7;
    const title = (step: number, what: string) => `Add a PostgreSQL connection (${step}/${total}): ${what}`;
    let spec: Spec;
    let password: string | undefined;
    if (how.id === 'uri') {
      const uri = await vscode.window.showInputBox({
        title: title(1, 'URI'),
        prompt: 'A libpq URI or key=value string. A password in it is moved to the secret storage, never saved in settings.',
        placeHolder: 'postgresql://user@host:5432/database?sslmode=require',
        ignoreFocusOut: true,
        validateInput: (v) => {
          try {
            parseConnectionUri(v.trim());
            return undefined;
          } catch (e) {
            return e instanceof Error ? e.message : String(e);
          }
        },
      });
      if (!uri) return;
      const parsed = parseConnectionUri(uri.trim());
      // settings.json is plain text, often synced or committed: a password pasted in the URI goes to SecretStorage.
      password = parsed.password;
      spec = { uri: parsed.password === undefined ? uri.trim() : conninfoWithoutPassword(parsed) };
    } else {
      const env = process.env;
      const host = await ask(title(1, 'host'), env.PGHOST ?? 'localhost', 'A host name, an IP address, or a Unix-socket directory (/var/run/postgresql)');
      if (host === undefined) return;
      const port = await ask(title(2, 'port'), env.PGPORT ?? '5432', 'The TCP port (5432 unless the server says otherwise)', (v) =>
        /^\d{1,5}$/.test(v) && Number(v) >= 1 && Number(v) <= 65535 ? undefined : 'A port number between 1 and 65535',
      );
      if (port === undefined) return;
      const database = await ask(title(3, 'database'), env.PGDATABASE ?? 'postgres', 'The database the tasks run in (the bgtask schema lives there)');
      if (database === undefined) return;
      const user = await ask(title(4, 'user'), env.PGUSER ?? env.USER ?? 'postgres', 'The role you log in as; tasks run with its rights');
      if (user === undefined) return;
      const ssl = await vscode.window.showQuickPick(SSL_MODES, { title: title(5, 'SSL mode'), placeHolder: 'sslmode, as in psql', ignoreFocusOut: true });
      if (!ssl) return;
      spec = { host, port: Number(port), database, user, sslmode: ssl.label };
    }
    const label = resolveConnection({ ...spec }).label;
    const step = how.id === 'uri' ? 2 : 6;
    if (password === undefined) {
      password = await askPassword(title(step, 'password'), label);
      if (password === undefined) return;
    }
    for (;;) {
      const failure = await testConnection(spec, password, label);
      if (!failure) break;
      const fixable = failure.reason === 'passwordRefused' || /password/i.test(failure.message);
      const choice = await vscode.window.showErrorMessage(
        `PG Tasks: could not connect to ${label}: ${describeError(failure)}`,
        ...(fixable ? ['Re-enter Password'] : ['Retry']),
        'Start Over',
        'Save Anyway',
      );
      if (choice === 'Start Over') return addConnection(ctx)();
      if (choice === 'Re-enter Password') {
        password = await askPassword(title(step, 'password'), label, `The server refused the password for ${label}. Type it again.`);
        if (password === undefined) return;
        continue;
      }
      if (choice === 'Retry') continue;
      if (choice !== 'Save Anyway') return;
      break;
    }
    const taken = new Set(ctx.connections.list().map((c) => c.name));
    const name = await ask(title(total, 'name'), uniqueName(label, taken), 'How the Task Explorer shows this connection', (v) =>
      !v.trim() ? 'A name is needed' : taken.has(v.trim()) ? `There is already a connection named "${v.trim()}"` : undefined,
    );
    if (!name) return;
    await ctx.connections.add({ name: name.trim(), ...spec }, password || undefined);
    ctx.log.info(`connection ${name.trim()} (${label}) saved`);
    const connection = ctx.connections.get(name.trim());
    if (connection) await whatNext(ctx, connection, await ctx.connections.recheck(connection), `${name.trim()} is connected`);
  };
}

/** Says what a connection that just logged in needs next, with the button that does it. */
async function whatNext(ctx: Ctx, connection: Connection, state: Connection['state'], connected: string): Promise<void> {
  const node = { kind: 'connection', connection };
  const name = connection.name;
  if (state === 'noSchema' || state === 'outdated') {
    const a = await vscode.window.showInformationMessage(`PG Tasks: ${connected}. The bgtask schema is ${state === 'noSchema' ? 'not installed' : 'out of date'} there.`, state === 'noSchema' ? 'Install Schema' : 'Upgrade Schema');
    if (a) await vscode.commands.executeCommand('pgTasks.installSchema', node);
  } else if (state === 'noPassword') {
    const a = await vscode.window.showInformationMessage(`PG Tasks: ${connected}. Store your password on the server so it can run tasks as you?`, 'Set Password');
    if (a) await vscode.commands.executeCommand('pgTasks.setPassword', node);
  } else if (state === 'ready') {
    void vscode.window.showInformationMessage(`PG Tasks: ${name} is ready for background tasks. Select SQL in an editor and press Ctrl+Alt+B.`);
  } else if (state === 'error' && connection.problem) {
    await showProblem(ctx, `${name} was saved but cannot be used yet`, connection.problem, connection);
  } else {
    void vscode.window.showWarningMessage(`PG Tasks: ${name} was saved. ${connectionAdvice({ state, label: connection.resolved.label })}`);
  }
}

/** Connects once with these settings; undefined when it worked, else why not. */
async function testConnection(spec: Spec, password: string, label: string) {
  return vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: `PG Tasks: connecting to ${label}…` }, async () => {
    const client = new (core().Client)(resolveConnection(spec, process.env, { password: async () => password || undefined }).toPgConfig());
    try {
      await client.connect();
      return undefined;
    } catch (e) {
      return toTaskError(e);
    } finally {
      await client.end().catch(() => undefined); // may not have connected; the test result above is what matters
    }
  });
}

function askPassword(title: string, label: string, prompt?: string): Thenable<string | undefined> {
  return vscode.window.showInputBox({
    title,
    prompt: prompt ?? `Password of ${label}, kept in VS Code's secret storage. Leave empty to use PGPASSWORD or ~/.pgpass.`,
    password: true,
    ignoreFocusOut: true,
  });
}

function ask(title: string, value: string, prompt?: string, validateInput?: (v: string) => string | undefined): Thenable<string | undefined> {
  return vscode.window.showInputBox({ title, value, prompt, validateInput, ignoreFocusOut: true });
}

/** "demo@host:5432/db", or "… (2)" when that name is taken. */
function uniqueName(base: string, taken: Set<string>): string {
  let name = base;
  for (let n = 2; taken.has(name); n++) name = `${base} (${n})`;
  return name;
}

/**
 * The same settings as a libpq key=value string without the password (every keyword parseConnectionUri kept,
 * quoted as conninfo_parse reads them), so nothing secret reaches settings.json.
 */
function conninfoWithoutPassword(p: ParsedConnectionString): string {
  const quote = (v: string) => `'${v.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
  const pairs: [string, string | number | undefined][] = [
    ['host', p.host], ['port', p.port], ['dbname', p.database], ['user', p.user], ['sslmode', p.sslmode], ['application_name', p.applicationName],
    ...Object.entries(p.options ?? {}),
  ];
  return pairs.filter(([, v]) => v !== undefined && v !== '').map(([k, v]) => `${k}=${quote(String(v))}`).join(' ');
}

export function removeConnection(ctx: Ctx) {
  return async (arg?: unknown): Promise<void> => {
    const connection = await pickConnection(ctx, arg, 'Remove which connection?');
    if (!connection) return;
    const ok = await vscode.window.showWarningMessage(
      `Remove the connection ${connection.name}?`,
      { modal: true, detail: 'Its stored password is deleted from VS Code. Tasks on the server keep running and stay in its history.' },
      'Remove',
    );
    if (ok === 'Remove') await ctx.connections.remove(connection.name);
  };
}

/** Install or Upgrade Schema: applies sql/ as the connection's role (a superuser or the service's admin). */
export function installSchemaCommand(ctx: Ctx) {
  return async (arg?: unknown): Promise<void> => {
    const connection = await pickConnection(ctx, arg, 'Install the bgtask schema on which connection?');
    if (!connection) return;
    const from = connection.schema?.installedVersion ?? 0;
    if (from === latestVersion) {
      void vscode.window.showInformationMessage(`PG Tasks: the bgtask schema in ${connection.name} is already version ${latestVersion}; nothing to do.`);
      return;
    }
    const ok = await vscode.window.showInformationMessage(
      from ? `Upgrade the bgtask schema in ${connection.resolved.label} from version ${from} to ${latestVersion}?` : `Install the bgtask schema (version ${latestVersion}) in ${connection.resolved.label}?`,
      { modal: true, detail: 'Needs a superuser or the service\'s admin role. Creates dblink if missing, schemas bgtask and bgtask_result, roles bgtask_user and bgtask_admin, and the loopback server. Existing tasks are kept.' },
      from ? 'Upgrade' : 'Install',
    );
    if (!ok) return;
    try {
      const result = await vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: `PG Tasks: installing the schema in ${connection.name}` }, async () => {
        const client = await connection.newClient();
        try {
          return await installer().installSchema(client, ctx.log);
        } finally {
          await client.end();
        }
      });
      ctx.log.info(`${connection.name}: schema ${result.applied.length ? `applied ${result.applied.join(', ')}` : 'already up to date'}`);
      const state = await ctx.connections.recheck(connection);
      if (state === 'noPassword') {
        const a = await vscode.window.showInformationMessage(`PG Tasks: schema version ${result.to} installed. Store your password on the server so it can run tasks as you?`, 'Set Password');
        if (a) await vscode.commands.executeCommand('pgTasks.setPassword', { kind: 'connection', connection });
      } else {
        void vscode.window.showInformationMessage(`PG Tasks: schema version ${result.to} installed in ${connection.name}. Other roles need GRANT bgtask_user TO <role> to run tasks.`);
      }
    } catch (e) {
      await showProblem(ctx, 'the schema was not installed', e, connection);
    }
  };
}

/**
 * Set Password: stores the role's password in its loopback user mapping (bgtask.set_password, a bind
 * parameter). When VS Code itself cannot log in (the password changed, or none was stored), it first asks for
 * the login password and keeps it in SecretStorage: the only other way to fix that would be to remove and
 * re-add the connection.
 */
export function setPassword(ctx: Ctx) {
  return async (arg?: unknown): Promise<void> => {
    const connection = await pickConnection(ctx, arg, 'Set the password for background tasks on which connection?');
    if (!connection) return;
    const user = connection.resolved.user;
    if (connection.state === 'error' && connection.problem && (connection.problem.reason === 'passwordRefused' || /password/i.test(connection.problem.message))) {
      const login = await vscode.window.showInputBox({
        title: `Password of ${user} (connection "${connection.name}")`,
        prompt: `VS Code cannot log in as ${user} (${connection.problem.message}). Kept in VS Code's secret storage.`,
        password: true,
        ignoreFocusOut: true,
      });
      if (!login) return;
      await connection.storePassword(login);
      const state = await ctx.connections.recheck(connection);
      if (state === 'error') {
        await showProblem(ctx, `still cannot log in to ${connection.name}`, connection.problem ?? new Error('the login failed'), connection);
        return;
      }
      if (state !== 'noPassword') {
        await whatNext(ctx, connection, state, `${connection.name} is connected again`);
        return;
      }
    }
    const stored = await connection.password();
    let password: string | undefined;
    if (stored) {
      const use = await vscode.window.showQuickPick(
        [
          { label: '$(key) Use the password saved for this connection', id: 'stored' },
          { label: '$(edit) Type a password', id: 'type' },
        ],
        { title: `Background tasks on ${connection.name} log in as ${user}`, placeHolder: 'The server keeps it in a user mapping that only superusers can read.' },
      );
      if (!use) return;
      password = use.id === 'stored' ? stored : undefined;
    }
    password ??= await vscode.window.showInputBox({
      title: `Password of ${user} on ${connection.name}`,
      prompt: 'The server stores it in your user mapping on bgtask_loopback so it can run tasks as you. It is sent as a bind parameter, never in SQL text.',
      password: true,
      ignoreFocusOut: true,
    });
    if (!password) return;
    try {
      const message = await connection.tasks.setPassword(password);
      ctx.log.info(`${connection.name}: ${message}`);
      await ctx.connections.recheck(connection);
      void vscode.window.showInformationMessage(`PG Tasks: ${message}.`);
    } catch (e) {
      await showProblem(ctx, 'the password was not stored', e, connection);
    }
  };
}
