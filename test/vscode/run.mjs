#!/usr/bin/env node
// One command for the real-VS-Code tests:
//   packages the .vsix, compiles the suites, makes sure code-server is installed, starts
//   code-server with the INSTALLED .vsix + the in-host mocha runner, opens the workbench in
//   chromium, waits for the integration results, then runs the Playwright UI tests
//   (test/vscode/ui/**/*.ui.mjs) against the same workbench. Exits 0 only if all passed.
//   test/vscode/session.config.mjs may declare several sessions (fresh profile, HOME and
//   workspace each, e.g. an untrusted workspace); they run one after the other.
//
//   node test/vscode/run.mjs [options] [-- extra code-server args]
//     --integration-only | --ui-only
//     --grep <regexp>          only tests whose full title matches (both kinds); sessions
//                              left without a test are not started
//     --session <names>        only these sessions (comma-separated, e.g. main,untrusted)
//     --skip-package           reuse the existing .vsix
//     --skip-compile           reuse the existing out/ (tsc errors otherwise stop the run)
//     --timeout <seconds>      wait this long for the integration results (default 180)
//     --keep                   keep the sessions' temp folders
//     --no-overlap             start each session only when the previous one is done (by
//                              default the next one starts while the previous one's UI tests run)
//     --headed                 show the browser (needs a display)
//   e.g. node test/vscode/run.mjs -- --disable-workspace-trust
//
// Artifacts (logs, results, failure screenshots): test-results/vscode/ (the main session),
// test-results/vscode/<session>/ (the others).
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { basename, join, relative } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { ensureCodeServer, isCodeServerInstalled, requireChromium, withDirLock } from '../../scripts/code-server.mjs';
import { defaultVsixPath, packageVsix } from '../../scripts/package.mjs';
import { extensionHostLogs, repoRoot, screenshot, startSession, useSession, waitForResultFile } from './harness.mjs';
import { stopAll } from './processes.mjs';

const { values: opts, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    'integration-only': { type: 'boolean', default: false },
    'ui-only': { type: 'boolean', default: false },
    grep: { type: 'string' },
    session: { type: 'string' },
    'skip-package': { type: 'boolean', default: false },
    'skip-compile': { type: 'boolean', default: false },
    timeout: { type: 'string', default: '180' },
    keep: { type: 'boolean', default: false },
    'no-overlap': { type: 'boolean', default: false },
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

/** All UI test files (test/vscode/ui/**\/*.ui.mjs), sorted. */
function uiTestFiles() {
  const uiDir = join(repoRoot, 'test', 'vscode', 'ui');
  const files = [];
  const walk = (d) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory()) walk(join(d, e.name));
      else if (e.name.endsWith('.ui.mjs')) files.push(join(d, e.name));
    }
  };
  if (existsSync(uiDir)) walk(uiDir);
  return files.sort();
}

/**
 * Loads a session's UI test files into a fresh mocha (before the session starts: the files
 * only touch the session inside hooks and tests), so a session whose tests --grep filters
 * out entirely is not started. Returns the mocha and how many tests will run.
 */
async function loadUiTests(files, getSession) {
  const { default: Mocha } = await import('mocha');
  const mocha = new Mocha({ ui: 'bdd', timeout: 60_000, reporter: 'spec', color: Boolean(process.stdout.isTTY), ...(opts.grep ? { grep: opts.grep } : {}) });
  mocha.rootHooks({
    async afterEach() {
      if (this.currentTest?.state !== 'failed') return;
      const session = getSession();
      if (!session?.page) return;
      const name = this.currentTest.fullTitle().replace(/[^\w.-]+/g, '_').slice(0, 120);
      const file = await screenshot(session.page, join(artifactsDir, 'screenshots', `${name}.png`)).catch(() => undefined);
      if (file) console.log(gray(`      screenshot: ${relative(repoRoot, file)}`));
    },
  });
  for (const f of files) mocha.addFile(f);
  await mocha.loadFilesAsync();
  const grep = opts.grep ? new RegExp(opts.grep) : undefined;
  let count = 0;
  const walk = (suite) => {
    for (const t of suite.tests) if (!grep || grep.test(t.fullTitle())) count++;
    suite.suites.forEach(walk);
  };
  walk(mocha.suite);
  return { mocha, count };
}

