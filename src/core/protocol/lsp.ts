/**
 * Every custom message between the extension's language client (src/extension/languageClient.ts) and the SQL
 * language server (src/server/server.ts), in one file both sides import (rust-analyzer's lsp_ext.ts,
 * vscode-eslint's customMessages.ts). Like every protocol/ file it has no runtime imports, so a message is a
 * namespace with its literal `method` and its `Params`/`Result` types rather than a `RequestType` object:
 * the client calls `sendRequest<StatementsRequest.Result>(StatementsRequest.method, params)` and the server
 * registers `onRequest(StatementsRequest.method, (p: StatementsRequest.Params): StatementsRequest.Result => …)`.
 *
 * Ranges and positions are LSP's: zero-based lines, UTF-16 characters.
 */
import type { Position, Range, TextDocumentIdentifier } from 'vscode-languageserver-protocol';

/** One statement as the server's parser saw it. */
export interface StatementInfo {
  /**
   * The exact text to submit as one step: from its first token (or a block comment or optimizer hint on the
   * same line before it) to its last token, without the terminating `;` (src/core/sqlSplit.ts).
   */
  text: string;
  /** From the start of `text` to just after the terminating `;` (or the end of `text` when there is none). */
  range: Range;
  /** `psql-meta`: a psql backslash command, which cannot run on the server; never submit it. */
  kind: 'sql' | 'psql-meta';
  /** The statement's first keyword, upper case (`SELECT`, `VACUUM`, `WITH`…); `\set` etc. for psql-meta. */
  keyword: string;
  /** Whether it returns rows, so the task collects them; null when only running it can tell (a CALL, say). */
  returnsRows: boolean | null;
  /** `autocommit`: it cannot run inside a transaction block (VACUUM, CREATE INDEX CONCURRENTLY…). */
  ownStep: 'autocommit' | null;
  /** The transaction control it is, if any. */
  transaction: 'begin' | 'commit' | 'rollback' | null;
  /** The parser's node names (`SelectStmt`, `VacuumStmt`…); empty for psql-meta and broken statements. */
  parserKinds: string[];
  /** The syntax error PostgreSQL will report for this statement, or null. */
  parseError: { message: string; range: Range } | null;
}

/**
 * client → server: the statements of a document, so that Run Statement / Run Selection / Run File submit
 * exactly what the parser saw. Answered from the server's current copy of the document (the client sends
 * every pending change before a request), without waiting for the diagnostics debounce.
 */
export namespace StatementsRequest {
  export const method = 'pgTasks/statements';
  export interface Params {
    textDocument: TextDocumentIdentifier;
    /**
     * The statements of exactly the text in this range, split the way the file is (a partial statement is
     * returned as selected, like Run Selection). An empty range counts as `position: range.start`.
     */
    range?: Range;
    /**
     * The statement at this position, as sqlSplit's statementAt picks it: the one containing it; between
     * statements, the previous one when the position is on the line where that one ends, else the next one.
     */
    position?: Position;
    // Neither: every statement of the file.
  }
  export interface Result {
    /** The document version the answer is for; compare it with the editor's before submitting. */
    version: number;
    /** In document order; blank and comment-only stretches are left out, psql meta-commands are not. */
    statements: StatementInfo[];
  }
}

/**
 * server → client, once after `initialized`: whether the WASM parser loaded, and how fast. The client logs
 * it; on `failed` the server keeps answering with statement boundaries but publishes no syntax errors.
 */
export namespace ServerStatusNotification {
  export const method = 'pgTasks/serverStatus';
  export type Params =
    | { state: 'ready'; parser: string; /** PostgreSQL version number of the grammar, e.g. 180004. */ pgVersion: number; wasmLoadMs: number }
    | { state: 'failed'; message: string };
}

/**
 * The commands the server's code lenses carry. Over LSP the arguments are plain JSON: the document URI as a
 * string and an LSP range; the client's code-lens middleware turns them into `vscode.Uri` / `vscode.Range`
 * before VS Code runs the command.
 */
export namespace LensCommands {
  /** Arguments: `[uri: string, range: Range]`: the statement under the lens. */
  export const runStatement = 'pgTasks.runStatement';
  /** Arguments: `[uri: string]`. */
  export const runFile = 'pgTasks.runFile';
  export type RunStatementArgs = [uri: string, range: Range];
  export type RunFileArgs = [uri: string];
}
