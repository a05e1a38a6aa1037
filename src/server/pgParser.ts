/**
 * The real PostgreSQL parser (libpg-query 18, WASM build), loaded once per process.
 *
 * libpg-query's sync API needs `loadModule()` to have finished; its errors are `SqlError`s whose
 * `sqlDetails.cursorPosition` is a 0-based **code point** offset into the parsed text (see byteOffsets.ts),
 * 0 also when the parser gave no position. It reports only the first error of a text, so the server parses
 * each statement on its own: one diagnostic per broken statement.
 */

/** What the parser says about one statement's text. */
export type ParseOutcome =
  | { ok: true; /** Parse node names, e.g. ['SelectStmt']; empty for a text of only comments. */ stmtTypes: string[] }
  | { ok: false; message: string; /** 0-based code point offset into the parsed text. */ cursor: number };

export interface PgParser {
  parse(sql: string): ParseOutcome;
  /** Milliseconds the WASM module took to load and instantiate. */
  readonly loadMs: number;
  /** The PostgreSQL version the parser was built from, e.g. 180004 (0 until the first parse). */
  readonly pgVersion: number;
}

type LibPgQuery = typeof import('libpg-query');

let loading: Promise<PgParser> | undefined;

/**
 * Loads the WASM module (once: later calls share the first promise) and returns a parser. The module is
 * imported here rather than at the top so that the measured time covers compiling the WASM, which
 * libpg-query starts as soon as it is required.
 */
export function loadPgParser(): Promise<PgParser> {
  loading ??= (async () => {
    const t0 = performance.now();
    const lib: LibPgQuery = await import('libpg-query');
    await lib.loadModule();
    return new LibPgQueryParser(lib, performance.now() - t0);
  })();
  return loading;
}

class LibPgQueryParser implements PgParser {
  pgVersion = 0;

  constructor(
    private readonly lib: LibPgQuery,
    readonly loadMs: number,
  ) {}

  parse(sql: string): ParseOutcome {
    // parseSync throws "Query cannot be empty" on '' instead of returning no statements.
    if (sql === '') return { ok: true, stmtTypes: [] };
    try {
      const result = this.lib.parseSync(sql);
      this.pgVersion = result.version ?? this.pgVersion;
      return { ok: true, stmtTypes: (result.stmts ?? []).map((s) => Object.keys(s.stmt ?? {})[0] ?? 'unknown') };
    } catch (e) {
      if (this.lib.hasSqlDetails(e)) {
        return { ok: false, message: e.message, cursor: Math.max(0, e.sqlDetails?.cursorPosition ?? 0) };
      }
      // Not a syntax error (out of WASM memory, a wrapper bug): report it where it happened, at the start.
      return { ok: false, message: `the parser failed: ${e instanceof Error ? e.message : String(e)}`, cursor: 0 };
    }
  }
}
