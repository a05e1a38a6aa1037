/**
 * The codicon and theme colour that show what state a task or a connection is in. No `vscode` import (see
 * quantities.ts): the tree turns an IconSpec into a ThemeIcon.
 */
import type { TaskState } from '../../core/models';
import type { ConnectionStateName } from './connection';

/** A codicon id and, optionally, the id of a theme colour for it. */
export interface IconSpec {
  id: string;
  color?: string;
}

/** The codicon of a task state, with the theme colour that carries its meaning. */
export function stateIcon(state: TaskState): IconSpec {
  switch (state) {
    case 'running':
      return { id: 'loading~spin' };
    case 'queued':
      return { id: 'clock' };
    case 'done':
      return { id: 'pass', color: 'testing.iconPassed' };
    case 'failed':
      return { id: 'error', color: 'testing.iconFailed' };
    case 'cancelled':
      return { id: 'circle-slash' };
    case 'lost':
      return { id: 'warning', color: 'problemsWarningIcon.foreground' };
  }
}

/** The codicon of a connection: a database when ready, else what kind of trouble it is in. */
export function connectionIcon(state: ConnectionStateName): IconSpec {
  switch (state) {
    case 'ready':
      return { id: 'database' };
    case 'checking':
      return { id: 'loading~spin' };
    case 'noSchema':
    case 'outdated':
    case 'noPassword':
    case 'noDblink':
      return { id: 'warning', color: 'problemsWarningIcon.foreground' };
    case 'newer':
    case 'error':
      return { id: 'error', color: 'problemsErrorIcon.foreground' };
  }
}
