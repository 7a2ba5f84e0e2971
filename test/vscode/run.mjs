#!/usr/bin/env node
// One command for the real-VS-Code tests:
//   packages the .vsix, compiles the suites, makes sure code-server is installed, starts
//   code-server with the INSTALLED .vsix + the in-host mocha runner, opens the workbench in
//   chromium, waits for the integration results, then runs the Playwright UI tests
//   (test/vscode/ui/**/*.ui.mjs) against the same workbench. Exits 0 only if all passed.
//
//   node test/vscode/run.mjs [options] [-- extra code-server args]
//     --integration-only | --ui-only
//     --grep <regexp>          only tests whose full title matches (both kinds)
//     --skip-package           reuse the existing .vsix
//     --skip-compile           reuse the existing out/ (tsc errors otherwise stop the run)
//     --timeout <seconds>      wait this long for the integration results (default 180)
//     --keep                   keep the session's temp folder
//     --headed                 show the browser (needs a display)
//   e.g. node test/vscode/run.mjs -- --disable-workspace-trust
//
// Artifacts (logs, results, failure screenshots): test-results/vscode/.
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { ensureCodeServer, isCodeServerInstalled, requireChromium, withDirLock } from '../../scripts/code-server.mjs';
import { defaultVsixPath, packageVsix } from '../../scripts/package.mjs';
import { extensionHostLogs, repoRoot, screenshot, startSession, waitForResultFile } from './harness.mjs';
import { stopAll } from './processes.mjs';

const { values: opts, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    'integration-only': { type: 'boolean', default: false },
    'ui-only': { type: 'boolean', default: false },
    grep: { type: 'string' },
    'skip-package': { type: 'boolean', default: false },
    'skip-compile': { type: 'boolean', default: false },
    timeout: { type: 'string', default: '180' },
    keep: { type: 'boolean', default: false },
    headed: { type: 'boolean', default: false },
  },
});
const runIntegration = !opts['ui-only'];
const runUi = !opts['integration-only'];
const codeServerArgs = positionals;
const artifactsDir = join(repoRoot, 'test-results', 'vscode');
const RUN_TIMEOUT_MS = 10 * 60_000;

const color = process.stdout.isTTY ? (code, s) => `\x1b[${code}m${s}\x1b[0m` : (_c, s) => s;
const green = (s) => color(32, s);
const red = (s) => color(31, s);
const gray = (s) => color(90, s);
const seconds = (ms) => `${(ms / 1000).toFixed(1)} s`;
const say = (m) => console.log(m);

const timings = {};
async function step(name, fn) {
  const t = Date.now();
  say(gray(`» ${name}`));
  try {
    return await fn();
  } finally {
    timings[name] = Date.now() - t;
  }
}

function compile() {
  const tsc = join(repoRoot, 'node_modules', 'typescript', 'bin', 'tsc');
  const res = spawnSync(process.execPath, [tsc, '-p', '.'], { cwd: repoRoot, encoding: 'utf8' });
  if (res.status !== 0) {
    throw new Error(`tsc -p . failed:\n${res.stdout}${res.stderr}\nFix the type errors, or pass --skip-compile to run with the existing out/.`);
  }
}

/** Prints the in-host mocha results like mocha's spec reporter; returns the failure count. */
function printIntegrationResult(result) {
  say('');
  say(`  Integration suites in the extension host (VS Code ${result.vscodeVersion ?? '?'}, Node ${result.nodeVersion ?? '?'}, workspace trusted: ${result.workspaceTrusted})`);
  if (result.error) {
    say(red(`  The runner failed before/while running the suites:\n    ${(result.error.stack ?? result.error.message).replace(/\n/g, '\n    ')}`));
  }
  let previous = [];
  const failures = [];
  for (const t of result.tests ?? []) {
    const suites = t.titlePath.slice(0, -1);
    suites.forEach((s, i) => {
      if (previous[i] !== s) {
        say(`${'  '.repeat(i + 2)}${s}`);
        previous = suites.slice(0, i + 1);
      }
    });
    const indent = '  '.repeat(suites.length + 2);
    const duration = t.durationMs > 75 ? gray(` (${t.durationMs}ms)`) : '';
    if (t.state === 'passed') say(`${indent}${green('✔')} ${t.titlePath.at(-1)}${duration}`);
    else if (t.state === 'pending') say(`${indent}${color(36, `- ${t.titlePath.at(-1)}`)}`);
    else {
      failures.push(t);
      say(`${indent}${red(`${failures.length}) ${t.titlePath.at(-1)}`)}`);
    }
    previous = suites;
  }
  const s = result.stats ?? {};
  say('');
  say(`  ${green(`${s.passes ?? 0} passing`)}${gray(` (${result.durationMs ?? '?'}ms)`)}`);
  if (s.pending) say(color(36, `  ${s.pending} pending`));
  if (failures.length) say(red(`  ${failures.length} failing`));
  failures.forEach((t, i) => {
    say('');
    say(`  ${i + 1}) ${t.fullTitle}:`);
    say(red(`     ${(t.error?.stack ?? t.error?.message ?? '').replace(/\n/g, '\n     ')}`));
    if (t.error?.expected !== undefined || t.error?.actual !== undefined) {
      say(`     expected: ${t.error.expected}\n     actual:   ${t.error.actual}`);
    }
  });
  let failed = failures.length + (result.error ? 1 : 0);
  if (!result.error && (s.tests ?? 0) === 0) {
    say(red(`  No integration tests ran (files: ${JSON.stringify(result.files ?? [])}).`));
    failed++;
  }
  return failed;
}

