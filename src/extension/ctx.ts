import * as vscode from 'vscode';
import { ConnectionManager } from './connections';
import { Log } from './log';

/**
 * What every feature of the extension needs, built once in activate() (rust-analyzer's ctx.ts). Features take
 * the narrowest part of it they can.
 */
export class Ctx implements vscode.Disposable {
  readonly log: Log;
  readonly connections: ConnectionManager;
  readonly subscriptions: vscode.Disposable[] = [];

  constructor(readonly extCtx: vscode.ExtensionContext) {
    this.log = new Log();
    this.connections = new ConnectionManager(extCtx.secrets, this.log);
    extCtx.subscriptions.push(this);
  }

  get extensionUri(): vscode.Uri {
    return this.extCtx.extensionUri;
  }

  dispose(): void {
    for (const d of this.subscriptions.splice(0).reverse()) d.dispose();
    this.connections.dispose();
    this.log.dispose();
  }
}
