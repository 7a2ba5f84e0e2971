#!/usr/bin/env node
// `npm start`: AI Memory Backup live in VS Code (code-server 4.100.3 = VS Code 1.100.3), on a
// demo ai-memory database that a background writer keeps changing.
//
//   1. builds and packages the .vsix (scripts/package.mjs) and compiles the test helpers
//      (tsc -p .: the demo database and the writer come from out/test/support/);
//   2. makes sure code-server is installed (scripts/code-server.mjs; ~1 min the first time);
//   3. a demo folder, .cache/demo/ (kept between runs; --reset starts over):
//        home/       HOME of code-server and the extension host, with the database at
//                    ~/.local/share/ai-memory/memories.db (ai-memory's default place)
//        workspace/  the folder VS Code opens; its .vscode/mcp.json names the database the
//                    way the ai-memory MCP server is configured, so the extension finds it
//        user-data/, extensions/, logs/   the code-server profile with the .vsix installed
//   4. a native writer process (better-sqlite3, like a busy ai-memory server: a few commits
//      a second, WAL checkpoints) so backups happen under a live -wal;
//   5. code-server on 127.0.0.1:8080 (or the next free port), --auth none; prints the URL and
//      runs until Ctrl+C, then stops the writer and code-server by PID.
// It opens no browser: open the printed URL yourself (on a remote machine, forward the port,
// e.g. `ssh -L 8080:127.0.0.1:8080 <host>`).
//
//   node scripts/start.mjs [--port 8080] [--reset] [--no-writer] [--skip-build] [--interval <minutes>]
//     --reset        delete .cache/demo/ first (a fresh database, no snapshots, a fresh profile)
//     --no-writer    no live writer (the database is then not "in use", so Restore asks less)
//     --skip-build   reuse the existing .vsix and out/
//     --interval     aiMemory.backup.intervalMinutes for a NEW profile (default 1; later runs
//                    keep what you set in the Settings)
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, relative } from 'node:path';
import { parseArgs } from 'node:util';
import { DEFAULT_SETTINGS, createSessionDirs, installVsix, repoRoot, startCodeServer } from '../test/vscode/harness.mjs';
import { isAlive, killStragglers, onInterrupt, processesWithMarker, stopAll, track } from '../test/vscode/processes.mjs';
import { ensureCodeServer, isCodeServerInstalled } from './code-server.mjs';
import { defaultVsixPath, packageVsix } from './package.mjs';

