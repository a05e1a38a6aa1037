// Bundles the extension host code (dist/extension.js and the bundles it loads lazily), the language server
// (dist/server.js) and the task panel's front end (media/dist/), with esbuild. `--production` minifies and drops
// source maps.
import * as esbuild from 'esbuild';
import { copyFileSync, existsSync, mkdirSync, rmSync } from 'node:fs';
import { join, dirname, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const production = process.argv.includes('--production');
const common = { bundle: true, minify: production, sourcemap: !production, logLevel: 'warning', absWorkingDir: root };

// Start clean: a stale development source map must not end up in a production package.
for (const dir of ['dist', 'media/dist']) rmSync(join(root, dir), { recursive: true, force: true });

// The extension host's code is several bundles, because esbuild cannot split CommonJS output: dist/extension.js
// is what VS Code loads and activates, and src/extension/lazy.ts requires the others (a computed path, so they
// are never inlined) when they are first needed, so that activation loads none of them.
const hostEntries = [
  ['src/extension/extension.ts', 'dist/extension.js'],
  ['src/extension/lazy/commands.ts', 'dist/commands.js'], // the commands and the task panel: at first use
  ['src/extension/lazy/core.ts', 'dist/core.js'], // pg, TaskClient, TaskWatcher: at the first connection
  ['src/extension/lazy/installer.ts', 'dist/installer.js'], // the migrations: at Install or Upgrade Schema
  ['src/extension/languageClient.ts', 'dist/languageClient.js'], // vscode-languageclient: after activation
];
// Modules more than one of those bundles use whose identity matters (toTaskError's `instanceof TaskError`): each
// is its own file in dist/, required by the bundles that import it, so there is one TaskError class, not one per bundle.
const shared = [['src/core/errors.ts', 'dist/errors.js']];
// What dist/extension.js must not contain: a value import of a lazy bundle's module would inline it again.
const notInMain = ['node_modules/pg/', 'node_modules/vscode-languageclient/', 'src/core/taskClient.ts', 'src/core/taskWatcher.ts', 'src/core/installer.ts', 'src/extension/languageClient.ts', 'src/extension/commands/', 'src/extension/taskPanelView.ts'];

const sharedPlugin = {
  name: 'shared-modules',
  setup(build) {
    const byPath = new Map(shared.map(([src, out]) => [join(root, src), out]));
    build.onResolve({ filter: /^\.\.?\// }, (args) => {
      const out = byPath.get(resolve(args.resolveDir, args.path) + '.ts');
      // Every bundle is in dist/, so the shared file's path relative to it is just its name.
      return out && { path: `./${relative('dist', out)}`, external: true };
    });
  },
};

// `import * as vscode from 'vscode'` compiles to `__toESM(require('vscode'))` in every module that has it, and each
// of those copies the API object's ~300 properties as getters: ~3 ms of dist/extension.js's load for its twelve
// modules (a 300-property stand-in in Node). Our modules import one ESM stand-in instead, which copies them once.
// Packages' own require('vscode') (vscode-languageclient's) stays a plain require.
const vscodeOnce = {
  name: 'vscode-once',
  setup(build) {
    build.onResolve({ filter: /^vscode$/ }, (args) =>
      args.namespace === 'vscode-once' || args.importer.includes('/node_modules/') ? { path: 'vscode', external: true } : { path: 'vscode', namespace: 'vscode-once' });
    build.onLoad({ filter: /.*/, namespace: 'vscode-once' }, () => ({ contents: "export * from 'vscode';", loader: 'js' }));
  },
};

const nodeOptions = {
  ...common,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  // vscode is the host's; pg-native is pg's optional native binding, which we do not use.
  external: ['vscode', 'pg-native'],
};
const serverEntry = 'src/server/server.ts';
const hasServer = existsSync(join(root, serverEntry));

const [mainBuild] = await Promise.all([
  ...hostEntries.map(([src, out]) => esbuild.build({ ...nodeOptions, entryPoints: [src], outfile: out, plugins: [sharedPlugin, vscodeOnce], metafile: true })),
  ...shared.map(([src, out]) => esbuild.build({ ...nodeOptions, entryPoints: [src], outfile: out })),
  ...(hasServer ? [esbuild.build({ ...nodeOptions, entryPoints: [serverEntry], outfile: 'dist/server.js' })] : []),
  esbuild.build({
    ...common,
    entryPoints: ['media/taskPanel.ts'],
    outfile: 'media/dist/taskPanel.js',
    platform: 'browser',
    target: 'es2020',
    format: 'iife',
  }),
]);

const inlined = Object.keys(mainBuild.metafile.inputs).filter((f) => notInMain.some((p) => f.startsWith(p)));
if (inlined.length) {
  rmSync(join(root, 'dist/extension.js'));
  throw new Error(`build: dist/extension.js would load at activation what should load lazily (import it with \`import type\` and load it through src/extension/lazy.ts): ${inlined.join(', ')}`);
}

mkdirSync(join(root, 'media/dist'), { recursive: true });
copyFileSync(join(root, 'media/taskPanel.css'), join(root, 'media/dist/taskPanel.css'));
// The language server's bundle loads the PostgreSQL parser's WASM from its own folder.
if (hasServer) {
  copyFileSync(join(root, 'node_modules/libpg-query/wasm/libpg-query.wasm'), join(root, 'dist/libpg-query.wasm'));
}
for (const f of ['codicon.css', 'codicon.ttf']) {
  copyFileSync(join(root, 'node_modules/@vscode/codicons/dist', f), join(root, 'media/dist', f));
}
const outputs = [...hostEntries, ...shared].map(([, o]) => o).concat(hasServer ? ['dist/server.js'] : []);
console.log(`build: ${outputs.join(', ')}, media/dist/ (${production ? 'production' : 'development'})`);
