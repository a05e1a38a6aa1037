import * as path from 'node:path';
import type * as CommandsModule from './lazy/commands';
import type * as CoreModule from './lazy/core';
import type * as InstallerModule from './lazy/installer';
import type * as LanguageClientModule from './languageClient';

/**
 * The heavy parts of the extension are separate bundles next to dist/extension.js (scripts/build.mjs), loaded
 * on first use so that activation does not pay for them: esbuild cannot split a CommonJS bundle itself. The
 * main bundle imports their types only; the build fails if one of them is inlined by a value import.
 *   - core.js: pg, the TaskClient and the TaskWatcher (the first connection check, right after activation);
 *   - commands.js: what the commands do, and the task panel (the first command run or panel opened);
 *   - installer.js: the installer and the embedded migrations (Install or Upgrade Schema);
 *   - languageClient.js: vscode-languageclient (started right after activation, never awaited by it).
 * The path is computed, so esbuild leaves the require alone; __dirname is dist/ in every bundle.
 */
const load = <T>(file: string): T => require(path.join(__dirname, file)) as T;

let commandsModule: typeof CommandsModule | undefined;
let coreModule: typeof CoreModule | undefined;
let installerModule: typeof InstallerModule | undefined;
let languageClientModule: typeof LanguageClientModule | undefined;

export const commands = (): typeof CommandsModule => (commandsModule ??= load<typeof CommandsModule>('commands.js'));
export const core = (): typeof CoreModule => (coreModule ??= load<typeof CoreModule>('core.js'));
export const installer = (): typeof InstallerModule => (installerModule ??= load<typeof InstallerModule>('installer.js'));
export const languageClient = (): typeof LanguageClientModule => (languageClientModule ??= load<typeof LanguageClientModule>('languageClient.js'));
