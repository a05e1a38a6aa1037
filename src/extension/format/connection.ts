/**
 * How a connection's state reads in the Task Explorer: the text beside its name, its tooltip, and what to do
 * about it. No `vscode` import (see quantities.ts).
 */
import { oneLine } from './text';

/**
 * The states of a Connection (src/extension/connections.ts). Repeated here because that module imports
 * `vscode`; the tree passes `connection.state` in, so a state added there fails to compile until handled here.
 */
export type ConnectionStateName = 'checking' | 'ready' | 'noSchema' | 'outdated' | 'newer' | 'noDblink' | 'noPassword' | 'error';

/** What a connection needs explained; versions and the problem are optional. */
export interface ConnectionFacts {
  state: ConnectionStateName;
  label: string;
  problem?: string;
  installedVersion?: number;
  latestVersion?: number;
}

/** The short text beside a connection's name: its address when ready, else what is wrong. */
export function connectionDescription(c: ConnectionFacts): string {
  switch (c.state) {
    case 'ready':
      return c.label;
    case 'checking':
      return 'connecting…';
    case 'noSchema':
      return 'bgtask schema not installed';
    case 'outdated':
      return 'bgtask schema needs an upgrade';
    case 'newer':
      return 'bgtask schema newer than this extension';
    case 'noDblink':
      return 'dblink not available';
    case 'noPassword':
      return 'password for background tasks not set';
    case 'error':
      return oneLine(c.problem ?? 'cannot connect', 80);
  }
}

/** What is wrong with a connection and what to do about it, in sentences (tooltip and message lines). */
export function connectionAdvice(c: ConnectionFacts): string {
  const versions = c.installedVersion !== undefined && c.latestVersion !== undefined ? ` (installed v${c.installedVersion}, this extension v${c.latestVersion})` : '';
  switch (c.state) {
    case 'ready':
      return 'Connected; background tasks can run here.';
    case 'checking':
      return 'Connecting and checking the bgtask schema…';
    case 'noSchema':
      return 'The bgtask schema is not installed in this database. Install it (needs a superuser or a database owner with dblink).';
    case 'outdated':
      return `The bgtask schema is older than this extension${versions}. Upgrade it.`;
    case 'newer':
      return `The bgtask schema is newer than this extension knows${versions}. Update the extension.`;
    case 'noDblink':
      return 'The dblink extension is neither installed nor available on this server. Ask an administrator to install the PostgreSQL contrib package, then refresh.';
    case 'noPassword':
      return 'Background tasks log in again through dblink, which needs your password stored in the database. Set it to run tasks.';
    case 'error':
      return `Cannot use this connection: ${c.problem ?? 'unknown error'}. Check the connection settings and the server, then retry.`;
  }
}

/** The connection tooltip, as plain text: name, address, the advice. */
export function connectionTooltip(name: string, c: ConnectionFacts): string {
  return `${name} — ${c.label}\n${connectionAdvice(c)}`;
}
