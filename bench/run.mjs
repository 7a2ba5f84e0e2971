#!/usr/bin/env node
// Benchmark: our backup and restore side by side with the disk's floor (cp + sync +
// sha256sum) and ai-memory's own method (native sqlite3 VACUUM INTO + sync + sha256sum,
// PRAGMA quick_check), on ai-memory-shaped databases with a live WAL. Whole processes,
// alternating A B C … A B C … so that machine drift lands on every command alike.
//
//   npm run bench                    full run: 5 MB, 50 MB, 500 MB (+ extras) → bench/results.md
//   npm run bench -- --quick         5 MB and 50 MB, fewer rounds → bench/results-quick.md
//   node bench/run.mjs --help        all options
//   npm run bench -- --archive [--size "50 MB"] [--hours 48] …
//                                    the page-dedup archive instead (bench/archive.mjs → bench/results-archive.md)
//
// See bench/README.md for what each column means.
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync, copyFileSync } from 'node:fs';
import { statfs } from 'node:fs/promises';
import { cpus, loadavg, totalmem, release } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { measureActivation } from './lib/activation.mjs';
import { measureCatalog, measureProcessStart, measureSqlJsInit } from './lib/extras.mjs';
import { measureRemotePush, remoteSection } from './lib/remote.mjs';
import { SIZES, checkFixture, ensureFixture, fixtureKey } from './lib/fixtures.mjs';
import { measureMemoryViews } from './lib/memory.mjs';
import { GNU_TIME, canDropCaches, quietLog, quietOptions, run, settle, timed } from './lib/proc.mjs';
import { fmt, max, mb, mbFromKiB, median, millis, min, secs, sum, table } from './lib/stats.mjs';
import { onInterrupt } from '../test/vscode/processes.mjs';

if (process.argv.includes('--archive')) {
  // The archive benchmark has its own options and report (bench/archive.mjs reads process.argv).
  process.argv = process.argv.filter((a) => a !== '--archive');
  await import('./archive.mjs');
  process.exit(0);
}

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const benchDir = join(repoRoot, 'bench');

const { values: opts } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    sizes: { type: 'string' },
    rounds: { type: 'string' },
    'rounds-large': { type: 'string' },
    'rounds-huge': { type: 'string' },
    warm: { type: 'boolean', default: false },
    'no-build': { type: 'boolean', default: false },
    'no-activation': { type: 'boolean', default: false },
    'no-extras': { type: 'boolean', default: false },
    'no-remote': { type: 'boolean', default: false },
    'remote-only': { type: 'boolean', default: false },
    'memory-only': { type: 'boolean', default: false },
    'activation-sessions': { type: 'string' },
    out: { type: 'string' },
    'cache-dir': { type: 'string' },
    'keep-work': { type: 'boolean', default: false },
    'no-memory': { type: 'boolean', default: false },
    'quiet-threshold': { type: 'string' },
    'max-wait': { type: 'string' },
    baseline: { type: 'string' },
    cli: { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});

if (opts.help) {
  process.stdout.write(`Usage: node bench/run.mjs [options]   (npm run bench -- [options])

  --quick                  5 MB and 50 MB only, fewer rounds, 2 activation sessions (≈ 3 min)
  --sizes 5,50,500,1.9     which database sizes (labels: 5, 50, 500 MB; 1.9 GB); 1.9 GB is skipped,
                           saying so, where the disk has no room for it
  --rounds N               rounds for sizes below 500 MB (default 7, quick 5)
  --rounds-large N         rounds for 500 MB (default 5)
  --rounds-huge N          rounds for 1.9 GB (default 2)
  --warm                   don't drop the page cache before each command; read the inputs once instead
  --no-build               use the existing out/ and dist/ (default: tsc -p . && node esbuild.mjs)
  --no-activation          skip the VS Code activation measurement
  --no-extras              skip activation, catalog, sql.js init and process start
  --no-remote              skip the off-machine copy (push of 500 MB to a loopback S3 server)
  --remote-only            only the off-machine copy (→ bench/results-remote.md)
  --no-memory              skip inspect / diff of the largest size (next to native sqlite3)
  --memory-only            only inspect / diff, of the largest of --sizes (default 500 MB) (→ bench/results-memory.md)
  --activation-sessions N  VS Code sessions for the activation time (default 5, quick 2)
  --out FILE               results file (default bench/results.md, quick: bench/results-quick.md)
  --cache-dir DIR          fixtures and work files (default bench/.cache)
  --keep-work              keep the work folder (snapshots, copies) for inspection
  --quiet-threshold F      before each command wait until the CPUs are at most this busy (default 0.25)
  --max-wait S             … but at most S seconds (default 20; 0 = never wait)
  --baseline DIR           also time another build of ours (DIR/dist/cli.js, DIR/out/…) in the same
                           rounds: before/after figures for an engine change
  --cli FILE               time this CLI bundle instead of dist/cli.js (the bench's own smoke test
                           passes the one the tests build)
`);
  process.exit(0);
}

const quick = opts.quick;
const cacheDir = resolve(opts['cache-dir'] ?? join(benchDir, '.cache'));
const workDir = join(cacheDir, `work-${process.pid}`);
const outFile = resolve(opts.out ?? join(benchDir, quick ? 'results-quick.md' : 'results.md'));
const sizeLabels = (opts.sizes ?? (quick ? '5,50' : '5,50,500,1.9')).split(',').map((s) => s.trim());
const sizes = sizeLabels.map((l) => {
  const s = SIZES.find((x) => x.label === `${l} MB` || x.label === `${l} GB`);
  if (!s) throw new Error(`unknown size ${l}; known: ${SIZES.map((x) => x.label).join(', ')}`);
  return s;
});
const roundsSmall = Number(opts.rounds ?? (quick ? 5 : 7));
const roundsLarge = Number(opts['rounds-large'] ?? (quick ? 3 : 5));
const roundsHuge = Number(opts['rounds-huge'] ?? 2);
/** The baseline build's checker held the whole image in memory and refused files above this. */
const BASELINE_MAX_CHECKABLE = 1536 * 1024 * 1024;
const activationSessions = Number(opts['activation-sessions'] ?? (quick ? 2 : 5));
if (opts['quiet-threshold'] !== undefined) quietOptions.threshold = Number(opts['quiet-threshold']);
if (opts['max-wait'] !== undefined) quietOptions.maxWaitMs = Number(opts['max-wait']) * 1000;

const started = Date.now();
const log = (m) => process.stderr.write(`[bench ${((Date.now() - started) / 1000).toFixed(0).padStart(4)} s] ${m}\n`);
const node = process.execPath;
const cli = opts.cli ? resolve(opts.cli) : join(repoRoot, 'dist', 'cli.js');
const baselineDir = opts.baseline ? resolve(opts.baseline) : undefined;

function cleanup() {
  if (!opts['keep-work']) rmSync(workDir, { recursive: true, force: true });
}
onInterrupt(async () => cleanup());

// ---------------------------------------------------------------------------------------
// Preconditions and machine facts

