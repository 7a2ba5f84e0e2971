#!/usr/bin/env node
// `npm run screenshots`: refreshes the README's pictures. Runs the real-VS-Code UI tests of
// the `main` session (they write every screenshot into test-results/vscode/screenshots/ —
// a test run never touches tracked files) and copies the ones the README shows into
// docs/screenshots/. Extra arguments go to test/vscode/run.mjs (e.g. --skip-package).
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot, screenshotsDir } from '../test/vscode/harness.mjs';

const docs = join(repoRoot, 'docs', 'screenshots');
const wanted = readdirSync(docs).filter((n) => n.endsWith('.png'));
const run = spawnSync(process.execPath, [join(repoRoot, 'test', 'vscode', 'run.mjs'), '--session', 'main', '--ui-only', ...process.argv.slice(2)], { stdio: 'inherit' });
if (run.status !== 0) {
  console.error('screenshots: the UI tests failed; docs/screenshots/ left as it was');
  process.exit(run.status ?? 1);
}
const missing = wanted.filter((n) => !existsSync(join(screenshotsDir, n)));
if (missing.length) {
  console.error(`screenshots: the UI tests did not write ${missing.join(', ')}; docs/screenshots/ left as it was`);
  process.exit(1);
}
for (const n of wanted) copyFileSync(join(screenshotsDir, n), join(docs, n));
console.log(`screenshots: updated ${wanted.map((n) => `docs/screenshots/${n}`).join(', ')}`);
