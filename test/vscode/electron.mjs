#!/usr/bin/env node
// The same integration suites in desktop VS Code through @vscode/test-electron, for machines
// that can download VS Code (it cannot here: only the npm registry is reachable; use
// test/vscode/run.mjs, which runs them in code-server). Needs a display on Linux
// (e.g. `xvfb-run -a node test/vscode/electron.mjs`).
//
// Same shape as the code-server run: the INSTALLED .vsix in a fresh --extensions-dir, and the
// generated test-runner extension (test/vscode/runner/) as the extensionDevelopmentPath, whose
// extension.js doubles as the extensionTestsPath, so the suites sit inside an extension folder.
//
//   node test/vscode/electron.mjs [--vscode-version 1.100.3] [--skip-package] [--skip-compile] [--grep <re>]
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { downloadAndUnzipVSCode, resolveCliArgsFromVSCodeExecutablePath, runTests } from '@vscode/test-electron';
import { VSCODE_VERSION } from '../../scripts/code-server.mjs';
import { defaultVsixPath, packageVsix } from '../../scripts/package.mjs';
import { createSessionDirs, installTestRunner, repoRoot } from './harness.mjs';

const { values: opts } = parseArgs({
  options: {
    'vscode-version': { type: 'string', default: VSCODE_VERSION },
    'skip-package': { type: 'boolean', default: false },
    'skip-compile': { type: 'boolean', default: false },
    grep: { type: 'string' },
  },
});

async function main() {
  const vsix = defaultVsixPath();
  if (!opts['skip-package']) await packageVsix();
  else if (!existsSync(vsix)) throw new Error(`${vsix} does not exist; run without --skip-package`);
  if (!opts['skip-compile']) {
    const tsc = join(repoRoot, 'node_modules', 'typescript', 'bin', 'tsc');
    const res = spawnSync(process.execPath, [tsc, '-p', '.'], { cwd: repoRoot, stdio: 'inherit' });
    if (res.status !== 0) throw new Error('tsc -p . failed (or pass --skip-compile)');
  }

  // Everything under .cache/ (gitignored): the download, the profile, the extensions dir.
  const cachePath = join(repoRoot, '.cache', 'vscode-test');
  const vscodeExecutablePath = await downloadAndUnzipVSCode({ version: opts['vscode-version'], cachePath });

  rmSync(join(cachePath, 'run'), { recursive: true, force: true });
  const dirs = createSessionDirs(join(cachePath, 'run'));
  const devDir = join(dirs.root, 'dev');
  mkdirSync(devDir, { recursive: true });
  // Desktop VS Code: trust is disabled by runTests (--disable-workspace-trust), so no wait.
  const runnerFolder = installTestRunner({ dirs: { extensionsDir: devDir }, waitForTrustMs: 0, ...(opts.grep ? { grep: opts.grep } : {}) });
  const profileArgs = [`--extensions-dir=${dirs.extensionsDir}`, `--user-data-dir=${dirs.userDataDir}`];

  const [cli, ...cliArgs] = resolveCliArgsFromVSCodeExecutablePath(vscodeExecutablePath, { reuseMachineInstall: true });
  const install = spawnSync(cli, [...cliArgs, ...profileArgs, '--install-extension', vsix, '--force'], { stdio: 'inherit', shell: process.platform === 'win32' });
  if (install.status !== 0) throw new Error(`installing ${vsix} failed`);

  await runTests({
    vscodeExecutablePath,
    extensionDevelopmentPath: runnerFolder,
    extensionTestsPath: join(runnerFolder, 'extension.js'),
    launchArgs: [dirs.workspace, ...profileArgs],
  });
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(`test:electron failed: ${err.message}`);
    process.exit(1);
  },
);