function tool(cmd, args = ['--version']) {
  try {
    return run(cmd, args).trim().split('\n')[0];
  } catch {
    return undefined;
  }
}

function machine() {
  const cpu = readFileSync('/proc/cpuinfo', 'utf8');
  const model = /model name\s*:\s*(.*)/.exec(cpu)?.[1]?.trim() ?? cpus()[0]?.model ?? '?';
  const mhz = /cpu MHz\s*:\s*([\d.]+)/.exec(cpu)?.[1];
  const fs = (() => {
    try {
      return run('df', ['--output=fstype,source', cacheDir]).trim().split('\n').at(-1).trim().replace(/\s+/g, ' ');
    } catch {
      return '?';
    }
  })();
  return {
    cores: cpus().length,
    model,
    mhz,
    ramGB: totalmem() / 2 ** 30,
    kernel: release(),
    node: process.version,
    sqlite3: tool('sqlite3', ['--version'])?.split(' ')[0],
    coreutils: tool('sha256sum')?.replace(/^sha256sum \(GNU coreutils\) /, ''),
    fs,
  };
}

function requireTools() {
  for (const [cmd, args] of [[GNU_TIME, ['--version']], ['sqlite3', ['--version']], ['sha256sum', ['--version']], ['cp', ['--version']], ['sync', ['--version']]]) {
    if (!tool(cmd, args)) throw new Error(`${cmd} is required${cmd === GNU_TIME ? ' (apt-get install -y time)' : ''}`);
  }
}

