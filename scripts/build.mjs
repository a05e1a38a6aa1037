// Bundles the extension host code (dist/extension.js, and the language server once it exists) and the task
// panel's front end (media/dist/), with esbuild. `--production` minifies and drops source maps.
import * as esbuild from 'esbuild';
import { copyFileSync, existsSync, mkdirSync, rmSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const production = process.argv.includes('--production');
const common = { bundle: true, minify: production, sourcemap: !production, logLevel: 'warning', absWorkingDir: root };

// Start clean: a stale development source map must not end up in a production package.
for (const dir of ['dist', 'media/dist']) rmSync(join(root, dir), { recursive: true, force: true });

const nodeEntries = [['src/extension/extension.ts', 'dist/extension.js'], ['src/server/server.ts', 'dist/server.js']]
  .filter(([src]) => existsSync(join(root, src)));

await Promise.all([
  ...nodeEntries.map(([src, out]) =>
    esbuild.build({
      ...common,
      entryPoints: [src],
      outfile: out,
      platform: 'node',
      target: 'node20',
      format: 'cjs',
      // vscode is the host's; pg-native is pg's optional native binding, which we do not use.
      external: ['vscode', 'pg-native'],
    }),
  ),
  esbuild.build({
    ...common,
    entryPoints: ['media/taskPanel.ts'],
    outfile: 'media/dist/taskPanel.js',
    platform: 'browser',
    target: 'es2020',
    format: 'iife',
  }),
]);

mkdirSync(join(root, 'media/dist'), { recursive: true });
copyFileSync(join(root, 'media/taskPanel.css'), join(root, 'media/dist/taskPanel.css'));
// The language server's bundle loads the PostgreSQL parser's WASM from its own folder.
if (nodeEntries.some(([src]) => src.includes('server'))) {
  copyFileSync(join(root, 'node_modules/libpg-query/wasm/libpg-query.wasm'), join(root, 'dist/libpg-query.wasm'));
}
for (const f of ['codicon.css', 'codicon.ttf']) {
  copyFileSync(join(root, 'node_modules/@vscode/codicons/dist', f), join(root, 'media/dist', f));
}
console.log(`build: ${nodeEntries.map(([, o]) => o).join(', ')}, media/dist/ (${production ? 'production' : 'development'})`);
