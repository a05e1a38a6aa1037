import * as vscode from 'vscode';
import type { Logger } from '../core/logger';

/**
 * The extension's one LogOutputChannel ("PG Background Tasks"), also handed to the core as its Logger. An
 * Error is printed with its stack (rust-analyzer's util.ts does the same). Never log secrets.
 */
export class Log implements Logger, vscode.Disposable {
  readonly channel: vscode.LogOutputChannel;

  constructor() {
    this.channel = vscode.window.createOutputChannel('PG Background Tasks', { log: true });
  }

  trace(message: string): void {
    this.channel.trace(message);
  }
  info(message: string): void {
    this.channel.info(message);
  }
  warn(message: string): void {
    this.channel.warn(message);
  }
  error(message: string | Error): void {
    this.channel.error(message instanceof Error ? `${message.message}\n${message.stack ?? ''}` : message);
  }
  show(): void {
    this.channel.show(true);
  }
  dispose(): void {
    this.channel.dispose();
  }
}