function build() {
  log('building: tsc -p . && node esbuild.mjs');
  try {
    run(node, [join(repoRoot, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', '.'], { cwd: repoRoot });
  } catch (e) {
    // tsc still emits; type errors elsewhere in the tree (work in progress) do not stop a bench.
    log(`tsc reported type errors (continuing with what it emitted):\n${e.message.split('\n').slice(1, 6).join('\n')}`);
  }
  run(node, ['esbuild.mjs'], { cwd: repoRoot });
}

// ---------------------------------------------------------------------------------------
// One size: the commands, alternated round by round

const STEP = {
  cp: (files, dir) => ['cp', ...files, `${dir}/`],
  sync: (files) => ['sync', ...files],
  sha: (files) => ['sha256sum', ...files],
};

/**
 * The measured commands. Each is one or more processes run back to back; its time is the
 * sum of their wall times and its peak RSS the largest of theirs.
 */
function commandsFor(fx, snap, template) {
  return [
    {
      id: 'ours.off',
      label: 'ours: `backup --verify off`',
      prepare: (d) => ({ to: join(d, 'snapshots') }),
      steps: (c) => [[node, cli, 'backup', '--db', fx.db, '--to', c.to, '--verify', 'off', '--keep', '0', '--json']],
      check: (c, r) => expectJson(r[0], 'created'),
      inputs: [fx.db, fx.wal],
    },
    {
      id: 'floor.backup',
      label: 'floor: `cp` db+wal, `sync` them, `sha256sum` them',
      prepare: (d) => ({ dir: d, files: [join(d, 'ai-memory.db'), join(d, 'ai-memory.db-wal')] }),
      steps: (c) => [STEP.cp([fx.db, fx.wal], c.dir), STEP.sync(c.files), STEP.sha(c.files)],
      stepNames: ['cp', 'sync', 'sha256sum'],
      inputs: [fx.db, fx.wal],
    },
    {
      id: 'native.backup',
      label: 'native: `sqlite3 VACUUM INTO`, `sync`, `sha256sum`, `PRAGMA quick_check`',
      prepare: (d) => ({ v: join(d, 'vacuum.db') }),
      steps: (c) => [
        ['sqlite3', '-cmd', '.dbconfig no_ckpt_on_close on', fx.db, `VACUUM INTO '${c.v}'`],
        STEP.sync([c.v]),
        STEP.sha([c.v]),
        ['sqlite3', '-readonly', c.v, 'PRAGMA quick_check'],
      ],
      stepNames: ['VACUUM INTO', 'sync', 'sha256sum', 'quick_check'],
      check: (c, r) => {
        if (r[3].stdout.trim() !== 'ok') throw new Error(`native quick_check: ${r[3].stdout}`);
      },
      after: async () => {
        // sqlite3 opened the fixture read-write (3.40.1's VACUUM INTO fails on generated
        // columns with -readonly) without checkpointing on close: it leaves a -shm only.
        rmSync(`${fx.db}-shm`, { force: true });
        await checkFixture(fx);
      },
      inputs: [fx.db, fx.wal],
    },
    {
      id: 'ours.quick',
      label: 'ours: `backup --verify quick`',
      prepare: (d) => ({ to: join(d, 'snapshots') }),
      steps: (c) => [[node, cli, 'backup', '--db', fx.db, '--to', c.to, '--verify', 'quick', '--keep', '0', '--json']],
      check: (c, r) => expectJson(r[0], 'created'),
      inputs: [fx.db, fx.wal],
    },
    {
      id: 'ours.full',
      label: 'ours: `backup --verify full`',
      prepare: (d) => ({ to: join(d, 'snapshots') }),
      steps: (c) => [[node, cli, 'backup', '--db', fx.db, '--to', c.to, '--verify', 'full', '--keep', '0', '--json']],
      check: (c, r) => expectJson(r[0], 'created'),
      inputs: [fx.db, fx.wal],
    },
    {
      id: 'ours.verify',
      label: 'ours: `verify` of the snapshot',
      prepare: () => ({}),
      steps: () => [[node, cli, 'verify', '--from', snap, '--json']],
      check: (c, r) => expectJson(r[0], 'ok'),
      inputs: [snap],
    },
    {
      id: 'ours.restore',
      label: 'ours: `restore` (verify + swap)',
      prepare: (d) => {
        const db = join(d, 'ai-memory.db');
        copyFileSync(template, db);
        return { db };
      },
      steps: (c) => [[node, cli, 'restore', '--db', c.db, '--from', snap, '--json']],
      check: (c, r) => expectJson(r[0], 'restored'),
      inputs: [snap],
    },
    {
      id: 'ours.inspect',
      label: 'ours: `inspect --from <snapshot> --limit 100` (overview from the manifest\'s facts, first page)',
      prepare: () => ({}),
      steps: () => [[node, cli, 'inspect', '--from', snap, '--json', '--limit', '100']],
      check: (c, r) => void expectJson(r[0], 'ok'),
      inputs: [snap],
    },
    {
      id: 'ours.diff',
      label: 'ours: `diff --from <snapshot> --db F` (every memory of the snapshot against the live database, main + WAL)',
      prepare: () => ({}),
      steps: () => [[node, cli, 'diff', '--from', snap, '--db', fx.db, '--json']],
      check: (c, r) => {
        const o = expectJson(r[0], 'ok');
        // The snapshot is of this very fixture: nothing added, removed or edited.
        if (o.added.length || o.removed.length || o.edited.length) throw new Error(`diff of a snapshot against its own source found changes: ${r[0].stdout.slice(0, 300)}`);
      },
      inputs: [snap, fx.db, fx.wal],
    },
    {
      id: 'floor.restore',
      label: 'floor: `sha256sum` snapshot, `cp` it, `sync`',
      prepare: (d) => ({ db: join(d, 'ai-memory.db') }),
      steps: (c) => [STEP.sha([snap]), ['cp', snap, c.db], STEP.sync([c.db])],
      stepNames: ['sha256sum', 'cp', 'sync'],
      inputs: [snap],
    },
    {
      id: 'native.qc',
      label: 'native: `PRAGMA quick_check` of the snapshot',
      prepare: () => ({}),
      steps: () => [['sqlite3', '-readonly', snap, 'PRAGMA quick_check']],
      check: (c, r) => {
        if (r[0].stdout.trim() !== 'ok') throw new Error(`native quick_check: ${r[0].stdout}`);
      },
      inputs: [snap],
    },
    {
      id: 'native.ic',
      label: 'native: `PRAGMA integrity_check` of the snapshot',
      prepare: () => ({}),
      steps: () => [['sqlite3', '-readonly', snap, 'PRAGMA integrity_check']],
      check: (c, r) => {
        if (r[0].stdout.trim() !== 'ok') throw new Error(`native integrity_check: ${r[0].stdout}`);
      },
      inputs: [snap],
    },
    ...baselineCommands(fx, snap, template),
  ];
}

/** With --baseline: our three commands again, from the other build, in the same rounds. */
function baselineCommands(fx, snap, template) {
  if (!baselineDir) return [];
  const bcli = join(baselineDir, 'dist', 'cli.js');
  // Above its limit the baseline copies without checking (backup) and refuses (restore, verify: TOO_LARGE).
  const tooLarge = fx.meta?.main && snapBytesOf(snap) > BASELINE_MAX_CHECKABLE;
  const backupCheck = (c, r) => {
    const o = expectJson(r[0], 'created');
    if (o.integrity !== 'ok') return 'not checked (larger than the 1536 MiB its checker opened)';
  };
  return [
    {
      id: 'base.full',
      label: 'baseline build: `backup --verify full`',
      prepare: (d) => ({ to: join(d, 'snapshots') }),
      steps: (c) => [[node, bcli, 'backup', '--db', fx.db, '--to', c.to, '--verify', 'full', '--keep', '0', '--json']],
      check: backupCheck,
      inputs: [fx.db, fx.wal],
    },
    ...(tooLarge
      ? []
      : [
          {
            id: 'base.verify',
            label: 'baseline build: `verify`',
            prepare: () => ({}),
            steps: () => [[node, bcli, 'verify', '--from', snap, '--json']],
            check: (c, r) => expectJson(r[0], 'ok'),
            inputs: [snap],
          },
        ]),
    {
      id: 'base.off',
      label: 'baseline build: `backup --verify off`',
      prepare: (d) => ({ to: join(d, 'snapshots') }),
      steps: (c) => [[node, bcli, 'backup', '--db', fx.db, '--to', c.to, '--verify', 'off', '--keep', '0', '--json']],
      check: (c, r) => expectJson(r[0], 'created'),
      inputs: [fx.db, fx.wal],
    },
    {
      id: 'base.quick',
      label: 'baseline build: `backup --verify quick`',
      prepare: (d) => ({ to: join(d, 'snapshots') }),
      steps: (c) => [[node, bcli, 'backup', '--db', fx.db, '--to', c.to, '--verify', 'quick', '--keep', '0', '--json']],
      check: backupCheck,
      inputs: [fx.db, fx.wal],
    },
    ...(tooLarge ? [] : [{
      id: 'base.restore',
      label: 'baseline build: `restore`',
      prepare: (d) => {
        const db = join(d, 'ai-memory.db');
        copyFileSync(template, db);
        return { db };
      },
      steps: (c) => [[node, bcli, 'restore', '--db', c.db, '--from', snap, '--json']],
      check: (c, r) => expectJson(r[0], 'restored'),
      inputs: [snap],
    }]),
  ];
}

function snapBytesOf(snap) {
  try {
    return statSync(snap).size;
  } catch {
    return 0;
  }
}

function expectJson(r, status) {
  let o;
  try {
    o = JSON.parse(r.stdout.trim().split('\n').at(-1));
  } catch {
    throw new Error(`no JSON from our CLI: ${r.stdout}${r.stderr}`);
  }
  if (o.status !== status) throw new Error(`expected status ${status}, got ${r.stdout}`);
  return o;
}

function count(db) {
  const [n, touched] = run('sqlite3', ['-readonly', db, 'SELECT count(*), coalesce(sum(access_count), 0) FROM memories']).trim().split('|').map(Number);
  return { n, touched };
}

/** Bytes a size needs on the cache's disk: its fixture (unless cached) and ~3 copies in flight (restore source, a command's output, a restored file). */
function roomNeeded(size) {
  const approx = size.memories * 5600 + 100e6;
  const cached = existsSync(join(cacheDir, 'fixtures', fixtureKey(size), 'meta.json'));
  return { approx, need: (cached ? 0 : approx) + 3 * approx + 1e9 };
}

async function freeBytes(dir) {
  mkdirSync(dir, { recursive: true });
  const st = await statfs(dir);
  return st.bavail * st.bsize;
}

async function benchSize(size, { cold, rounds }) {
  const { need } = roomNeeded(size);
  const free = await freeBytes(cacheDir);
  if (free < need) {
    const skipped = `skipped: the disk of ${cacheDir} has ${(free / 1e9).toFixed(1)} GB free, this size needs about ${(need / 1e9).toFixed(1)} GB (its fixture and copies)`;
    log(`${size.label}: ${skipped}`);
    return { size, skipped };
  }
  const fx = await ensureFixture({ repoRoot, cacheDir, size, log });
  const dir = join(workDir, size.label.replace(/\s/g, ''));
  mkdirSync(dir, { recursive: true });

  // The restore source: a snapshot (with manifest) made by our backup, once.
  const snapDir = join(dir, 'restore-source');
  const made = await timed([node, cli, 'backup', '--db', fx.db, '--to', snapDir, '--verify', 'quick', '--keep', '0', '--json']);
  if (made.code !== 0) throw new Error(`could not make the restore source: ${made.stderr}`);
  const snap = expectJson(made, 'created').snapshot;
  const snapPath = join(snapDir, snap);
  const snapshotBytes = statSync(snapPath).size;
  // The database a restore replaces: a small ai-memory-shaped one (keeping it is a hard link,
  // whatever its size). It must have a memories table: restore refuses to put an ai-memory
  // snapshot over another program's database (NOT_AI_MEMORY).
  const template = join(dir, 'replaced.db');
  run('sqlite3', [template, "CREATE TABLE memories(id TEXT PRIMARY KEY, tier TEXT, namespace TEXT, title TEXT, content TEXT); INSERT INTO memories VALUES ('m1', 'long', 'bench', 'one', 'the memory replaced');"]);

  const commands = commandsFor(fx, snapPath, template);
  const results = Object.fromEntries(commands.map((c) => [c.id, []]));
  log(`${size.label}: main ${mb(fx.meta.main.bytes).toFixed(1)} MB + WAL ${mb(fx.meta.wal.bytes).toFixed(1)} MB, ${rounds} rounds × ${commands.length} commands (${cold ? 'cold cache' : 'warm cache'})`);
  for (let round = 1; round <= rounds; round++) {
    const line = [];
    for (const cmd of commands) {
      const d = join(dir, `${cmd.id}-${round}`);
      mkdirSync(d, { recursive: true });
      const c = cmd.prepare(d);
      const quiet = await settle({ cold, warmFiles: cmd.inputs });
      const steps = [];
      for (const argv of cmd.steps(c)) {
        const r = await timed(argv);
        if (r.code !== 0) throw new Error(`${cmd.id}: ${argv.join(' ')} failed (exit ${r.code}):\n${r.stdout}${r.stderr}`);
        steps.push(r);
      }
      const note = cmd.check?.(c, steps);
      if (round === 1) sanity(cmd, c, size, fx);
      await cmd.after?.();
      rmSync(d, { recursive: true, force: true });
      const ms = sum(steps.map((s) => s.ms));
      results[cmd.id].push({ ms, rssKB: max(steps.map((s) => s.rssKB)), busyBefore: quiet.busy, steps: steps.map((s) => ({ ms: s.ms, rssKB: s.rssKB })), ...(typeof note === 'string' ? { note } : {}) });
      line.push(`${cmd.id} ${secs(ms)}`);
    }
    log(`  round ${round}/${rounds}: ${line.join(', ')}`);
  }
  rmSync(dir, { recursive: true, force: true });
  return { size, fixture: fx, snapshotBytes, rounds, results };
}

/** Round 1 only: the copies hold every memory and every recall, the WAL's included (the fixture's figures). */
function sanity(cmd, c, size, fx) {
  let db;
  if (['ours.off', 'ours.quick', 'ours.full', 'base.off', 'base.quick', 'base.full'].includes(cmd.id)) db = join(c.to, readdirSync(c.to).find((n) => /^ai-memory-.*\.db$/.test(n)));
  else if (cmd.id === 'native.backup') db = c.v;
  else if (cmd.id === 'ours.restore' || cmd.id === 'base.restore') db = c.db;
  if (!db) return;
  const { n, touched } = count(db);
  if (n !== size.memories) throw new Error(`${cmd.id}: ${db} holds ${n} memories, expected ${size.memories}`);
  // The recalls change no count: sum(access_count) shows that the WAL's last commit is in.
  if (touched !== fx.meta.accessCountTotal) throw new Error(`${cmd.id}: ${db} has sum(access_count) ${touched}, expected ${fx.meta.accessCountTotal}`);
}

// ---------------------------------------------------------------------------------------
// Analysis

function analyse(r) {
  const R = r.results;
  const n = r.rounds;
  const per = (id) => R[id].map((x) => x.ms);
  const stepsMs = (id, from, to) => R[id].map((x) => sum(x.steps.slice(from, to).map((s) => s.ms)));
  const nativeNoQc = stepsMs('native.backup', 0, 3);
  const nativeQc = per('native.backup');
  const ratio = (a, b) => a.map((x, i) => x / b[i]);
  const allowance = per('floor.restore').map((f, i) => 1.25 * f + per('native.qc')[i]);
  const a = {
    oursOff: per('ours.off'),
    oursQuick: per('ours.quick'),
    oursRestore: per('ours.restore'),
    floorBackup: per('floor.backup'),
    floorRestore: per('floor.restore'),
    nativeNoQc,
    nativeQc,
    nativeQcSnap: per('native.qc'),
    allowance,
  };
  a.offVsFloor = median(ratio(a.oursOff, a.floorBackup));
  a.offVsNative = median(ratio(a.oursOff, nativeNoQc));
  a.quickVsNative = median(ratio(a.oursQuick, nativeQc));
  a.quickVsFloor = median(ratio(a.oursQuick, a.floorBackup));
  a.restoreVsFloor = median(ratio(a.oursRestore, a.floorRestore));
  a.restoreVsAllowance = median(ratio(a.oursRestore, allowance));
  a.offPeakMB = mbFromKiB(max(R['ours.off'].map((x) => x.rssKB)));
  // Every command of ours, for the flat-memory target (issue 12).
  a.peaks = OURS.filter((id) => R[id]).map((id) => ({ id, mb: mbFromKiB(max(R[id].map((x) => x.rssKB))) }));
  a.worst = a.peaks.reduce((w, p) => (p.mb > w.mb ? p : w), a.peaks[0]);
  // Native counterparts of full and verify, assembled from the same round's steps.
  a.nativeFull = nativeNoQc.map((x, i) => x + per('native.ic')[i]);
  a.nativeVerify = R['floor.restore'].map((x, i) => x.steps[0].ms + per('native.qc')[i]);
  a.fullVsNative = median(ratio(per('ours.full'), a.nativeFull));
  a.verifyVsNative = median(ratio(per('ours.verify'), a.nativeVerify));
  a.targets = [
    { name: 'backup `--verify off` ≤ 1.25× floor', value: `${fmt(a.offVsFloor)}×`, pass: a.offVsFloor <= 1.25 },
    {
      name: 'peak RSS ≤ 100 MB for every command of ours (backup off/quick/full, verify, restore, inspect, diff)',
      value: `${fmt(a.worst.mb, 0)} MB (${LABEL_SHORT[a.worst.id]})`,
      pass: a.worst.mb <= 100,
    },
    { name: 'backup `--verify quick` ≤ 1.0× native (VACUUM INTO + sync + sha256sum + quick_check)', value: `${fmt(a.quickVsNative)}×`, pass: a.quickVsNative <= 1.0 },
    {
      name: 'restore ≤ 1.25× floor (sha256sum + cp + sync) + native quick_check',
      value: `${secs(median(a.oursRestore))} s vs ${secs(median(allowance))} s (${fmt(a.restoreVsAllowance)}×)`,
      pass: a.restoreVsAllowance <= 1.0,
    },
  ];
  void n;
  return a;
}

const passMark = (p) => (p ? '**PASS**' : '**MISS**');
const OURS = ['ours.off', 'ours.quick', 'ours.full', 'ours.verify', 'ours.restore', 'ours.inspect', 'ours.diff'];
const LABEL_SHORT = {
  'ours.off': 'backup --verify off',
  'ours.quick': 'backup --verify quick',
  'ours.full': 'backup --verify full',
  'ours.verify': 'verify',
  'ours.restore': 'restore',
  'ours.inspect': 'inspect',
  'ours.diff': 'diff --db',
  'base.off': 'backup --verify off',
  'base.quick': 'backup --verify quick',
  'base.full': 'backup --verify full',
  'base.verify': 'verify',
  'base.restore': 'restore',
};

/** Peak RSS of every command at every size, ours beside the baseline build and native SQLite. */
function memorySection(sizeResults, skippedSizes) {
  const rows = [];
  const cell = (r, id, step) => {
    const xs = r.results[id];
    if (!xs) return '—';
    const kb = max(xs.map((x) => (step === undefined ? x.rssKB : x.steps[step].rssKB)));
    const note = xs.find((x) => x.note)?.note;
    return `${fmt(mbFromKiB(kb), 0)}${note ? ' ¹' : ''}`;
  };
  const line = (label, id, step) => rows.push([label, ...sizeResults.map(({ r }) => cell(r, id, step))]);
  for (const id of OURS) line(`ours: \`${LABEL_SHORT[id]}\``, id);
  if (baselineDir) for (const id of ['base.off', 'base.quick', 'base.full', 'base.verify', 'base.restore']) line(`baseline build: \`${LABEL_SHORT[id]}\``, id);
  line('native: `sqlite3 VACUUM INTO`', 'native.backup', 0);
  line('native: `PRAGMA quick_check` of the snapshot', 'native.qc');
  line('native: `PRAGMA integrity_check` of the snapshot', 'native.ic');
  line('floor: `cp`, `sync`, `sha256sum` (largest process)', 'floor.backup');
  const out = [
    '## Peak memory of every command',
    '',
    'Peak RSS in MB (GNU time `%M`, the largest process of a command; max over the rounds). Target: ≤ 100 MB for every command of ours at every size.',
    '',
    table(['command', ...sizeResults.map(({ r }) => r.size.label)], rows, [':--', ...sizeResults.map(() => '--:')]),
    '',
  ];
  if (sizeResults.some(({ r }) => Object.values(r.results).some((xs) => xs.some((x) => x.note)))) {
    out.push('¹ the baseline build copied it but did not check it: larger than the 1536 MiB its checker could open. "—": not run (the baseline build refuses to restore or verify a snapshot that large).', '');
  }
  for (const s of skippedSizes) out.push(`- **${s.size.label}**: ${s.skipped}.`, '');
  return out.join('\n');
}

function sizeSection(r, a, labels) {
  const fx = r.fixture.meta;
  const rows = [];
  const add = (label, xs, rssKBs, note = '') => rows.push([label, secs(median(xs)), `${secs(min(xs))}–${secs(max(xs))}`, fmt(mbFromKiB(max(rssKBs)), 0), note]);
  const R = r.results;
  const ms = (id) => R[id].map((x) => x.ms);
  const rss = (id) => R[id].map((x) => x.rssKB);
  const stepMs = (id, i) => R[id].map((x) => x.steps[i].ms);
  const stepRss = (id, i) => R[id].map((x) => x.steps[i].rssKB);
  add(labels['ours.off'], ms('ours.off'), rss('ours.off'), `÷ floor ${fmt(a.offVsFloor)}×, ÷ native ${fmt(a.offVsNative)}×`);
  add(labels['floor.backup'], ms('floor.backup'), rss('floor.backup'), R['floor.backup'][0].steps.map((_, i) => `${['cp', 'sync', 'sha256sum'][i]} ${secs(median(stepMs('floor.backup', i)))}`).join(' + '));
  add('native: `VACUUM INTO` + `sync` + `sha256sum`', a.nativeNoQc, R['native.backup'].map((x) => max(x.steps.slice(0, 3).map((s) => s.rssKB))), ['VACUUM INTO', 'sync', 'sha256sum'].map((n, i) => `${n} ${secs(median(stepMs('native.backup', i)))}`).join(' + '));
  add('native: … + `PRAGMA quick_check`', ms('native.backup'), rss('native.backup'), `quick_check ${secs(median(stepMs('native.backup', 3)))} (peak ${fmt(mbFromKiB(max(stepRss('native.backup', 3))), 0)} MB)`);
  add(labels['ours.quick'], ms('ours.quick'), rss('ours.quick'), `÷ native ${fmt(a.quickVsNative)}×, ÷ floor ${fmt(a.quickVsFloor)}×`);
  add(labels['ours.full'], ms('ours.full'), rss('ours.full'), `÷ native (VACUUM INTO + sync + sha256sum + integrity_check) ${fmt(a.fullVsNative)}×`);
  add(labels['ours.verify'], ms('ours.verify'), rss('ours.verify'), `÷ native (sha256sum + quick_check of the snapshot) ${fmt(a.verifyVsNative)}×`);
  add(labels['ours.restore'], ms('ours.restore'), rss('ours.restore'), `÷ floor ${fmt(a.restoreVsFloor)}×, ÷ (1.25 floor + quick_check) ${fmt(a.restoreVsAllowance)}×`);
  add(labels['ours.inspect'], ms('ours.inspect'), rss('ours.inspect'), '');
  add(labels['ours.diff'], ms('ours.diff'), rss('ours.diff'), `${fx.memories.toLocaleString('en')} memories on each side`);
  add(labels['floor.restore'], ms('floor.restore'), rss('floor.restore'), ['sha256sum', 'cp', 'sync'].map((n, i) => `${n} ${secs(median(stepMs('floor.restore', i)))}`).join(' + '));
  add(labels['native.qc'], ms('native.qc'), rss('native.qc'), '');
  add(labels['native.ic'], ms('native.ic'), rss('native.ic'), '');
  if (R['base.off']) {
    const vs = (id, b) => median(R[id].map((x, i) => x.ms / R[b][i].ms));
    add('baseline build: `backup --verify off`', ms('base.off'), rss('base.off'), `ours ÷ baseline ${fmt(vs('ours.off', 'base.off'))}×`);
    const noted = (id) => (R[id].find((x) => x.note)?.note ? ` — ${R[id].find((x) => x.note).note}` : '');
    add('baseline build: `backup --verify quick`', ms('base.quick'), rss('base.quick'), `ours ÷ baseline ${fmt(vs('ours.quick', 'base.quick'))}×${noted('base.quick')}`);
    add('baseline build: `backup --verify full`', ms('base.full'), rss('base.full'), `ours ÷ baseline ${fmt(vs('ours.full', 'base.full'))}×${noted('base.full')}`);
    if (R['base.verify']) add('baseline build: `verify`', ms('base.verify'), rss('base.verify'), `ours ÷ baseline ${fmt(vs('ours.verify', 'base.verify'))}×`);
    if (R['base.restore']) add('baseline build: `restore`', ms('base.restore'), rss('base.restore'), `ours ÷ baseline ${fmt(vs('ours.restore', 'base.restore'))}×`);
    if (!R['base.restore']) rows.push(['baseline build: `restore`, `verify`', '—', '—', '—', 'not run: it refuses snapshots larger than 1536 MiB (TOO_LARGE)']);
  }
  return [
    `## ${r.size.label}: ${mb(fx.main.bytes).toFixed(1)} MB main file + ${mb(fx.wal.bytes).toFixed(1)} MB WAL`,
    '',
    `${fx.memories.toLocaleString('en')} memories (384-dim embeddings, FTS5), the last ${fx.walCommits.toLocaleString('en')} transactions in the un-checkpointed WAL (${(fx.stores ?? fx.walCommits).toLocaleString('en')} stores, ${(fx.recalls ?? 0).toLocaleString('en')} recalls); snapshot ${mb(r.snapshotBytes).toFixed(1)} MB. ${r.rounds} rounds; medians, min–max over the rounds; ratios are medians of the per-round ratios.`,
    '',
    table(['command', 'median s', 'min–max s', 'peak RSS MB', 'breakdown / ratios'], rows, [':--', '--:', '--:', '--:', ':--']),
    '',
    table(['target', 'measured', 'result'], a.targets.map((t) => [t.name, t.value, passMark(t.pass)]), [':--', '--:', ':-:']),
    '',
  ].join('\n');
}

/** Where a target is missed: what the numbers say about why (fixed cost vs. throughput). */
function notesSection(sizeResults, extras) {
  const out = ['## Reading the misses', ''];
  const start = extras.start?.cliColdMs ?? extras.start?.cliMs;
  const missed = sizeResults.filter(({ a }) => a.targets.some((t) => !t.pass));
  for (const { r, a } of missed) {
    const lines = [];
    const m = (xs) => median(xs);
    const t = Object.fromEntries(a.targets.map((x, i) => [['off', 'rss', 'quick', 'restore'][i], x.pass]));
    const less = (xs) => (Number.isFinite(start) ? ` (${secs(m(xs) - start)} s without our process start)` : '');
    if (!t.off) lines.push(`backup \`--verify off\` takes ${secs(m(a.oursOff))} s${less(a.oursOff)} against ${secs(m(a.floorBackup))} s for the floor`);
    if (!t.quick) lines.push(`backup \`--verify quick\` takes ${secs(m(a.oursQuick))} s${less(a.oursQuick)} against ${secs(m(a.nativeQc))} s native; its sql.js check runs in WASM, where the native \`quick_check\` of the same round took ${secs(m(r.results['native.backup'].map((x) => x.steps[3].ms)))} s`);
    if (!t.restore) lines.push(`restore takes ${secs(m(a.oursRestore))} s${less(a.oursRestore)} against an allowance of ${secs(m(a.allowance))} s`);
    if (!t.rss) lines.push(`\`${LABEL_SHORT[a.worst.id]}\` peaked at ${fmt(a.worst.mb, 0)} MB`);
    if (lines.length) out.push(`- **${r.size.label}**: ${lines.join('; ')}.`);
  }
  if (Number.isFinite(start)) {
    out.push(
      `- Each of our commands is a Node process: \`node dist/cli.js --version\` alone takes ${millis(extras.start.cliMs)} ms (${millis(extras.start.cliColdMs)} ms with a cold page cache), \`node -e 0\` ${millis(extras.start.nodeMs)} ms, while \`cp\`, \`sync\` and \`sha256sum\` start in about a millisecond. Where the whole floor takes ~0.1 s (5 MB), that start alone is about the 1.25× budget; the larger sizes, where throughput counts, are well inside it.`,
      "- The `quick_check` in a process also pays for the WASM engine: compiling sql.js (see *sql.js wasm init*), and SQLite's code running as V8's baseline (Liftoff) WASM code, slower than the native `sqlite3`. We keep V8 from re-compiling the hot functions with TurboFan on background threads (`--liftoff-only`, set in `src/core/sqlite/sqlEngine.ts`): for one check per process, on 2 cores, that re-compiling cost more than it saved (first check of a 50 MB image 150–210 ms → 85 ms).",
    );
  }
  if (extras.catalog && extras.catalog.firstMs > 100) {
    out.push(`- The catalog's first call (${millis(extras.catalog.firstMs)} ms) includes V8 compiling the code for the first time; later calls take ${millis(extras.catalog.repeatMs)} ms. It is bound by the ~4,000 thread-pool round trips of its asynchronous file calls (stat, open, read, close per snapshot); synchronous calls take ~25 ms for the same work but would block the extension host on a slow or network backup folder.`);
  }
  if (out.length === 2) out.push('- None: every target is met.');
  out.push('');
  return out.join('\n');
}

function memoryViewsSection(m) {
  const rows = m.rows.map((r) => [r.label, secs(r.ms), `${secs(r.minMs)}–${secs(r.maxMs)}`, fmt(mbFromKiB(r.rssKB), 0)]);
  return [
    `## Inspect and diff (${m.label}, ${m.memories?.toLocaleString?.() ?? '?'} memories)`,
    '',
    `Median of ${m.rounds} rounds; whole processes. Ours answers in one JSON line, so its time to first result is its total time; the extension's views show that answer as soon as it arrives. Native \`sqlite3\` runs the same queries on the same files (no digest, no recall-noise classification).`,
    '',
    table(['command', 'median s', 'min–max s', 'peak RSS MB'], rows, [':--', '--:', '--:', '--:']),
    '',
  ].join('\n');
}

function extrasSection(x) {
  const out = ['## Extension activation, catalog, sql.js init, process start', ''];
  const rows = [];
  if (x.activation) {
    const act = x.activation;
    rows.push([
      `extension activation (its own \`activated in … ms\` log line), median of ${act.sessions} VS Code sessions`,
      act.ownMs !== undefined ? `${millis(act.ownMs)} ms` : 'no figure in the log line',
      '≤ 20 ms',
      act.ownMs !== undefined ? passMark(act.ownMs <= 20) : '–',
    ]);
    rows.push([
      'extension activation as VS Code measures it (code loading + `activate()`, "Developer: Show Running Extensions")',
      act.vscodeMs !== undefined ? `${millis(act.vscodeMs)} ms` : '–',
      '(informative)',
      '',
    ]);
  } else if (x.activationError) {
    rows.push(['extension activation', `not measured: ${x.activationError}`, '≤ 20 ms', '–']);
  }
  if (x.catalog) {
    const c = x.catalog;
    rows.push([`catalog of 1,000 snapshots: \`listSnapshots()\` first call in a fresh process (median of ${c.runs})`, `${millis(c.firstMs)} ms`, '≤ 100 ms', passMark(c.firstMs <= 100)]);
    rows.push([`… repeated calls in the same process (median of ${c.runs}×${c.repeats})`, `${millis(c.repeatMs)} ms`, '', '']);
    if (c.coldFirstMs !== undefined) rows.push(['… first call with the page cache dropped', `${millis(c.coldFirstMs)} ms`, '', '']);
    rows.push([`\`node dist/cli.js list --to DIR --json\`, whole process (median of ${c.runs})`, `${millis(c.cliMs)} ms`, '', '']);
    if (c.cliColdMs !== undefined) rows.push(['… with the page cache dropped', `${millis(c.cliColdMs)} ms`, '', '']);
    if (c.baseline) rows.push([`baseline build: \`listSnapshots()\` first call / repeated (same rounds)`, `${millis(c.baseline.firstMs)} / ${millis(c.baseline.repeatMs)} ms`, '', '']);
  }
  if (x.sqljs) {
    rows.push([`sql.js wasm init (\`loadSqlEngine()\` in a fresh process, median of ${x.sqljs.runs})`, `${millis(x.sqljs.initMs)} ms`, '', '']);
    if (x.sqljs.coldInitMs !== undefined) rows.push(['… with the page cache dropped', `${millis(x.sqljs.coldInitMs)} ms`, '', '']);
  }
  if (x.start) {
    rows.push([`process start: \`node -e 0\` (median of ${x.start.runs})`, `${millis(x.start.nodeMs)} ms`, '', '']);
    rows.push(['process start: `node dist/cli.js --version`', `${millis(x.start.cliMs)} ms`, '', '']);
    if (Number.isFinite(x.start.cliColdMs)) rows.push(['… with the page cache dropped', `${millis(x.start.cliColdMs)} ms`, '', '']);
  }
  out.push(table(['measurement', 'median', 'target', 'result'], rows, [':--', '--:', '--:', ':-:']), '');
  if (x.activation?.sample) out.push(`Activation log line (session 1): \`${x.activation.sample.line}\`; VS Code's row: \`${x.activation.sample.vscode?.text ?? x.activation.sample.vscode?.error}\`.`, '');
  return out.join('\n');
}

// ---------------------------------------------------------------------------------------

async function main() {
  requireTools();
  if (!opts['no-build']) build();
  if (!existsSync(cli)) throw new Error(`${cli} missing: run npm run build (or drop --no-build)`);
  if (opts['remote-only']) {
    const r = await measureRemotePush({ repoRoot, cacheDir, bytes: quick ? 50 << 20 : 500 << 20, rounds: quick ? 2 : 3, log });
    const file = resolve(opts.out ?? join(benchDir, 'results-remote.md'));
    writeFileSync(file, `# Benchmark: off-machine copy\n\n${new Date().toISOString()}, Node ${process.version}\n\n${remoteSection(r)}`);
    log(`wrote ${relative(repoRoot, file)}`);
    return;
  }
  const wantCold = !opts.warm;
  const cold = wantCold && canDropCaches();
  if (wantCold && !cold) log('cannot drop the page cache here (not root, or a container): running warm');
  if (opts['memory-only']) {
    const size = opts.sizes ? sizes.at(-1) : SIZES.find((x) => x.label === '500 MB');
    mkdirSync(workDir, { recursive: true });
    const fx = await ensureFixture({ repoRoot, cacheDir, size, log });
    log(`inspect and diff of the ${size.label} fixture`);
    const m = await measureMemoryViews({ fx, workDir, node, cli, rounds: quick ? 2 : 3, cold, log });
    m.label = size.label;
    const facts = machine();
    const file = resolve(opts.out ?? join(benchDir, 'results-memory.md'));
    writeFileSync(file, `# Benchmark: inspect and diff\n\n${new Date().toISOString()}, Node ${process.version}, sqlite3 ${facts.sqlite3}; ${facts.cores} cores; load ${loadavg().map((x) => x.toFixed(1)).join(' ')}; ${cold ? 'page cache dropped before each command' : 'warm'}\n\n${memoryViewsSection(m)}`);
    log(`wrote ${relative(repoRoot, file)}`);
    return;
  }
  mkdirSync(workDir, { recursive: true });
  const facts = machine();
  facts.loadStart = loadavg();
  log(`${facts.model}, ${facts.cores} cores, ${facts.ramGB.toFixed(0)} GB, ${facts.fs}; Node ${facts.node}, sqlite3 ${facts.sqlite3}`);

  const sizeResults = [];
  const skippedSizes = [];
  for (const size of sizes) {
    const rounds = size.label === '1.9 GB' ? roundsHuge : size.label === '500 MB' ? roundsLarge : roundsSmall;
    const r = await benchSize(size, { cold, rounds });
    if (r.skipped) skippedSizes.push(r);
    else sizeResults.push({ r, a: analyse(r) });
  }

  // The figures so far, before the extras: a failure there must not lose a long run.
  mkdirSync(cacheDir, { recursive: true });
  writeFileSync(join(cacheDir, 'sizes-run.json'), JSON.stringify({ facts, cold, sizeResults, skippedSizes, quietLog, quietOptions }, null, 1));

  const extras = {};
  if (!opts['no-remote']) {
    log('off-machine copy: push to a loopback S3 server');
    extras.remote = await measureRemotePush({ repoRoot, cacheDir, bytes: quick ? 50 << 20 : 500 << 20, rounds: quick ? 2 : 3, log });
  }
  if (!opts['no-memory'] && sizeResults.length) {
    const { r } = sizeResults.at(-1);
    log(`inspect and diff of the ${r.size.label} fixture`);
    extras.memory = await measureMemoryViews({ fx: r.fixture, workDir, node, cli, rounds: quick ? 2 : 3, cold, log });
    extras.memory.label = r.size.label;
  }
  if (!opts['no-extras']) {
    log('process start');
    extras.start = await measureProcessStart({ repoRoot, runs: quick ? 5 : 9, cold });
    log('sql.js init');
    extras.sqljs = await measureSqlJsInit({ repoRoot, runs: quick ? 5 : 9, cold });
    log('catalog of 1,000 snapshots');
    extras.catalog = await measureCatalog({ repoRoot, cacheDir, runs: quick ? 5 : 9, cold, baselineDir });
    if (!opts['no-activation']) {
      log(`extension activation (${activationSessions} VS Code sessions)`);
      try {
        extras.activation = await measureActivation({ cacheDir, sessions: activationSessions, log });
      } catch (e) {
        extras.activationError = e.message.split('\n')[0];
        log(`activation not measured: ${e.message}`);
      }
    }
  }

  const duration = (Date.now() - started) / 1000;
  facts.loadEnd = loadavg();
  // The raw figures, to look into (or re-render) later.
  mkdirSync(cacheDir, { recursive: true });
  writeFileSync(join(cacheDir, quick ? 'last-run-quick.json' : 'last-run.json'), JSON.stringify({ facts, cold, sizeResults, skippedSizes, extras, duration, quietLog, quietOptions }, null, 1));
  const md = report({ facts, cold, sizeResults, skippedSizes, extras, duration });
  writeFileSync(outFile, md);
  process.stdout.write(`${md}\n`);
  log(`wrote ${relative(repoRoot, outFile)} in ${(duration / 60).toFixed(1)} min`);
}

/** Which build --baseline points at: its git commit when it is a checkout. */
function baselineLabel() {
  try {
    const line = run('git', ['-C', baselineDir, 'log', '-1', '--format=%h %s']).trim();
    return `commit ${line.replace(/^(\S+) /, '`$1` (')})`;
  } catch {
    return `\`${baselineDir}\``;
  }
}

function quietLine(facts) {
  const waits = quietLog;
  if (!waits.length) return '';
  if (quietOptions.maxWaitMs <= 0) {
    return `- The machine is shared and this run did not wait for quiet moments (\`--max-wait 0\`). Load average at start ${facts.loadStart.map((x) => x.toFixed(1)).join(' ')}, at end ${facts.loadEnd.map((x) => x.toFixed(1)).join(' ')}.`;
  }
  const busy = waits.map((q) => q.busy).filter(Number.isFinite);
  const gaveUp = waits.filter((q) => !q.quiet).length;
  const waited = sum(waits.map((q) => q.waitedMs)) / 1000;
  return `- The machine is shared: before each of the ${waits.length} timed runs the bench waited until the CPUs were at most ${Math.round(quietOptions.threshold * 100)} % busy (over ${quietOptions.windowMs} ms; at most ${quietOptions.maxWaitMs / 1000} s): ${waited.toFixed(0)} s of waiting in all; CPU busy just before a run: median ${Math.round(median(busy) * 100)} %, max ${Math.round(max(busy) * 100)} %${gaveUp ? ` (${gaveUp} runs started busier than that after the wait)` : ''}. Load average at start ${facts.loadStart.map((x) => x.toFixed(1)).join(' ')}, at end ${facts.loadEnd.map((x) => x.toFixed(1)).join(' ')}.`;
}

function report({ facts, cold, sizeResults, skippedSizes, extras, duration }) {
  const now = new Date();
  const labels = Object.fromEntries(commandsFor({ db: 'x.db', wal: 'x.db-wal' }, 'x', 'x').map((c) => [c.id, c.label]));
  const allTargets = [];
  for (const { r, a } of sizeResults) for (const t of a.targets) allTargets.push([`${r.size.label}: ${t.name}`, t.value, passMark(t.pass)]);
  if (extras.activation?.ownMs !== undefined) allTargets.push(['extension activation ≤ 20 ms', `${millis(extras.activation.ownMs)} ms`, passMark(extras.activation.ownMs <= 20)]);
  if (extras.catalog) allTargets.push(['catalog of 1,000 snapshots ≤ 100 ms', `${millis(extras.catalog.firstMs)} ms`, passMark(extras.catalog.firstMs <= 100)]);
  const rounds = [...new Set(sizeResults.map(({ r }) => `${r.size.label}: ${r.rounds}`))].join(', ');
  return [
    '# Benchmark results',
    '',
    `Written by \`${quick ? 'npm run bench -- --quick' : 'npm run bench'}\` on ${now.toISOString().slice(0, 10)} (${now.toISOString().slice(11, 16)} UTC); the run took ${(duration / 60).toFixed(1)} min. How to run and read it: [README.md](README.md).`,
    '',
    '## Machine',
    '',
    `- CPU: ${facts.model}${facts.mhz ? ` (${Math.round(facts.mhz)} MHz)` : ''}, **${facts.cores} cores**; RAM ${facts.ramGB.toFixed(0)} GB; Linux ${facts.kernel}; files on ${facts.fs}`,
    `- Node ${facts.node}; native SQLite: Debian \`sqlite3\` ${facts.sqlite3}; GNU coreutils ${facts.coreutils}; our checker: sql.js 1.16.0 (SQLite 3.49 in WASM)`,
    '',
    '## Method',
    '',
    `- Every command is a whole process (or a chain of processes run back to back), timed from spawn to exit; peak RSS is GNU time's \`%M\` (the largest process of the chain).`,
    `- Rounds alternate A B C … A B C … over all commands of a size (${rounds} rounds), so drift of this shared machine lands on every command alike. Medians; ratios are the median of the per-round ratios.`,
    cold
      ? '- Cache state: before **every** command, `sync` (so no write-back from the previous command lands in its time) and `echo 3 > /proc/sys/vm/drop_caches`: each command starts with a cold page cache and reads its inputs, and its own program, from the disk.'
      : '- Cache state: before every command, `sync` and its input files read once (warm page cache; the page cache could not be dropped here).',
    '- Fixtures: ai-memory schema v28 (FTS5 + triggers, generated columns, 384-dim embeddings) from `test/support/aiMemoryDb.ts`, cached in `bench/.cache/`; the main file plus a `-wal` that was never checkpointed (no `-shm`: as after the server stopped). The WAL holds the last 2,000 commits, two kinds of what the server writes: stores (2 % of the memories; insert one memory and touch an older one, the FTS5 triggers re-index it, ~100 KB of WAL each) and recalls (the rest; access_count + 1 on one memory, ~40 KB each). So the WAL is ~80 MB at every size: 16× the 5 MB main file, 40 % of the 500 MB one.',
    '- Ours: `node dist/cli.js backup --db F --to <fresh empty folder> --verify off|quick|full --keep 0 --json`, `verify --from <snapshot> --json` (manifest sha256 + size, sql.js `quick_check` of the snapshot) and `restore --db <a small existing ai-memory-shaped database> --from <snapshot> --json` (manifest sha256 + size while copying the snapshot beside the database, fsync, sql.js `quick_check` of that copy, keeps the old database as `*.pre-restore-*.db`, rename, re-hash of the placed file). The restore and verify source is a snapshot of the same fixture made by our backup. sql.js reads the file it checks page by page from disk (src/core/sqlite/sqlEngine.ts), so memory does not grow with the database.',
    '- Native counterparts assembled from the same round: `backup --verify full` ÷ (`VACUUM INTO` + `sync` + `sha256sum` + `integrity_check` of the snapshot); `verify` ÷ (`sha256sum` + `quick_check` of the snapshot).',
    '- Floor (backup): `cp F F-wal DIR/`, `sync` on the two copies (fsync), `sha256sum` of the two copies. Floor (restore): `sha256sum` of the snapshot, `cp` it, `sync` the copy.',
    "- Native (ai-memory's own method): `sqlite3 -cmd '.dbconfig no_ckpt_on_close on' F \"VACUUM INTO 'out.db'\"`, `sync out.db`, `sha256sum out.db`, `sqlite3 -readonly out.db 'PRAGMA quick_check'`. (sqlite3 3.40.1 fails `VACUUM INTO` on this schema's generated columns when opened `-readonly`; `no_ckpt_on_close` keeps it from checkpointing the fixture's WAL. The fixture is checked unchanged after every run.) For the restore target, the native `quick_check` is of our snapshot.",
    '- Round 1 of each size also checks that every copy holds all memories and the sum of `access_count` after the last recall: nothing of the WAL is missing.',
    quietLine(facts),
    ...(baselineDir ? [`- Before/after: the *baseline build* rows time another build of ours in the same rounds (\`--baseline\`): ${baselineLabel()}.`] : []),
    '',
    '## Targets',
    '',
    table(['target', 'measured', 'result'], allTargets, [':--', '--:', ':-:']),
    '',
    memorySection(sizeResults, skippedSizes),
    ...sizeResults.map(({ r, a }) => sizeSection(r, a, labels)),
    ...(extras.memory ? [memoryViewsSection(extras.memory)] : []),
    ...(Object.keys(extras).some((k) => k !== 'memory' && k !== 'remote') ? [extrasSection(extras)] : []),
    ...(extras.remote ? [remoteSection(extras.remote)] : []),
    notesSection(sizeResults, extras),
  ].join('\n');
}

main()
  .catch((e) => {
    log(`FAILED: ${e.stack ?? e.message}`);
    process.exitCode = 1;
  })
  .finally(cleanup);
