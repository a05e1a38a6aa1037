// The core rule (STYLE.md): nothing under src/core or src/server imports `vscode`, so both run in plain Node, and
// the webview's front end (media/) cannot import it either. tsconfig.core.json leaves out the global vscode types,
// but an explicit import still finds @types/vscode in node_modules and compiles: this test is what rejects it.
// src/core/protocol files have no runtime imports at all (media/ bundles them).
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';

const root = path.resolve(__dirname, '../../..');
const files = (dir: string): string[] =>
  fs.readdirSync(path.join(root, dir), { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? (e.name === 'dist' ? [] : files(path.join(dir, e.name))) : /\.tsx?$/.test(e.name) ? [path.join(dir, e.name)] : []);
// import … from 'x', import 'x', export … from 'x', require('x'), import('x'); `import type` is erased.
const imports = (text: string): { spec: string; typeOnly: boolean }[] =>
  [...text.matchAll(/(?:^|\n)\s*(import|export)\s+(type\s+)?(?:[^'";]*?\s+from\s+)?['"]([^'"]+)['"]|\b(?:require|import)\(\s*['"]([^'"]+)['"]\s*\)/g)]
    .map((m) => ({ spec: m[3] ?? m[4], typeOnly: Boolean(m[2]) }));

test('src/core, src/server and media/ never import vscode', () => {
  const offenders = ['src/core', 'src/server', 'media'].flatMap(files)
    .filter((f) => imports(fs.readFileSync(path.join(root, f), 'utf8')).some((i) => i.spec === 'vscode' || i.spec.startsWith('vscode/')));
  assert.deepEqual(offenders, []);
});

test('src/core/protocol has no runtime imports (media/ bundles it)', () => {
  const offenders = files('src/core/protocol').flatMap((f) =>
    imports(fs.readFileSync(path.join(root, f), 'utf8')).filter((i) => !i.typeOnly).map((i) => `${f}: ${i.spec}`));
  assert.deepEqual(offenders, []);
});

test('the import scanner finds what it must (it would otherwise pass by finding nothing)', () => {
  const specs = imports(`import * as vscode from 'vscode';\nimport type { A } from './a';\nconst x = require('pg');\nexport { y } from "./y";\nimport './side';`);
  assert.deepEqual(specs, [{ spec: 'vscode', typeOnly: false }, { spec: './a', typeOnly: true }, { spec: 'pg', typeOnly: false }, { spec: './y', typeOnly: false }, { spec: './side', typeOnly: false }]);
});
