import type { CodeLens, Diagnostic, Hover, Position } from 'vscode-languageserver';
import type { TextDocument } from 'vscode-languageserver-textdocument';
import type { Logger } from '../core/logger';
import type { StatementsRequest } from '../core/protocol/lsp';
import { statementAt } from '../core/sqlSplit';
import { DocumentAnalyzer, type Analysis, type AnalyzedStatement } from './analysis';
import { codeLenses, diagnostics, hover, statementInfo } from './features';
import type { PgParser } from './pgParser';

/** How long diagnostics wait after the last keystroke: typing should not flash errors at every character. */
export const DIAGNOSTICS_DELAY_MS = 200;

/** Analyses slower than this are logged with their timings. */
const SLOW_MS = 50;

interface DocState {
  analyzer: DocumentAnalyzer;
  analysis?: Analysis;
  timer?: NodeJS.Timeout;
  publishedVersion?: number;
}

/**
 * The language features over the open documents, independent of the connection: server.ts feeds it document
 * events and requests, and hands it a `publish` function for diagnostics. Diagnostics are debounced per
 * document; requests (lenses, hover, statements) always answer for the document's current version, analysing
 * it on the spot if the debounce has not run yet. Everything per document is dropped when it closes.
 */
export class SqlService {
  private readonly docs = new Map<string, DocState>();

  constructor(
    private readonly parser: PgParser | undefined,
    private readonly publish: (uri: string, version: number | undefined, diagnostics: Diagnostic[]) => void,
    private readonly log: Logger,
    private readonly delayMs = DIAGNOSTICS_DELAY_MS,
  ) {}

  /** A document opened: diagnose it at once. */
  opened(doc: TextDocument): void {
    this.publishNow(doc);
  }

  /** A document changed: diagnose it when the edits pause. */
  changed(doc: TextDocument): void {
    const state = this.state(doc.uri);
    if (state.timer) clearTimeout(state.timer);
    state.timer = setTimeout(() => {
      state.timer = undefined;
      this.publishNow(doc);
    }, this.delayMs);
  }

  closed(uri: string): void {
    const state = this.docs.get(uri);
    if (state?.timer) clearTimeout(state.timer);
    this.docs.delete(uri);
    this.publish(uri, undefined, []);
  }

  codeLenses(doc: TextDocument): CodeLens[] {
    return codeLenses(this.analysis(doc), doc);
  }

  hover(doc: TextDocument, position: Position): Hover | null {
    return hover(this.analysis(doc), doc, position);
  }

  statements(doc: TextDocument, params: StatementsRequest.Params): StatementsRequest.Result {
    const a = this.analysis(doc);
    let picked: readonly AnalyzedStatement[];
    const range = params.range;
    const start = range && doc.offsetAt(range.start);
    const end = range && doc.offsetAt(range.end);
    if (start !== undefined && end !== undefined && start !== end) {
      const [from, to] = start < end ? [start, end] : [end, start];
      picked = this.state(doc.uri).analyzer.fragment(a.text.slice(from, to), from);
    } else if (params.position ?? range) {
      const position = params.position ?? range?.start ?? { line: 0, character: 0 };
      const at = statementAt(a.statements, doc.offsetAt(position), a.text) as AnalyzedStatement | undefined;
      picked = at ? [at] : [];
    } else {
      picked = a.statements;
    }
    return { version: doc.version, statements: picked.map((s) => statementInfo(s, doc)) };
  }

  /** The analysis of the document's current version. */
  analysis(doc: TextDocument): Analysis {
    const state = this.state(doc.uri);
    if (state.analysis?.version === doc.version) return state.analysis;
    const t0 = performance.now();
    const a = state.analyzer.analyze(doc.getText(), doc.version);
    const ms = performance.now() - t0;
    const t = a.timing;
    const line = `${doc.uri} v${doc.version}: ${a.statements.length} statements, ${t.parsed} parsed, ${ms.toFixed(1)} ms (split ${t.splitMs.toFixed(1)}, parse ${t.factsMs.toFixed(1)})`;
    if (ms > SLOW_MS) this.log.info(line);
    else this.log.trace(line);
    state.analysis = a;
    return a;
  }

  dispose(): void {
    for (const s of this.docs.values()) if (s.timer) clearTimeout(s.timer);
    this.docs.clear();
  }

  private publishNow(doc: TextDocument): void {
    const state = this.state(doc.uri);
    const a = this.analysis(doc);
    if (state.publishedVersion === a.version) return;
    state.publishedVersion = a.version;
    this.publish(doc.uri, a.version, diagnostics(a, doc));
  }

  private state(uri: string): DocState {
    let s = this.docs.get(uri);
    if (!s) {
      s = { analyzer: new DocumentAnalyzer(this.parser) };
      this.docs.set(uri, s);
    }
    return s;
  }
}
