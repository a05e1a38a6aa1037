/**
 * The SQL language server's entry point (bundled to dist/server.js). The transport comes from the command
 * line, as vscode-languageserver reads it: `--node-ipc` when the extension starts it, `--stdio` for the LSP
 * test (test/server/lsp.test.ts) and other editors. It logs through `connection.console` only: on stdio,
 * stdout carries the protocol.
 */
import {
  ErrorCodes,
  ProposedFeatures,
  ResponseError,
  TextDocuments,
  TextDocumentSyncKind,
  createConnection,
  type Connection,
  type InitializeResult,
} from 'vscode-languageserver/node';
import { TextDocument } from 'vscode-languageserver-textdocument';
import type { Logger } from '../core/logger';
import { ServerStatusNotification, StatementsRequest } from '../core/protocol/lsp';
import { loadPgParser, type PgParser } from './pgParser';
import { SqlService } from './service';

function main(): void {
  const connection = createConnection(ProposedFeatures.all);
  const documents = new TextDocuments(TextDocument);
  const log = consoleLogger(connection);
  let service: SqlService | undefined;
  let status: ServerStatusNotification.Params | undefined;

  connection.onInitialize(async (): Promise<InitializeResult> => {
    let parser: PgParser | undefined;
    try {
      parser = await loadPgParser();
      // One tiny parse reads the grammar's version and warms the parser up before the first document.
      parser.parse('select 1');
      status = { state: 'ready', parser: 'libpg-query', pgVersion: parser.pgVersion, wasmLoadMs: parser.loadMs };
    } catch (e) {
      // Without the parser the server still splits statements (lenses, the statements request) but cannot
      // report syntax errors; the client is told in the status notification.
      status = { state: 'failed', message: e instanceof Error ? e.message : String(e) };
      log.error(e instanceof Error ? e : String(e));
    }
    service = new SqlService(parser, (uri, version, diagnostics) => void connection.sendDiagnostics({ uri, version, diagnostics }), log);
    return {
      capabilities: {
        textDocumentSync: TextDocumentSyncKind.Incremental,
        codeLensProvider: { resolveProvider: false },
        hoverProvider: true,
      },
      serverInfo: { name: 'pg-background-tasks-sql' },
    };
  });

  connection.onInitialized(() => {
    if (!status) return;
    if (status.state === 'ready') log.info(`libpg-query loaded in ${status.wasmLoadMs.toFixed(1)} ms (PostgreSQL ${status.pgVersion} grammar)`);
    void connection.sendNotification(ServerStatusNotification.method, status);
  });

  documents.onDidOpen((e) => service?.opened(e.document));
  // onDidChangeContent also fires right after onDidOpen; the service publishes a version only once.
  documents.onDidChangeContent((e) => service?.changed(e.document));
  documents.onDidClose((e) => service?.closed(e.document.uri));

  const docOrThrow = (uri: string): { doc: TextDocument; svc: SqlService } => {
    const doc = documents.get(uri);
    if (!doc || !service) throw new ResponseError(ErrorCodes.InvalidParams, `not an open SQL document: ${uri}`);
    return { doc, svc: service };
  };
  connection.onCodeLens((p) => {
    const doc = documents.get(p.textDocument.uri);
    return doc && service ? service.codeLenses(doc) : [];
  });
  connection.onHover((p) => {
    const doc = documents.get(p.textDocument.uri);
    return doc && service ? service.hover(doc, p.position) : null;
  });
  connection.onRequest(StatementsRequest.method, (p: StatementsRequest.Params): StatementsRequest.Result => {
    const { doc, svc } = docOrThrow(p.textDocument.uri);
    return svc.statements(doc, p);
  });
  connection.onShutdown(() => service?.dispose());

  documents.listen(connection);
  connection.listen();
}

/** The core's Logger over the LSP console, which the client shows in the extension's log channel. */
function consoleLogger(connection: Connection): Logger {
  return {
    trace: (m) => connection.console.debug(m),
    info: (m) => connection.console.info(m),
    warn: (m) => connection.console.warn(m),
    error: (m) => connection.console.error(m instanceof Error ? `${m.message}\n${m.stack ?? ''}` : m),
  };
}

main();
