import * as vscode from 'vscode';
import { Ctx } from './ctx';
import type { TaskViews } from './commands/tasks';
import { TaskPanels } from './taskPanel';
import { registerTaskTree } from './taskTree';
import { registerStatusBar } from './statusBar';
import { registerNotifications } from './notify';
import { FileConnections } from './fileConnection';
import { ErrorLocations } from './errorLocation';
import { commands as commandsModule, languageClient } from './lazy';
import type * as CommandsModule from './lazy/commands';
import type { LanguageClient } from 'vscode-languageclient/node';

type Handler = (...args: never[]) => unknown;

/**
 * A command whose code is in dist/commands.js: that bundle is loaded, and the handler made, when the command
 * first runs, so activation compiles none of it.
 */
function lazyCommand(make: (m: typeof CommandsModule) => Handler): Handler {
  let handler: Handler | undefined;
  return (...args: never[]) => (handler ??= make(commandsModule()))(...args);
}

/**
 * Wiring only: build the Ctx, register each feature area, and say so when activation fails (VS Code itself
 * would stay silent: rust-analyzer's main.ts does the same). Everything slow happens after activate() has
 * returned: the connection checks (pg is loaded then, see lazy.ts) and the language client.
 */
// deactivate() must await the server's stop, and VS Code gives it no context: the one module-level handle.
let client: LanguageClient | undefined;
let deactivated = false;

export async function activate(extCtx: vscode.ExtensionContext): Promise<void> {
  let ctx: Ctx | undefined;
  deactivated = false;
  try {
    ctx = new Ctx(extCtx);
    const c = ctx;
    const errors = new ErrorLocations(c);
    const panels = new TaskPanels(c, { errors });
    c.subscriptions.push(errors, panels);
    const tree = registerTaskTree(c);
    const files = new FileConnections(c);
    c.subscriptions.push(files);
    const views: TaskViews = { openPanel: (conn, id) => panels.open(conn, id), refreshTree: () => tree.refresh(), refreshPanels: () => panels.refreshAll() };
    registerStatusBar(c, c.connections);
    registerNotifications(c, (conn, id) => panels.open(conn, id), (conn, id) => vscode.commands.executeCommand('pgTasks.collectResult', { kind: 'task', connection: conn, task: { id, state: 'done', sql: '', info: null } }));
    c.subscriptions.push(
      c.connections.onDidChangeTasks(({ connection, event }) => {
        if (event.kind === 'state') panels.refresh(connection.name, event.id);
      }),
      // A server back after an outage: panels showing "cannot reach" read their task again.
      c.connections.onDidChange((conn) => conn?.state === 'ready' && panels.refreshAll()),
    );
    const commands: Record<string, Handler> = {
      'pgTasks.runSelection': lazyCommand((m) => m.runInBackground(c, 'selection', () => client, { files, errors })),
      'pgTasks.runStatement': lazyCommand((m) => m.runInBackground(c, 'statement', () => client, { files, errors })),
      'pgTasks.runFile': lazyCommand((m) => m.runInBackground(c, 'file', () => client, { files, errors })),
      'pgTasks.cancelTask': lazyCommand((m) => m.cancelTask(c)),
      'pgTasks.openTask': lazyCommand((m) => m.openTask(c, views)),
      'pgTasks.collectResult': lazyCommand((m) => m.collectResult(c, views)),
      'pgTasks.rerunTask': lazyCommand((m) => m.rerunTask(c, views)),
      'pgTasks.copySql': lazyCommand((m) => m.copySql(c)),
      'pgTasks.purgeHistory': lazyCommand((m) => m.purgeHistory(c, views)),
      'pgTasks.refresh': async () => {
        await Promise.all(c.connections.list().map((conn) => c.connections.recheck(conn)));
        tree.refresh();
      },
      'pgTasks.installSchema': lazyCommand((m) => m.installSchemaCommand(c)),
      'pgTasks.setPassword': lazyCommand((m) => m.setPassword(c)),
      'pgTasks.addConnection': lazyCommand((m) => m.addConnection(c)),
      'pgTasks.removeConnection': lazyCommand((m) => m.removeConnection(c)),
      'pgTasks.showLog': () => c.log.show(),
    };
    for (const [id, handler] of Object.entries(commands)) {
      c.subscriptions.push(vscode.commands.registerCommand(id, handler));
    }
    // VS Code times activation until activate() returns its promise; what follows runs after that but before
    // the promise settles, so a command that activated the extension still finds the connections loaded.
    await new Promise<void>((resolve) => setImmediate(resolve));
    if (deactivated) return;
    c.connections.load();
    c.log.info(`activated (${c.connections.list().length} connection(s))`);
    // Not awaited: the commands work without it (the in-process splitter stands in until it is up), and
    // waiting for the server here made activation take about a second (npm run bench). Not even started
    // here: loading vscode-languageclient (dist/languageClient.js, ~35 ms in Node, 35–150 ms in the extension
    // host while a window loads) waits until activate() has returned. A server that fails to start costs
    // syntax errors and lenses, not the product; startLanguageClient reports that itself.
    setImmediate(() => {
      if (deactivated) return;
      Promise.resolve()
        .then(() => languageClient().startLanguageClient(c))
        .then((started) => {
          client = started;
        })
        .catch((e: unknown) => {
          // A bundle that cannot load, or a client that throws while it is built (startLanguageClient reports
          // a server that does not start itself).
          c.log.error(e instanceof Error ? e : String(e));
          void vscode.window.showErrorMessage('PG Tasks: the SQL language server failed to start, so syntax errors and Run lenses are off.', 'Show Log').then((a) => {
            if (a) c.log.show();
          });
        });
    });
  } catch (e) {
    ctx?.log.error(e instanceof Error ? e : String(e));
    void vscode.window.showErrorMessage(`PG Background Tasks failed to start: ${e instanceof Error ? e.message : String(e)}`, 'Show Log').then((a) => {
      if (a) ctx?.log.show();
    });
    throw e;
  }
}

/** Stops the language server and waits for it; everything else hangs off extCtx.subscriptions. */
export async function deactivate(): Promise<void> {
  deactivated = true;
  const c = client;
  client = undefined;
  await c?.stop();
}
