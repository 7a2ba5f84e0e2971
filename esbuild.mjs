// Bundles the extension and the CLI into dist/ and copies sql.js's wasm beside them.
// Type-checking is separate (`npm run compile`, tsc): esbuild only strips types.
import * as esbuild from 'esbuild';
import { chmodSync, copyFileSync, mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

const require = createRequire(import.meta.url);
const production = process.argv.includes('--production');
const watch = process.argv.includes('--watch');

/** @type {import('esbuild').BuildOptions} */
const common = {
  bundle: true,
  format: 'cjs',
  platform: 'node',
  target: 'node20',
  minify: production,
  sourcemap: !production,
  sourcesContent: false,
  // `vscode` is provided by the extension host; everything else is bundled so the
  // .vsix carries no node_modules and no native code.
  external: ['vscode'],
  // Prefer packages' ES module builds: jsonc-parser's UMD "main" requires its files at run
  // time ('./impl/format'), which a bundle cannot resolve; its "module" build bundles cleanly.
  mainFields: ['module', 'main'],
  logLevel: 'warning',
};

const entries = [
  { entryPoints: ['src/extension.ts'], outfile: 'dist/extension.js' },
  { entryPoints: ['src/cli.ts'], outfile: 'dist/cli.js', banner: { js: '#!/usr/bin/env node' } },
];

mkdirSync('dist', { recursive: true });
// The wasm is loaded from disk beside the bundle and passed as `wasmBinary`, so the
// loader never tries to fetch() a path (raycast/extensions#2483).
copyFileSync(join(dirname(require.resolve('sql.js/dist/sql-wasm.js')), 'sql-wasm.wasm'), 'dist/sql-wasm.wasm');

if (watch) {
  const contexts = await Promise.all(entries.map((e) => esbuild.context({ ...common, ...e })));
  await Promise.all(contexts.map((c) => c.watch()));
} else {
  await Promise.all(entries.map((e) => esbuild.build({ ...common, ...e })));
  chmodSync('dist/cli.js', 0o755);
}
