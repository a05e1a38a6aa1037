/**
 * The shipped extension: a production build of the working tree in a temp copy (so the shared dist/ of others
 * at work in the tree is never rebuilt under them), the VSIX packed from it with vsce, and the cost of loading
 * the bundle (dist/extension.js) in a fresh Node process. The real activation time inside VS Code is measured
 * in webview.ts, where code-server runs this same build.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { absoluteResult, type BenchOptions, type CaseResult } from './lib';

export const REPO_ROOT = path.resolve(__dirname, '..');

export interface ProductionBuild {
  dir: string;
  vsix: string;
  vsixBytes: number;
  files: Record<string, number>;
  /** Set when plain `vsce package` failed and the VSIX was packed with placeholder base URLs instead. */
  vsixError?: string;
  remove(): void;
}

let built: ProductionBuild | undefined;

/** Removes the temp build, if one was made. */
export function removeProductionBuild(): void {
  built?.remove();
  built = undefined;
}

/** Copies the working tree (tracked and untracked, not ignored) to a temp dir and builds it for production. */
export function productionBuild(log: (s: string) => void): ProductionBuild {
  if (built) return built;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pgbt-bench-build-'));
  const remove = () => fs.rmSync(dir, { recursive: true, force: true });
  try {
    const ls = spawnSync('git', ['ls-files', '-co', '--exclude-standard', '-z'], { cwd: REPO_ROOT, encoding: 'utf8' });
    if (ls.status !== 0) throw new Error(`git ls-files failed: ${ls.stderr}`);
    for (const f of ls.stdout.split('\0').filter(Boolean)) {
      const src = path.join(REPO_ROOT, f);
      if (!fs.existsSync(src)) continue; // deleted in the working tree
      fs.mkdirSync(path.dirname(path.join(dir, f)), { recursive: true });
      fs.copyFileSync(src, path.join(dir, f));
    }
    fs.symlinkSync(path.join(REPO_ROOT, 'node_modules'), path.join(dir, 'node_modules'));
    const run = (cmd: string, args: string[]) => {
      const r = spawnSync(cmd, args, { cwd: dir, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, npm_config_update_notifier: 'false' } });
      if (r.status !== 0) throw new Error(`\`${cmd} ${args.join(' ')}\` failed (exit ${r.status}):\n${r.stdout}\n${r.stderr}`);
      return r.stdout;
    };
    const t0 = performance.now();
    run('npm', ['run', 'build', '--', '--production']);
    const vsix = path.join(dir, 'bench.vsix');
    let vsixError: string | undefined;
    try {
      run('npx', ['vsce', 'package', '--no-dependencies', '--out', vsix]);
    } catch (e) {
      // vsce refuses a README with relative images when package.json names no repository. The size is the
      // same with placeholder base URLs (only the links in the packed README change): measure that, and say so.
      vsixError = (e instanceof Error ? e.message : String(e)).replace(/\x1b\[[0-9;]*m/g, '').split('\n').find((l) => /ERROR/.test(l))?.trim() ?? String(e);
      run('npx', ['vsce', 'package', '--no-dependencies', '--out', vsix, '--baseContentUrl', 'https://example.invalid/', '--baseImagesUrl', 'https://example.invalid/']);
    }
    const files: Record<string, number> = {};
    // Every bundle: dist/extension.js is what activation loads, the others load later (src/extension/lazy.ts).
    for (const f of fs.readdirSync(path.join(dir, 'dist')).filter((f) => !f.endsWith('.map')).sort()) files[`dist/${f}`] = fs.statSync(path.join(dir, 'dist', f)).size;
    log(`extension: production build and VSIX of the working tree in ${((performance.now() - t0) / 1000).toFixed(1)} s (${dir})${vsixError ? `; plain vsce package failed: ${vsixError}` : ''}`);
    built = { dir, vsix, vsixBytes: fs.statSync(vsix).size, files, remove, vsixError };
    return built;
  } catch (e) {
    remove();
    throw e;
  }
}

/**
 * VSIX size, and the load cost of the bundle: `require('dist/extension.js')` in a fresh Node process, with
 * `vscode` answered by an inert stand-in (the bundle only reads names from it while loading) that has as many
 * own properties as the real API object (299 in code-server 4.100.3): how a bundle imports it decides how often
 * they are copied, which an empty stand-in would hide. This is the "code loading" part of VS Code's activation
 * time; activate() itself needs the real VS Code (webview.ts).
 */
export async function benchPackage(o: BenchOptions): Promise<CaseResult[]> {
  const b = productionBuild(o.log);
  const runs = o.quick ? 5 : 15;
  const probe = `
    const Module = require('module');
    const stub = () => new Proxy(function () {}, { get: (t, k) => k === 'prototype' ? {} : k === Symbol.toPrimitive ? () => '' : stub(), construct: () => stub(), apply: () => stub() });
    const api = Object.create(stub());
    for (let i = 0; i < 299; i++) api['api' + i] = stub();
    const load = Module._load;
    Module._load = function (req, ...rest) { return req === 'vscode' ? api : load.call(this, req, ...rest); };
    const t0 = performance.now();
    const m = require(process.argv[1]);
    const ms = performance.now() - t0;
    if (typeof m.activate !== 'function') throw new Error('no activate export');
    process.stdout.write(String(ms));`;
  const ms: number[] = [];
  for (let i = 0; i < runs + 1; i++) {
    const r = spawnSync(process.execPath, ['-e', probe, path.join(b.dir, 'dist', 'extension.js')], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`loading dist/extension.js failed: ${r.stderr}`);
    if (i > 0) ms.push(Number(r.stdout));
  }
  const mb = b.vsixBytes / 2 ** 20;
  return [
    absoluteResult({
      id: 'vsix', name: 'VSIX size (production build)', samples: [mb], limit: 3, target: '≤ 3 MB', unit: 'MB',
      notes: [
        `\`npm run build -- --production\` then \`vsce package --no-dependencies\`; files: ${Object.entries(b.files).map(([f, n]) => `${f} ${(n / 1024).toFixed(0)} KiB`).join(', ')}`,
        ...(b.vsixError ? [`plain \`vsce package\` FAILED (so would \`npm run package\`): ${b.vsixError} — measured with --baseContentUrl/--baseImagesUrl placeholders`] : []),
      ],
      extra: { bytes: b.vsixBytes, files: b.files },
    }),
    absoluteResult({
      id: 'bundle-load', name: 'extension bundle load: require(dist/extension.js)', samples: ms, limit: null, target: 'part of ≤ 50 ms',
      notes: [`fresh Node process per run (${runs} runs), vscode module stubbed (299 properties, as the real one); the code-loading share of activation, of dist/extension.js only (the other bundles load after activation)`],
    }),
  ];
}
