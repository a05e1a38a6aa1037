/**
 * The narrow logging interface the core writes to. The extension hands it a `LogOutputChannel`, the language
 * server `connection.console`, tests a silent or capturing logger. Never pass secrets to it.
 */
export interface Logger {
  trace(message: string): void;
  info(message: string): void;
  warn(message: string): void;
  error(message: string | Error): void;
}

/** A logger that drops everything, for callers that have nowhere to log. */
export const silentLogger: Logger = {
  trace: () => undefined,
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
};