/** Runs loaded UI tests against the running session; returns the failure count. */
async function runUiTests(mocha) {
  const failures = await new Promise((resolve) => mocha.run(resolve));
  mocha.dispose();
  return failures;
}

/** Which UI test files each session runs: its `ui` list, or (the one without) the rest. */
function assignUiFiles(sessions) {
  const all = uiTestFiles();
  const claimed = new Set();
  const byName = new Map();
  for (const s of sessions) {
    if (!s.ui) continue;
    const mine = all.filter((f) => s.ui.includes(basename(f)) || s.ui.includes(relative(join(repoRoot, 'test', 'vscode', 'ui'), f)));
    const missing = s.ui.filter((u) => !mine.some((f) => f.endsWith(u)));
    if (missing.length) throw new Error(`session "${s.name}" names UI tests that do not exist: ${missing.join(', ')}`);
    mine.forEach((f) => claimed.add(f));
    byName.set(s.name, mine);
  }
  const rest = all.filter((f) => !claimed.has(f));
  const takers = sessions.filter((s) => !s.ui);
  if (takers.length > 1) throw new Error(`only one session may omit \`ui\` (${takers.map((s) => s.name).join(', ')})`);
  if (takers.length) byName.set(takers[0].name, rest);
  else if (rest.length) throw new Error(`UI tests in no session: ${rest.map((f) => basename(f)).join(', ')}`);
  return byName;
}

/** Copies the session's logs into test-results/vscode/ and warns about known bad signs. */
function collectArtifacts(session, outDir = artifactsDir) {
  if (!session?.dirs) return;
  const { dirs } = session;
  mkdirSync(outDir, { recursive: true });
  for (const f of ['code-server.log', 'install-extension.log']) {
    const src = join(dirs.logsDir, f);
    if (existsSync(src)) cpSync(src, join(outDir, f));
  }
  const logsRoot = join(dirs.userDataDir, 'logs');
  if (existsSync(logsRoot)) cpSync(logsRoot, join(outDir, 'vscode-logs'), { recursive: true });
  if (session.resultFile && existsSync(session.resultFile)) cpSync(session.resultFile, join(outDir, 'integration-result.json'));
  // Proof that the suites got the real per-extension `vscode` API, not the fallback.
  for (const log of extensionHostLogs(dirs)) {
    const text = readFileSync(log, 'utf8');
    if (/Could not identify extension for 'vscode' require call/.test(text)) {
      say(red(`  warning: a suite got the fallback 'vscode' API (see ${relative(repoRoot, log)})`));
    }
  }
}

/**
 * The tracked files that differ from HEAD, with a hash of each (undefined outside a git
 * checkout). Compared before and after the run: tests never modify tracked files.
 */
function trackedChanges() {
  const r = spawnSync('git', ['status', '--porcelain=v1', '-z', '--untracked-files=no'], { cwd: repoRoot, encoding: 'utf8' });
  if (r.status !== 0) return undefined;
  const out = {};
  for (const rec of r.stdout.split('\0').filter(Boolean)) {
    const file = rec.slice(3);
    const p = join(repoRoot, file);
    out[file] = existsSync(p) ? createHash('sha256').update(readFileSync(p)).digest('hex') : 'deleted';
  }
  return out;
}