/** What the in-host runner reported before it went silent (result.json.progress). */
function describeProgress(resultFile) {
  const file = `${resultFile}.progress`;
  if (!existsSync(`${resultFile}.claimed`)) {
    return '  The test-runner extension never activated (is the extension host running? did the workbench open?).';
  }
  if (!existsSync(file)) return '  The test-runner extension activated but reported no progress.';
  const events = readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  const done = new Set(events.filter((e) => e.event === 'passed' || e.event === 'failed').map((e) => e.fullTitle));
  const lines = events.filter((e) => e.event === 'passed' || e.event === 'failed').map((e) => `    ${e.event === 'passed' ? '✔' : '✖'} ${e.fullTitle}${e.message ? `: ${e.message}` : ''}`);
  const running = events.filter((e) => e.event === 'start' && !done.has(e.fullTitle)).map((e) => `    … still running: ${e.fullTitle} (since ${e.time})`);
  const last = events.at(-1);
  return [`  Runner progress (last event: ${last?.event} at ${last?.time}):`, ...lines, ...running].join('\n');
}

/** Mocha in this process over test/vscode/ui/**\/*.ui.mjs, against the running session. */
async function runUiTests(session) {
  const { default: Mocha } = await import('mocha');
  const uiDir = join(repoRoot, 'test', 'vscode', 'ui');
  const files = [];
  const walk = (d) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory()) walk(join(d, e.name));
      else if (e.name.endsWith('.ui.mjs')) files.push(join(d, e.name));
    }
  };
  if (existsSync(uiDir)) walk(uiDir);
  if (!files.length) throw new Error(`No UI tests (*.ui.mjs) under ${uiDir}`);
  const mocha = new Mocha({ ui: 'bdd', timeout: 60_000, reporter: 'spec', color: Boolean(process.stdout.isTTY), ...(opts.grep ? { grep: opts.grep } : {}) });
  mocha.rootHooks({
    async afterEach() {
      if (this.currentTest?.state !== 'failed') return;
      const name = this.currentTest.fullTitle().replace(/[^\w.-]+/g, '_').slice(0, 120);
      const file = await screenshot(session.page, join(artifactsDir, 'screenshots', `${name}.png`)).catch(() => undefined);
      if (file) console.log(gray(`      screenshot: ${relative(repoRoot, file)}`));
    },
  });
  for (const f of files.sort()) mocha.addFile(f);
  await mocha.loadFilesAsync();
  const failures = await new Promise((resolve) => mocha.run(resolve));
  mocha.dispose();
  return failures;
}

/** Copies the session's logs into test-results/vscode/ and warns about known bad signs. */
function collectArtifacts(session) {
  if (!session?.dirs) return;
  const { dirs } = session;
  for (const f of ['code-server.log', 'install-extension.log']) {
    const src = join(dirs.logsDir, f);
    if (existsSync(src)) cpSync(src, join(artifactsDir, f));
  }
  const logsRoot = join(dirs.userDataDir, 'logs');
  if (existsSync(logsRoot)) cpSync(logsRoot, join(artifactsDir, 'vscode-logs'), { recursive: true });
  if (session.resultFile && existsSync(session.resultFile)) cpSync(session.resultFile, join(artifactsDir, 'integration-result.json'));
  // Proof that the suites got the real per-extension `vscode` API, not the fallback.
  for (const log of extensionHostLogs(dirs)) {
    const text = readFileSync(log, 'utf8');
    if (/Could not identify extension for 'vscode' require call/.test(text)) {
      say(red(`  warning: a suite got the fallback 'vscode' API (see ${relative(repoRoot, log)})`));
    }
  }
}