const { values: opts } = parseArgs({
  options: {
    port: { type: 'string', default: '8080' },
    reset: { type: 'boolean', default: false },
    'no-writer': { type: 'boolean', default: false },
    'skip-build': { type: 'boolean', default: false },
    interval: { type: 'string', default: '1' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (opts.help) {
  console.log(readFileSync(new URL(import.meta.url), 'utf8').split('\n').filter((l) => l.startsWith('//')).map((l) => l.slice(3)).join('\n'));
  process.exit(0);
}

const color = process.stdout.isTTY ? (code, s) => `\x1b[${code}m${s}\x1b[0m` : (_c, s) => s;
const bold = (s) => color(1, s);
const gray = (s) => color(90, s);
const say = (m) => console.log(m);
const step = (m) => say(gray(`» ${m}`));
const rel = (p) => relative(process.cwd(), p) || '.';

const demoRoot = join(repoRoot, '.cache', 'demo');
const pidFile = join(repoRoot, '.cache', 'demo.pid');

function fail(message) {
  console.error(`\nnpm start: ${message}`);
  process.exit(1);
}

/** One demo at a time: they would share the profile. Leftovers of a killed run are stopped. */
async function claimDemoFolder() {
  const previous = existsSync(pidFile) ? Number(readFileSync(pidFile, 'utf8')) : NaN;
  if (Number.isInteger(previous) && previous !== process.pid && isAlive(previous)) {
    let url = '';
    try {
      url = JSON.parse(readFileSync(join(demoRoot, 'running.json'), 'utf8')).url;
    } catch {
      /* not written yet */
    }
    fail(`the demo is already running (pid ${previous})${url ? ` at ${url}` : ''}. Stop it with Ctrl+C in its terminal (or: kill ${previous}).`);
  }
  // code-server and its children carry the demo folder in their environment (HOME, TMPDIR).
  if (processesWithMarker(demoRoot).length) {
    const killed = await killStragglers(demoRoot);
    say(gray(`  stopped ${killed.length} process(es) left over from an earlier demo run: ${killed.join(', ')}`));
  }
  mkdirSync(join(repoRoot, '.cache'), { recursive: true });
  writeFileSync(pidFile, String(process.pid));
}

function compileHelpers() {
  const tsc = join(repoRoot, 'node_modules', 'typescript', 'bin', 'tsc');
  const res = spawnSync(process.execPath, [tsc, '-p', '.'], { cwd: repoRoot, encoding: 'utf8' });
  const needed = ['aiMemoryDb.js', 'nativeWriter.js', 'nativeWriterProcess.js'].map((f) => join(repoRoot, 'out', 'test', 'support', f));
  if (res.status !== 0) {
    // tsc still writes its output; type errors elsewhere need not stop a demo.
    if (needed.every((f) => existsSync(f))) say(gray(`  tsc reported errors (continuing with what it emitted):\n${(res.stdout + res.stderr).trim().replace(/^/gm, '    ')}`));
    else fail(`tsc -p . failed:\n${res.stdout}${res.stderr}`);
  }
}

/**
 * scripts/demo-writer.mjs, detached (its own process group: a Ctrl+C in the terminal does not
 * kill it mid-transaction; we stop it by PID) and tracked by processes.mjs.
 * @returns {Promise<{ pid: number, writerPid: number }>}
 */
function startDemoWriter(db) {
  return new Promise((resolveStart, reject) => {
    const child = spawn(process.execPath, [join(repoRoot, 'scripts', 'demo-writer.mjs'), db, '3'], {
      cwd: repoRoot,
      detached: true,
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    track(child.pid, 'demo writer', { group: true });
    const timer = setTimeout(() => reject(new Error('the demo writer did not start within 30 s')), 30_000);
    child.once('message', (m) => {
      clearTimeout(timer);
      child.unref();
      child.channel?.unref();
      resolveStart({ pid: child.pid, writerPid: m.writerPid });
    });
    child.once('exit', (code, sig) => {
      clearTimeout(timer);
      reject(new Error(`the demo writer exited (${sig ?? `exit ${code}`}) before it was ready`));
    });
  });
}

async function main() {
  const t0 = Date.now();
  await claimDemoFolder();
  if (opts.reset && existsSync(demoRoot)) {
    step(`--reset: deleting ${rel(demoRoot)}`);
    rmSync(demoRoot, { recursive: true, force: true });
  }

  const vsix = defaultVsixPath();
  if (opts['skip-build']) {
    if (!existsSync(vsix)) fail(`${rel(vsix)} does not exist; run without --skip-build`);
  } else {
    step('build + package the .vsix');
    await packageVsix();
    step('compile the demo helpers (tsc -p .)');
    compileHelpers();
  }
  step(isCodeServerInstalled() ? 'code-server (cached)' : 'install code-server (first run, ~1 min)');
  await ensureCodeServer();

  const require = createRequire(import.meta.url);
  const { createAiMemoryDb } = require('../out/test/support/aiMemoryDb.js');
  const { writeVscodeMcpJson } = await import('../test/vscode/session.config.mjs');

  const fresh = !existsSync(demoRoot);
  const dirs = createSessionDirs(demoRoot);
  const db = join(dirs.home, '.local', 'share', 'ai-memory', 'memories.db');
  const backups = join(dirs.home, '.local', 'share', 'ai-memory', 'backups');
  if (!existsSync(db)) {
    step('create the demo ai-memory database (300 memories)');
    mkdirSync(join(dirs.home, '.local', 'share', 'ai-memory'), { recursive: true });
    createAiMemoryDb(db, { memories: 300 });
  }
  if (!existsSync(join(dirs.workspace, '.vscode', 'mcp.json'))) writeVscodeMcpJson(dirs.workspace);
  const readme = join(dirs.workspace, 'README.md');
  if (!existsSync(readme)) {
    writeFileSync(
      readme,
      `# AI Memory Backup demo\n\nThe AI Memory icon in the activity bar opens the Snapshots view; the status bar shows\nwhen the last backup ran (click it to back up now).\n\nThe database is ${db}\n(named in .vscode/mcp.json), and a demo writer changes it a few times a second, like a\nbusy ai-memory server. Snapshots go to ${backups}.\n`,
    );
  }
  const settingsFile = join(dirs.userDataDir, 'User', 'settings.json');
  if (!existsSync(settingsFile)) {
    mkdirSync(join(dirs.userDataDir, 'User'), { recursive: true });
    const interval = Number(opts.interval);
    if (!Number.isFinite(interval) || interval < 0) fail(`--interval must be a number of minutes ≥ 0, got ${opts.interval}`);
    const settings = {
      ...DEFAULT_SETTINGS,
      // The demo folder lives inside this repository: no "open the parent repository?" prompt.
      'git.openRepositoryInParentFolders': 'never',
      'aiMemory.backup.intervalMinutes': interval,
    };
    writeFileSync(settingsFile, JSON.stringify(settings, null, 2));
  }

  step(`install ${rel(vsix)} into the demo profile`);
  await installVsix({ vsix, dirs, force: true });

  let writer;
  let stopping = false;
  onInterrupt(() => {
    stopping = true;
    say('');
  });
  if (!opts['no-writer']) {
    step('start the demo writer');
    writer = await startDemoWriter(db);
  }

  const port = Number(opts.port);
  if (!Number.isInteger(port) || port <= 0 || port > 65535) fail(`--port must be a port number, got ${opts.port}`);
  step(`start code-server on 127.0.0.1:${port} (or the next free port)`);
  const server = await startCodeServer({ dirs, port, writeSettings: false });
  const url = `${server.url}/?folder=${encodeURI(dirs.workspace)}`;
  writeFileSync(join(demoRoot, 'running.json'), JSON.stringify({ pid: process.pid, codeServerPid: server.pid, writerPid: writer?.pid, url }, null, 2));

  say('');
  say(bold(`AI Memory Backup is running in VS Code ${gray(`(code-server ${server.port === port ? '' : `port ${port} was taken; `}ready in ${((Date.now() - t0) / 1000).toFixed(0)} s${fresh ? ', new demo folder' : ', demo folder reused'})`)}`));
  say('');
  say(`  Open        ${bold(url)}`);
  say(`  Database    ${rel(db)}${writer ? `  (a live writer changes it ~3×/s, pid ${writer.pid})` : ''}`);
  say(`  Backups     ${rel(backups)}/`);
  say(`  Try the CLI node dist/cli.js list --to ${rel(backups)}`);
  say(gray(`  Logs        ${rel(server.logFile)}, ${rel(join(dirs.userDataDir, 'logs'))}/`));
  say(gray(`  Remote machine? Forward the port first: ssh -L ${server.port}:127.0.0.1:${server.port} <host>`));
  if (writer) say(gray('  The writer keeps the database open, so Restore first warns that it is in use (run with --no-writer for a plain restore).'));
  say('');
  say('Ctrl+C stops the writer and code-server.');

  // Runs until Ctrl+C: processes.mjs then stops code-server and the writer by PID (SIGTERM to
  // their process groups, SIGKILL after 5 s) and exits.
  const watch = setInterval(async () => {
    if (stopping) return;
    if (!isAlive(server.pid)) {
      clearInterval(watch);
      stopping = true;
      console.error(`\ncode-server (pid ${server.pid}) exited; see ${rel(server.logFile)}`);
      await stopAll();
      process.exit(1);
    }
    if (writer && !isAlive(writer.pid)) {
      console.error('\nthe demo writer exited; the demo goes on without it');
      writer = undefined;
    }
  }, 2_000);
}

process.on('exit', () => {
  try {
    if (existsSync(pidFile) && Number(readFileSync(pidFile, 'utf8')) === process.pid) rmSync(pidFile);
    rmSync(join(demoRoot, 'running.json'), { force: true });
  } catch {
    /* best effort */
  }
});

main().catch((err) => fail(err.stack ?? err.message));
