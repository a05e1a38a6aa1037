import * as vscode from 'vscode';
import {
  CloseAction,
  ErrorAction,
  LanguageClient,
  TransportKind,
  type CloseHandlerResult,
  type ErrorHandler,
  type ErrorHandlerResult,
  type LanguageClientOptions,
  type ServerOptions,
} from 'vscode-languageclient/node';
import type { Range as LspRange } from 'vscode-languageclient/node';
import { LensCommands, ServerStatusNotification, StatementsRequest, type StatementInfo } from '../core/protocol/lsp';
import type { Ctx } from './ctx';

const LANGUAGES = ['sql', 'postgres', 'pgsql'];

/**
 * Starts the SQL language server (dist/server.js, Node IPC) for sql/postgres/pgsql documents. Resolves to
 * undefined when it cannot start: the run commands then split locally, and the user has been told why.
 */
export async function startLanguageClient(ctx: Ctx): Promise<LanguageClient | undefined> {
  const module = vscode.Uri.joinPath(ctx.extensionUri, 'dist', 'server.js').fsPath;
  const serverOptions: ServerOptions = {
    run: { module, transport: TransportKind.ipc },
    debug: { module, transport: TransportKind.ipc, options: { execArgv: ['--nolazy', '--inspect=6010'] } },
  };
  const clientOptions: LanguageClientOptions = {
    documentSelector: LANGUAGES.flatMap((language) => ['file', 'untitled'].map((scheme) => ({ scheme, language }))),
    // The one "PG Background Tasks" channel (STYLE §3); the client does not dispose a channel it was given.
    outputChannel: ctx.log.channel,
    errorHandler: new ServerErrorHandler(ctx),
    initializationFailedHandler: (error) => {
      ctx.log.error(error instanceof Error ? error : String(error));
      showError(ctx, 'PG Tasks: the SQL language server failed to start, so syntax errors and Run lenses are off.');
      return false;
    },
    middleware: { provideCodeLenses: async (document, token, next) => (await next(document, token))?.map(toVscodeArguments) },
  };
  const client = new LanguageClient('pgTasks.sql', 'PG Background Tasks SQL', serverOptions, clientOptions);
  try {
    await client.start();
  } catch (e) {
    ctx.log.error(e instanceof Error ? e : String(e));
    showError(ctx, 'PG Tasks: the SQL language server failed to start, so syntax errors and Run lenses are off.');
    return undefined;
  }
  ctx.subscriptions.push(
    client.onNotification(ServerStatusNotification.method, (p: ServerStatusNotification.Params) => {
      if (p.state === 'ready') ctx.log.info(`SQL language server ready: ${p.parser} (PostgreSQL ${p.pgVersion}), WASM loaded in ${p.wasmLoadMs.toFixed(0)} ms`);
      else ctx.log.warn(`SQL language server runs without its parser: ${p.message}`);
    }),
    {
      dispose: () => {
        // deactivate() should await client.stop() itself; this covers a disposal outside deactivate.
        client.stop().catch((e: unknown) => ctx.log.warn(`SQL language server did not stop cleanly: ${String(e)}`));
      },
    },
  );
  return client;
}

/** A statement as the server's parser saw it, with VS Code ranges. */
export type Statement = Omit<StatementInfo, 'range' | 'parseError'> & {
  range: vscode.Range;
  parseError: { message: string; range: vscode.Range } | null;
};

/**
 * The statements of the whole file, of a selection (exactly the selected text, split), or at a position.
 * Throws when the client is not running; retries while the document changes under the request.
 */
export async function statements(client: LanguageClient, document: vscode.TextDocument, scope: 'file' | vscode.Position | vscode.Range): Promise<Statement[]> {
  const c2p = client.code2ProtocolConverter;
  const params: StatementsRequest.Params = { textDocument: c2p.asTextDocumentIdentifier(document) };
  if (scope instanceof vscode.Range) params.range = c2p.asRange(scope);
  else if (scope instanceof vscode.Position) params.position = c2p.asPosition(scope);
  for (let attempt = 1; ; attempt++) {
    const result = await client.sendRequest<StatementsRequest.Result>(StatementsRequest.method, params);
    if (result.version === document.version || attempt === 3) {
      return result.statements.map((s) => ({
        ...s,
        range: asRange(s.range),
        parseError: s.parseError && { message: s.parseError.message, range: asRange(s.parseError.range) },
      }));
    }
  }
}

/** The server's lenses carry `[uri string, LSP range]`; the commands take `(vscode.Uri, vscode.Range)`. */
function toVscodeArguments(lens: vscode.CodeLens): vscode.CodeLens {
  const cmd = lens.command;
  if (cmd?.command === LensCommands.runStatement && cmd.arguments?.length === 2) {
    const [uri, range] = cmd.arguments as LensCommands.RunStatementArgs;
    cmd.arguments = [vscode.Uri.parse(uri), asRange(range)];
  } else if (cmd?.command === LensCommands.runFile && cmd.arguments?.length === 1) {
    const [uri] = cmd.arguments as LensCommands.RunFileArgs;
    cmd.arguments = [vscode.Uri.parse(uri)];
  }
  return lens;
}

function asRange(r: LspRange): vscode.Range {
  return new vscode.Range(r.start.line, r.start.character, r.end.line, r.end.character);
}

function showError(ctx: Ctx, message: string): void {
  void vscode.window.showErrorMessage(message, 'Show Log').then((a) => {
    if (a) ctx.log.show();
  });
}

/**
 * Restarts a crashed server up to 4 times in 3 minutes (vscode-languageclient's default policy), telling the
 * user each time with a "Show Log" action; after that it stays down until the window reloads.
 */
class ServerErrorHandler implements ErrorHandler {
  private readonly crashes: number[] = [];

  constructor(private readonly ctx: Ctx) {}

  error(error: Error, _message: unknown, count: number | undefined): ErrorHandlerResult {
    this.ctx.log.error(error);
    return { action: count !== undefined && count <= 3 ? ErrorAction.Continue : ErrorAction.Shutdown, handled: true };
  }

  closed(): CloseHandlerResult {
    const now = Date.now();
    while (this.crashes.length && now - this.crashes[0] > 3 * 60_000) this.crashes.shift();
    this.crashes.push(now);
    const giveUp = this.crashes.length > 4;
    const message = giveUp
      ? 'PG Tasks: the SQL language server stopped 5 times in 3 minutes and stays off (syntax errors, Run lenses). Reload the window to try again.'
      : 'PG Tasks: the SQL language server stopped unexpectedly and is restarting.';
    this.ctx.log.error(message);
    showError(this.ctx, message);
    return { action: giveUp ? CloseAction.DoNotRestart : CloseAction.Restart, handled: true };
  }
}
