// The pgpass package ships no types. We use its helper module rather than its main export, because
// the main export always reads PGPASSFILE/HOME from process.env, and we resolve the file name from the env we were given.
declare module 'pgpass/lib/helper' {
  import type { Stats } from 'node:fs';
  import type { Readable } from 'node:stream';

  /** The fields a .pgpass line is matched against ('*' in the file matches anything). */
  export interface PgPassConnInfo {
    host: string;
    port: number;
    database: string;
    user: string;
  }

  /** PGPASSFILE, else %APPDATA%\postgresql\pgpass.conf on Windows, else $HOME/.pgpass. */
  export function getFileName(env?: Record<string, string | undefined>): string;
  /** False (with a warning on stderr) for a non-regular file or one with group/world access; also false if process.env has PGPASSWORD. */
  export function usePgPass(stats: Stats, fname?: string): boolean;
  /** Calls back with the password of the first matching line, or undefined. */
  export function getPassword(connInfo: PgPassConnInfo, stream: Readable, cb: (password: string | undefined) => void): void;
  /** Redirects the warnings (default process.stderr); returns the previous stream. */
  export function warnTo(stream: NodeJS.WritableStream): NodeJS.WritableStream;
}
