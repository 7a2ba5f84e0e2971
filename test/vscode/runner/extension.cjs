// Main of the test-runner extension that test/vscode/harness.mjs writes into the
// --extensions-dir of a test run (never shipped, never in the product .vsix). It is the
// code-server equivalent of @vscode/test-electron's extensionTestsPath: mocha runs INSIDE the
// real extension host, the suites get the real `vscode` module, and the results go to the JSON
// file named by $AI_MEMORY_TEST_RESULT, which the outer script waits for.
//
// The compiled suites are copied into this extension's folder because VS Code resolves
// `require('vscode')` by the extension folder that contains the requiring file (its
// node-module interceptor, src/vs/workbench/api/common/extHostRequireInterceptor.ts);
// a file outside every extension folder only gets a fallback API.
'use strict';

const fs = require('node:fs');
const path = require('node:path');
const vscode = require('vscode');

/** @type {{ mochaPath: string, suitesDir: string, pattern: string, ui: string, timeout: number, grep?: string, waitForTrustMs: number }} */
const config = JSON.parse(fs.readFileSync(path.join(__dirname, 'runner-config.json'), 'utf8'));

function findSuites(dir, pattern) {
  if (!fs.existsSync(dir)) return [];
  const out = [];
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...findSuites(full, pattern));
    else if (pattern.test(entry.name)) out.push(full);
  }
  return out.sort();
}

function writeResult(file, result) {
  const tmp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, JSON.stringify(result, null, 2));
  fs.renameSync(tmp, file);
}

function errorInfo(err) {
  if (!err) return undefined;
  return {
    message: String(err.message ?? err),
    stack: err.stack ? String(err.stack) : undefined,
    actual: err.actual !== undefined ? safeString(err.actual) : undefined,
    expected: err.expected !== undefined ? safeString(err.expected) : undefined,
    code: err.code,
  };
}

function safeString(value) {
  try {
    return typeof value === 'string' ? value : JSON.stringify(value, null, 2);
  } catch {
    return String(value);
  }
}

async function waitForTrust(ms) {
  if (vscode.workspace.isTrusted || ms <= 0) return vscode.workspace.isTrusted;
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      sub.dispose();
      resolve(false);
    }, ms);
    const sub = vscode.workspace.onDidGrantWorkspaceTrust(() => {
      clearTimeout(timer);
      sub.dispose();
      resolve(true);
    });
  });
}

/**
 * Runs the suites with mocha in this extension host and returns a JSON-able result.
 * @param {{ printSpec: boolean }} options printSpec: also print mocha's spec report to stdout
 */
async function runSuites({ printSpec, progressFile }) {
  // One JSON line per test start/end, so a run that hangs still shows where it hung.
  const progress = (event) => {
    if (progressFile) fs.appendFileSync(progressFile, JSON.stringify({ time: new Date().toISOString(), ...event }) + '\n');
  };
  const startedAt = new Date();
  const result = {
    startedAt: startedAt.toISOString(),
    vscodeVersion: vscode.version,
    nodeVersion: process.version,
    extensionHostPid: process.pid,
    workspaceTrusted: undefined,
    files: [],
    tests: [],
    stats: { suites: 0, tests: 0, passes: 0, failures: 0, pending: 0 },
  };
  try {
    progress({ event: 'waiting-for-trust', trusted: vscode.workspace.isTrusted });
    result.workspaceTrusted = await waitForTrust(config.waitForTrustMs);
    progress({ event: 'loading-suites', trusted: result.workspaceTrusted });
    const mochaModule = require(config.mochaPath);
    const Mocha = mochaModule.default ?? mochaModule;
    const suitesRoot = path.join(__dirname, config.suitesDir);
    const tests = result.tests;
    // Records every test (the outer script prints them); optionally prints the spec report too.
    class RecordingReporter extends Mocha.reporters.Base {
      constructor(runner, options) {
        super(runner, options);
        if (printSpec) new Mocha.reporters.Spec(runner, options);
        const record = (test, state, err) =>
          tests.push({
            titlePath: test.titlePath(),
            fullTitle: test.fullTitle(),
            file: test.file ? path.relative(suitesRoot, test.file) : undefined,
            state,
            durationMs: test.duration,
            error: errorInfo(err),
          });
        runner.on('test', (test) => progress({ event: 'start', fullTitle: test.fullTitle() }));
        runner.on('pass', (test) => {
          record(test, 'passed');
          progress({ event: 'passed', fullTitle: test.fullTitle() });
        });
        runner.on('fail', (test, err) => {
          record(test, 'failed', err);
          progress({ event: 'failed', fullTitle: test.fullTitle(), message: String(err?.message ?? err) });
        });
        runner.on('pending', (test) => record(test, 'pending'));
      }
    }
    const mocha = new Mocha({
      ui: config.ui,
      timeout: config.timeout,
      color: false,
      reporter: RecordingReporter,
      ...(config.grep ? { grep: config.grep } : {}),
    });
    result.files = findSuites(suitesRoot, new RegExp(config.pattern)).map((f) => path.relative(suitesRoot, f));
    for (const f of result.files) mocha.addFile(path.join(suitesRoot, f));
    await new Promise((resolve) => {
      const runner = mocha.run(() => resolve());
      runner.on('end', () => {
        const s = runner.stats ?? {};
        result.stats = { suites: s.suites ?? 0, tests: s.tests ?? 0, passes: s.passes ?? 0, failures: s.failures ?? 0, pending: s.pending ?? 0 };
      });
    });
    // Failures recorded by the reporter are the source of truth (stats may miss hook failures).
    result.stats.failures = Math.max(result.stats.failures, tests.filter((t) => t.state === 'failed').length);
  } catch (err) {
    result.error = errorInfo(err);
  }
  result.finishedAt = new Date().toISOString();
  result.durationMs = Date.now() - startedAt.getTime();
  return result;
}

/** code-server harness: started by activation when $AI_MEMORY_TEST_RESULT names a file. */
exports.activate = function activate() {
  const resultFile = process.env.AI_MEMORY_TEST_RESULT;
  if (!resultFile) return;
  // The extension host can restart (e.g. when extensions are enabled after trust is
  // granted); run the suites once per test run.
  try {
    fs.writeFileSync(`${resultFile}.claimed`, String(process.pid), { flag: 'wx' });
  } catch {
    return;
  }
  // Not awaited: activation must not wait for the tests.
  runSuites({ printSpec: false, progressFile: `${resultFile}.progress` })
    .then((result) => writeResult(resultFile, result))
    .catch((err) => writeResult(resultFile, { error: errorInfo(err), tests: [], stats: { failures: 1 } }));
};

exports.deactivate = function deactivate() {};

/** @vscode/test-electron: this file is also the extensionTestsPath (test/vscode/electron.mjs). */
exports.run = async function run() {
  const result = await runSuites({ printSpec: true });
  if (result.error) throw new Error(`Integration suites could not run: ${result.error.stack ?? result.error.message}`);
  if (result.stats.failures > 0) throw new Error(`${result.stats.failures} integration test(s) failed`);
  if (result.stats.tests === 0) throw new Error('No integration tests ran');
};
