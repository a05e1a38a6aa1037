import type { TaskSummary } from '../core/models';
import type { Connection } from './connections';

/**
 * The items of the Task Explorer, also the argument every task command receives from a tree menu. Commands
 * run from the palette get no node and ask with a quick pick instead.
 */
export type TreeNode = ConnectionNode | GroupNode | TaskNode | LoadMoreNode | MessageNode;

export interface ConnectionNode {
  kind: 'connection';
  connection: Connection;
}

/** "Running" (queued and running tasks, live) or "Finished" (paged, newest first). */
export interface GroupNode {
  kind: 'group';
  connection: Connection;
  group: 'running' | 'finished';
}

export interface TaskNode {
  kind: 'task';
  connection: Connection;
  task: TaskSummary;
}

export interface LoadMoreNode {
  kind: 'loadMore';
  connection: Connection;
}

/** A one-line explanation inside a group ("No finished tasks yet"), or a problem with a fix-it command. */
export interface MessageNode {
  kind: 'message';
  connection: Connection;
  text: string;
  /** The longer explanation when the label is cut short by a narrow sidebar. */
  tooltip?: string;
  command?: { command: string; title: string; arguments?: unknown[] };
}

export const isTaskNode = (n: unknown): n is TaskNode => typeof n === 'object' && n !== null && (n as TreeNode).kind === 'task';
export const isConnectionNode = (n: unknown): n is ConnectionNode =>
  typeof n === 'object' && n !== null && (n as TreeNode).kind === 'connection';
