import * as vscode from 'vscode';
import { Client } from 'pg';
import { parseConnectionUri, resolveConnection, type SslMode } from '../../core/connectionSettings';
import { installSchema } from '../../core/installer';
import { latestVersion } from '../../core/generated/sql';
import type { SavedConnection } from '../config';
import type { Ctx } from '../ctx';
import { pickConnection } from '../pick';
import { showProblem } from '../problems';

/** Add Connection: a URI or field by field, the password into SecretStorage, tested before it is saved. */
export function addConnection(ctx: Ctx) {
  return async (): Promise<void> => {
    const how = await vscode.window.showQuickPick(
      [
        { label: '$(list-flat) Enter host, port, database and user', id: 'fields' },
        { label: '$(link) Paste a connection URI', id: 'uri', detail: 'postgresql://user@host:5432/database?sslmode=require' },
      ],
      { title: 'Add a PostgreSQL connection (1/3)' },
    );
    if (!how) return;
    let saved: Omit<SavedConnection, 'name'>;
    if (how.id === 'uri') {
      const uri = await vscode.window.showInputBox({
        title: 'Add a PostgreSQL connection: URI',
        prompt: 'A libpq URI or key=value string. Leave the password out: you give it next, and it is kept in the secret storage.',
        placeHolder: 'postgresql://user@host:5432/database',
        ignoreFocusOut: true,
        validateInput: (v) => {
          try {
            parseConnectionUri(v);
            return undefined;
          } catch (e) {
            return e instanceof Error ? e.message : String(e);
          }
        },
      });
      if (!uri) return;
      saved = { uri };
    } else {
      const env = process.env;
      const host = await ask('Host', env.PGHOST ?? 'localhost', 'A host name, an IP address, or a Unix-socket directory');
      if (host === undefined) return;
      const port = await ask('Port', env.PGPORT ?? '5432', undefined, (v) => (/^\d{1,5}$/.test(v) ? undefined : 'A port number'));
      if (port === undefined) return;
      const database = await ask('Database', env.PGDATABASE ?? 'postgres');
      if (database === undefined) return;
      const user = await ask('User', env.PGUSER ?? env.USER ?? 'postgres');
      if (user === undefined) return;
      const ssl = await vscode.window.showQuickPick(['prefer', 'disable', 'require', 'verify-ca', 'verify-full'], { title: 'Add a PostgreSQL connection: SSL mode' });
      if (!ssl) return;
      saved = { host, port: Number(port), database, user, sslmode: ssl as SslMode };
    }
    const password = await vscode.window.showInputBox({
      title: 'Add a PostgreSQL connection (2/3): password',
      prompt: 'Kept in VS Code\'s secret storage. Leave empty to use PGPASSWORD or ~/.pgpass.',
      password: true,
      ignoreFocusOut: true,
    });
    if (password === undefined) return;
    const label = resolveConnection({ ...saved }).label;
    const name = await ask('Name', label, 'How the Task Explorer shows it (3/3)', (v) => (v.trim() ? undefined : 'A name is needed'));
    if (!name) return;
    const tested = await vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: `PG Tasks: connecting to ${label}` }, async () => {
      const client = new Client(resolveConnection(saved, process.env, { password: async () => password || undefined }).toPgConfig());
      try {
        await client.connect();
        return undefined;
      } catch (e) {
        return e instanceof Error ? e.message : String(e);
      } finally {
        await client.end().catch(() => undefined); // may not have connected; the test result above is what matters
      }
    });
    if (tested) {
      const choice = await vscode.window.showErrorMessage(`PG Tasks: could not connect to ${label}: ${tested}`, 'Save Anyway', 'Start Over');
      if (choice === 'Start Over') return addConnection(ctx)();
      if (choice !== 'Save Anyway') return;
    }
    await ctx.connections.add({ name, ...saved }, password || undefined);
    ctx.log.info(`connection ${name} (${label}) saved`);
    const connection = ctx.connections.get(name);
    if (!connection) return;
    const state = await ctx.connections.recheck(connection);
    const node = { kind: 'connection', connection };
    if (state === 'noSchema' || state === 'outdated') {
      const a = await vscode.window.showInformationMessage(`PG Tasks: ${name} is connected. The bgtask schema is ${state === 'noSchema' ? 'not installed' : 'out of date'} there.`, 'Install Schema');
      if (a) await vscode.commands.executeCommand('pgTasks.installSchema', node);
    } else if (state === 'noPassword') {
      const a = await vscode.window.showInformationMessage(`PG Tasks: ${name} is connected. Store your password on the server so it can run tasks as you?`, 'Set Password');
      if (a) await vscode.commands.executeCommand('pgTasks.setPassword', node);
    } else if (state === 'ready') {
      void vscode.window.showInformationMessage(`PG Tasks: ${name} is ready for background tasks.`);
    }
  };
}

function ask(what: string, value: string, prompt?: string, validateInput?: (v: string) => string | undefined): Thenable<string | undefined> {
  return vscode.window.showInputBox({ title: `Add a PostgreSQL connection: ${what}`, value, prompt, validateInput, ignoreFocusOut: true });
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
          return await installSchema(client, ctx.log);
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
        void vscode.window.showInformationMessage(`PG Tasks: schema version ${result.to} installed in ${connection.name}. Grant bgtask_user to the roles that may run tasks.`);
      }
    } catch (e) {
      await showProblem(ctx, 'the schema was not installed', e, connection);
    }
  };
}

/** Set Password: stores the role's password in its loopback user mapping (bgtask.set_password, a bind parameter). */
export function setPassword(ctx: Ctx) {
  return async (arg?: unknown): Promise<void> => {
    const connection = await pickConnection(ctx, arg, 'Set the password for background tasks on which connection?');
    if (!connection) return;
    const stored = await connection.password();
    let password: string | undefined;
    if (stored) {
      const use = await vscode.window.showQuickPick(
        [
          { label: '$(key) Use the password saved for this connection', id: 'stored' },
          { label: '$(edit) Type a password', id: 'type' },
        ],
        { title: `Background tasks on ${connection.name} log in as ${connection.resolved.user}`, placeHolder: 'The server keeps it in a user mapping that only superusers can read.' },
      );
      if (!use) return;
      password = use.id === 'stored' ? stored : undefined;
    }
    password ??= await vscode.window.showInputBox({
      title: `Password of ${connection.resolved.user} on ${connection.name}`,
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