async function main() {
  const t0 = Date.now();
  const trackedBefore = trackedChanges();
  rmSync(artifactsDir, { recursive: true, force: true });
  mkdirSync(artifactsDir, { recursive: true });

  const vsix = defaultVsixPath();
  if (opts['skip-package']) {
    if (!existsSync(vsix)) throw new Error(`${vsix} does not exist; run without --skip-package`);
  } else {
    await step('package .vsix', () => packageVsix());
  }
  // The UI tests and the session fixtures use out/test/support too.
  if (!opts['skip-compile']) await step('compile (tsc -p .)', compile);
  const wasInstalled = isCodeServerInstalled();
  await step(wasInstalled ? 'code-server (cached)' : 'install code-server (first run, ~1 min)', () => ensureCodeServer());
  requireChromium();

  // Per-project session setup (fixtures, env, settings): test/vscode/session.config.mjs
  // exporting `sessions` (or just `prepare(dirs)` for one session), see harness.mjs startSession().
  const sessionConfigFile = join(repoRoot, 'test', 'vscode', 'session.config.mjs');
  const sessionConfig = existsSync(sessionConfigFile) ? await import(pathToFileURL(sessionConfigFile).href) : {};
  const declared = sessionConfig.sessions ?? [{ name: 'main', prepare: sessionConfig.prepare, integration: true }];
  const uiFiles = assignUiFiles(declared);
  const wanted = opts.session ? new Set(opts.session.split(',').map((n) => n.trim())) : undefined;
  if (wanted) {
    const unknown = [...wanted].filter((n) => !declared.some((s) => s.name === n));
    if (unknown.length) throw new Error(`--session: no session named ${unknown.join(', ')} (there are: ${declared.map((s) => s.name).join(', ')})`);
  }

  // What runs where; UI test files are loaded now (per session), so sessions that --grep
  // leaves without a test are not started at all.
  const plan = [];
  for (const def of declared) {
    if (wanted && !wanted.has(def.name)) continue;
    const entry = {
      def,
      withIntegration: runIntegration && Boolean(def.integration),
      label: declared.length > 1 ? `[${def.name}] ` : '',
      outDir: def.name === 'main' || declared.length === 1 ? artifactsDir : join(artifactsDir, def.name),
      ui: undefined,
      session: undefined,
      starting: undefined,
    };
    if (runUi && uiFiles.get(def.name)?.length) {
      entry.ui = await loadUiTests(uiFiles.get(def.name), () => entry.session);
      if (entry.ui.count === 0) {
        entry.ui.mocha.dispose();
        entry.ui = undefined;
      }
    }
    if (entry.withIntegration || entry.ui) plan.push(entry);
  }

  /** Starts a session (in the background when the previous one is still testing). */
  const start = (entry) => {
    const { def } = entry;
    const t = Date.now();
    entry.starting = startSession({
      vsix,
      prepare: def.prepare,
      trust: def.trust ?? 'trust',
      settings: def.settings ?? {},
      env: def.env ?? {},
      codeServerArgs: [...(def.codeServerArgs ?? []), ...codeServerArgs],
      headless: !opts.headed,
      keepDirs: opts.keep,
      makeCurrent: false,
      testRunner: entry.withIntegration ? { ...(opts.grep ? { grep: opts.grep } : {}) } : false,
    }).then(
      (session) => {
        session.name = def.name;
        session.timings.startSessionMs = Date.now() - t;
        entry.session = session;
        return session;
      },
      (err) => {
        entry.session = err.session;
        throw err;
      },
    );
    entry.starting.catch(() => {}); // reported when its turn comes
  };

  let failed = 0;
  const sessionTimings = {};
  for (const [i, entry] of plan.entries()) {
    const { def, label, outDir } = entry;
    const next = plan[i + 1];
    const early = Boolean(entry.starting);
    if (!entry.starting) start(entry);
    say('');
    say(`${label ? `Session ${def.name}` : 'Session'}${def.trust === 'restricted' ? ' (workspace NOT trusted)' : ''}: ${[entry.withIntegration && 'integration suites', entry.ui && `${entry.ui.count} UI test(s)`].filter(Boolean).join(' + ')}`);
    let session;
    try {
      session = await step(`${label}${early ? 'code-server + chromium (started during the previous session)' : 'start code-server + chromium'}`, () => entry.starting);
      useSession(session);
      say(gray(`  code-server ${session.codeServer.url} (pid ${session.codeServer.pid}), chromium pid ${session.browser.pid}, workbench after ${seconds(session.timings.startToWorkbenchMs)}${session.trustPromptAnswered ? `, trust prompt answered (${def.trust ?? 'trust'})` : ''}`));

      if (entry.withIntegration) {
        const result = await step(`${label}integration suites (mocha in the extension host)`, () =>
          waitForResultFile(session.resultFile, { timeoutMs: Number(opts.timeout) * 1000 }).catch((err) => {
            throw new Error(`${err.message}\n${describeProgress(session.resultFile)}\n  Extension-host logs: ${relative(repoRoot, outDir)}/vscode-logs/*/exthost*/remoteexthost.log`);
          }),
        );
        failed += printIntegrationResult(result);
      }
      // The next session starts while our UI tests run (they mostly wait on the workbench).
      if (next && !opts['no-overlap']) start(next);
      if (entry.ui) {
        const { mocha } = entry.ui;
        entry.ui = undefined;
        failed += await step(`${label}UI tests (Playwright)`, () => runUiTests(mocha));
      }
    } catch (err) {
      failed++;
      say(red(`\nERROR${label ? ` in session ${def.name}` : ''}: ${err.message}`));
      session ??= entry.session ?? err.session;
      if (session?.page) await screenshot(session.page, join(artifactsDir, 'screenshots', `${def.name}-error.png`)).catch(() => {});
    } finally {
      entry.ui?.mocha.dispose();
      if (session) {
        await step(`${label}stop`, () => session.stop()).catch((err) => {
          failed++;
          say(red(`ERROR stopping: ${err.message}`));
        });
        collectArtifacts(session, outDir);
        if (opts.keep) say(gray(`  kept ${session.dirs.root}`));
        else session.removeDirs();
        const t = session.timings;
        sessionTimings[def.name] = { startSessionMs: t.startSessionMs, startToWorkbenchMs: t.startToWorkbenchMs, codeServerReadyMs: t.codeServerReadyMs, installVsixMs: t.installVsixMs };
      }
    }
  }
  if (plan.length === 0) {
    failed++;
    say(red(`\nNo session had anything to run${opts.grep ? ` (--grep ${opts.grep})` : ''}.`));
  }

  const summary = {
    ...timings,
    startToWorkbenchMs: sessionTimings.main?.startToWorkbenchMs,
    totalMs: Date.now() - t0,
  };
  writeFileSync(join(artifactsDir, 'timings.json'), JSON.stringify({ ...summary, sessions: sessionTimings }, null, 2));
  const trackedAfter = trackedChanges();
  if (trackedBefore && trackedAfter) {
    const changed = [...new Set([...Object.keys(trackedBefore), ...Object.keys(trackedAfter)])].filter((f) => trackedBefore[f] !== trackedAfter[f]);
    if (changed.length) {
      failed++;
      say(red(`\nERROR: tracked files changed during the run (tests must not modify the clone; screenshots go to test-results/): ${changed.join(', ')}`));
    }
  }
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

// One run at a time per checkout: runs share the .vsix, out/ and test-results/vscode/.
// A second run waits.
const runLock = join(repoRoot, '.cache', 'vscode-test-run.lock');
withDirLock(runLock, main, { timeoutMs: RUN_TIMEOUT_MS, onWait: (pid) => say(gray(`» waiting for the run in progress (pid ${pid}) to finish`)) }).then(
  (code) => process.exit(code),
  async (err) => {
    say(red(`\nERROR: ${err.stack ?? err.message}`));
    await stopAll();
    process.exit(1);
  },
);