async function main() {
  const t0 = Date.now();
  rmSync(artifactsDir, { recursive: true, force: true });
  mkdirSync(artifactsDir, { recursive: true });

  const vsix = defaultVsixPath();
  if (opts['skip-package']) {
    if (!existsSync(vsix)) throw new Error(`${vsix} does not exist; run without --skip-package`);
  } else {
    await step('package .vsix', () => packageVsix());
  }
  if (runIntegration && !opts['skip-compile']) await step('compile (tsc -p .)', compile);
  const wasInstalled = isCodeServerInstalled();
  await step(wasInstalled ? 'code-server (cached)' : 'install code-server (first run, ~1 min)', () => ensureCodeServer());
  requireChromium();

  // Optional per-project session setup (fixtures, env, settings): test/vscode/session.config.mjs
  // exporting `prepare(dirs)`, see harness.mjs startSession().
  const sessionConfigFile = join(repoRoot, 'test', 'vscode', 'session.config.mjs');
  const sessionConfig = existsSync(sessionConfigFile) ? await import(pathToFileURL(sessionConfigFile).href) : {};

  let session;
  let failed = 0;
  try {
    session = await step('start code-server + chromium', () =>
      startSession({
        vsix,
        prepare: sessionConfig.prepare,
        codeServerArgs,
        headless: !opts.headed,
        keepDirs: opts.keep,
        testRunner: runIntegration ? { ...(opts.grep ? { grep: opts.grep } : {}) } : false,
      }),
    );
    say(gray(`  code-server ${session.codeServer.url} (pid ${session.codeServer.pid}), chromium pid ${session.browser.pid}, workbench after ${seconds(session.timings.startToWorkbenchMs)}${session.trustPromptAnswered ? ', trust prompt answered' : ''}`));

    if (runIntegration) {
      const result = await step('integration suites (mocha in the extension host)', () =>
        waitForResultFile(session.resultFile, { timeoutMs: Number(opts.timeout) * 1000 }).catch((err) => {
          throw new Error(`${err.message}\n${describeProgress(session.resultFile)}\n  Extension-host logs: ${relative(repoRoot, artifactsDir)}/vscode-logs/*/exthost*/remoteexthost.log`);
        }),
      );
      failed += printIntegrationResult(result);
    }
    if (runUi) {
      failed += await step('UI tests (Playwright)', () => runUiTests(session));
    }
  } catch (err) {
    failed++;
    say(red(`\nERROR: ${err.message}`));
    session ??= err.session;
    if (session?.page) await screenshot(session.page, join(artifactsDir, 'screenshots', 'error.png')).catch(() => {});
  } finally {
    if (session) {
      await step('stop', () => session.stop()).catch((err) => {
        failed++;
        say(red(`ERROR stopping: ${err.message}`));
      });
      collectArtifacts(session);
      if (opts.keep) say(gray(`  kept ${session.dirs.root}`));
      else session.removeDirs();
    }
  }

  const summary = {
    ...timings,
    startToWorkbenchMs: session?.timings?.startToWorkbenchMs,
    codeServerReadyMs: session?.timings?.codeServerReadyMs,
    installVsixMs: session?.timings?.installVsixMs,
    totalMs: Date.now() - t0,
  };
  writeFileSync(join(artifactsDir, 'timings.json'), JSON.stringify(summary, null, 2));
  say('');
  say(gray(`  timings: ${Object.entries(summary).filter(([, v]) => v !== undefined).map(([k, v]) => `${k.replace(/Ms$/, '')} ${seconds(v)}`).join(', ')}`));
  say(gray(`  artifacts: ${relative(repoRoot, artifactsDir)}/`));
  say(failed ? red(`\n✖ real-VS-Code tests failed (${failed})`) : green('\n✔ real-VS-Code tests passed'));
  return failed ? 1 : 0;
}

const watchdog = setTimeout(async () => {
  say(red(`\nERROR: the run took longer than ${RUN_TIMEOUT_MS / 60_000} min; stopping everything`));
  await stopAll();
  process.exit(1);
}, RUN_TIMEOUT_MS);
watchdog.unref();

// One run at a time per checkout: runs share the .vsix, out/, test-results/vscode/ and
// docs/screenshots/. A second run waits.
const runLock = join(repoRoot, '.cache', 'vscode-test-run.lock');
withDirLock(runLock, main, { timeoutMs: RUN_TIMEOUT_MS, onWait: (pid) => say(gray(`» waiting for the run in progress (pid ${pid}) to finish`)) }).then(
  (code) => process.exit(code),
  async (err) => {
    say(red(`\nERROR: ${err.stack ?? err.message}`));
    await stopAll();
    process.exit(1);
  },
);
