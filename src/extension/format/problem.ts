/**
 * Failures as text: a task's error as one line, and a connection failure as a sentence a DBA can act on. No
 * `vscode` import (see quantities.ts).
 */
import type { TaskErrorInfo } from '../../core/models';

/** The error as one line: "22012 division by zero (step 2)". */
export function errorLine(e: TaskErrorInfo): string {
  return `${e.sqlstate ? `${e.sqlstate} ` : ''}${e.message}${e.step ? ` (step ${e.step})` : ''}`;
}

/** What node's socket error codes mean to someone who just wants to reach the server (no final stop: callers add text). */
const NETWORK_ERRORS: Record<string, string> = {
  ECONNREFUSED: 'connection refused; check that the server is running and listens on that host and port',
  ETIMEDOUT: 'timed out; check the host, the port, and any firewall or VPN in between',
  ENOTFOUND: 'host name not found; check the host',
  EAI_AGAIN: 'host name lookup failed; check the network or DNS',
  EHOSTUNREACH: 'host unreachable; check the network or VPN',
  ENETUNREACH: 'network unreachable; check the network or VPN',
  ECONNRESET: 'the connection was reset; retry in a moment',
};

/**
 * A failure as a sentence a DBA can act on. Socket errors arrive as "connect ECONNREFUSED 127.0.0.1:5432",
 * with the errno where a SQLSTATE would be (toTaskError keeps any string `code`), so they are recognised by
 * that code; server messages are already good English and pass through unchanged.
 */
export function problemText(message: string, code?: string): string {
  const net = code ? NETWORK_ERRORS[code] : undefined;
  if (net) {
    const where = /(?:\d{1,3}(?:\.\d{1,3}){3}|\[[0-9a-fA-F:]+\]|[A-Za-z0-9_.-]+):\d+\b/.exec(message)?.[0];
    return `Cannot reach the server${where ? ` at ${where}` : ''}: ${net}`;
  }
  if (code === '57P03' || code === '57P01') return `${message.replace(/\.$/, '')}; retry in a moment`;
  if (/^Connection terminated/i.test(message)) return 'The server closed the connection (did it restart?); retry in a moment';
  return message;
}

/** Whether `code` is a SQLSTATE (five digits and capitals, at least one digit) rather than a socket errno. */
export function isSqlState(code: string | undefined): code is string {
  return code !== undefined && /^[0-9A-Z]{5}$/.test(code) && /\d/.test(code);
}
