/**
 * Helpers for the reliability suite (test/reliability/*.test.ts): the real CLI as a
 * separate process (killable with SIGKILL), an independent checker of backup folders
 * (manifests re-verified here, not with the engine's own code), leftovers, "nothing
 * changed" fingerprints, native reads of a database in one private copy, and tmpfs mounts
 * for the disk-full cases.
 *
 * The CLI process runs a bundle of src/cli.ts made exactly as `npm run build` makes
 * dist/cli.js (esbuild, same options, sql-wasm.wasm beside it), but into a private folder,
 * so a concurrent `npm run build` cannot swap the file in the middle of the suite and the
 * suite always tests the source it was compiled with. AIMB_CLI=<path> runs another build
 * (e.g. AIMB_CLI=dist/cli.js to test the shipped bundle).
 */
import * as assert from 'assert';
import { spawn, execFileSync } from 'child_process';
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { JOURNAL_MAGIC } from '../../src/core/sqlite/sqliteFormat';
import { withNativeCopy } from './aiMemoryDb';
import { openNative } from './sqlite';
import { trackChild } from './procs';
import { makeTempDir } from './tmp';

export const REPO_ROOT = path.resolve(__dirname, '..', '..', '..');

// ---------------------------------------------------------------------------------------
// The CLI as a process

let bundle: Promise<string> | undefined;

/** Path of the CLI bundle to run (built once per test process). */
export function cliBundle(): Promise<string> {
  bundle ??= (async () => {
    const given = process.env.AIMB_CLI;
    if (given) return path.resolve(REPO_ROOT, given);
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const esbuild = require('esbuild') as { build(o: Record<string, unknown>): Promise<unknown> };
    const dir = makeTempDir('aimb-cli-');
    const outfile = path.join(dir, 'cli.js');
    await esbuild.build({
      entryPoints: [path.join(REPO_ROOT, 'src', 'cli.ts')],
      outfile,
      bundle: true,
      format: 'cjs',
      platform: 'node',
      target: 'node20',
      sourcemap: false,
      external: ['vscode'],
      // As esbuild.mjs: ES module builds first (jsonc-parser's UMD main cannot be bundled).
      mainFields: ['module', 'main'],
      logLevel: 'warning',
      banner: { js: '#!/usr/bin/env node' },
    });
    fs.copyFileSync(path.join(path.dirname(require.resolve('sql.js/dist/sql-wasm.js')), 'sql-wasm.wasm'), path.join(dir, 'sql-wasm.wasm'));
    return outfile;
  })();
  return bundle;
}

export interface ProcResult {
  /** Exit code (null when killed by a signal). */
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  /** stderr without the --progress-json lines. */
  stderr: string;
  /** Phases reported with --progress-json, in order ("reading", "placing: folding …"). */
  phases: string[];
  /** Milliseconds from spawn to exit. */
  ms: number;
  /** Milliseconds from spawn to the first progress line of each phase ("reading", "placing", …). */
  phaseAt: Record<string, number>;
  /** We signalled it (killSignal after killAfterMs) — as opposed to it finishing first. */
  killedByUs: boolean;
  pid: number;
}

export interface RunOptions {
  cwd: string;
  env?: NodeJS.ProcessEnv;
  /** Signal the process this many ms after spawn (if it is still running). */
  killAfterMs?: number;
  /** The signal sent after killAfterMs (default SIGKILL). */
  killSignal?: NodeJS.Signals;
  /** Fail the run (SIGKILL) after this long (default 60 s). */
  timeoutMs?: number;
  /** Called once the child is spawned (its pid known). */
  onSpawn?: (pid: number) => void;
}

/** Runs `node <cli bundle> ...args` as a separate process; never rejects for a non-zero exit. */
export async function runCliProcess(args: string[], opts: RunOptions): Promise<ProcResult> {
  const cli = await cliBundle();
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: opts.cwd, LANG: 'C', ...opts.env };
  const t0 = process.hrtime.bigint();
  const child = spawn(process.execPath, [cli, ...args], { cwd: opts.cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
  trackChild(child, `cli ${args[0] ?? ''}`);
  opts.onSpawn?.(child.pid ?? -1);
  let stdout = '';
  let stderrRaw = '';
  child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
  const phaseAt: Record<string, number> = {};
  child.stderr.setEncoding('utf8').on('data', (s: string) => {
    stderrRaw += s;
    for (const m of s.matchAll(/\{"progress":\{"phase":"([a-z]+)"/g)) phaseAt[m[1]] ??= Number(process.hrtime.bigint() - t0) / 1e6;
  });
  let killedByUs = false;
  const timers: NodeJS.Timeout[] = [];
  if (opts.killAfterMs !== undefined) {
    timers.push(
      setTimeout(() => {
        if (child.exitCode === null && child.signalCode === null) {
          killedByUs = true;
          child.kill(opts.killSignal ?? 'SIGKILL');
        }
      }, opts.killAfterMs),
    );
  }
  timers.push(setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000));
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (c, s) => resolve([c, s]));
  });
  for (const t of timers) clearTimeout(t);
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  const phases: string[] = [];
  const rest: string[] = [];
  for (const line of stderrRaw.split('\n')) {
    if (line.startsWith('{"progress":')) {
      try {
        const p = (JSON.parse(line) as { progress: { phase: string; message?: string } }).progress;
        const label = p.message ? `${p.phase}: ${p.message.replace(/ \S*ai-memory\S*/g, '').slice(0, 40)}` : p.phase;
        if (phases.at(-1) !== label) phases.push(label);
        continue;
      } catch {
        // a line cut by the kill: not progress
      }
    }
    rest.push(line);
  }
  return { code, signal, stdout, stderr: rest.join('\n'), phases, ms, phaseAt, killedByUs, pid: child.pid ?? -1 };
}

export interface Refusal {
  /** The error code in the --json line. */
  code: string;
  /** What the `error:` line must say. */
  message: RegExp;
}

/** Makes a message stable for the report: no temp paths, hashes, times or pids. */
export function stableMessage(msg: string, roots: string[]): string {
  let s = msg;
  for (const r of [...roots].sort((a, b) => b.length - a.length)) s = s.split(r).join('…');
  return s
    .replace(/\.ai-memory-backup-[0-9a-f]{6}-\d+-[0-9a-f]{8}\.([a-z-]+)\.tmp/g, '<temp>.$1.tmp')
    .replace(/[0-9a-f]{64}/g, '<sha256>')
    .replace(/\d{4}-\d\d-\d\dT\d{6}Z(_\d+)?/g, '<time>')
    .replace(/pid \d+ \(.*\)(\. Nothing was changed\.)$/, 'pid <n> (<its command line>)$1')
    .replace(/pid \d+/g, 'pid <n>')
    .replace(/\b\d{4,}\b/g, '<n>')
    .replace(/\s+/g, ' ')
    .trim();
}

/**
 * Runs the CLI with `args` as a process twice (text, then --json) and checks a refusal:
 * exit 1, nothing on stdout, `error: <message>` plus an indented hint line on stderr (or
 * exactly one JSON line with `code` and `hint`), and every root's fingerprint unchanged.
 * Returns "CODE: message" (made stable) for the report.
 */
export async function expectRefusal(args: string[], want: Refusal, opts: { cwd: string; roots: string[] }): Promise<string> {
  const fp = () => opts.roots.map((r) => fingerprint(r));
  const before = fp();
  const where = `\`${args.join(' ')}\``;
  const text = await runCliProcess(args, { cwd: opts.cwd });
  assert.strictEqual(text.code, 1, `${where}: exit code (stderr: ${text.stderr})`);
  assert.strictEqual(text.stdout, '', `${where}: nothing on stdout`);
  const lines = text.stderr.split('\n').filter(Boolean);
  assert.match(lines[0] ?? '', /^error: /, `${where}: stderr starts with "error:" (${text.stderr})`);
  assert.match(lines[0], want.message, `${where}: the message says what happened`);
  assert.ok(lines.slice(1).some((l) => /^ {2}\S/.test(l)), `${where}: a hint line follows (${text.stderr})`);
  assert.deepStrictEqual(fp(), before, `${where}: nothing changed`);

  const js = await runCliProcess([...args, '--json'], { cwd: opts.cwd });
  assert.strictEqual(js.code, 1, `${where} --json: exit code`);
  assert.strictEqual(js.stdout, '', `${where} --json: nothing on stdout`);
  const jl = js.stderr.split('\n').filter(Boolean);
  assert.strictEqual(jl.length, 1, `${where} --json: one line on stderr (${js.stderr})`);
  const j = JSON.parse(jl[0]) as { status: string; code: string; error: string; hint?: string };
  assert.strictEqual(j.status, 'error');
  assert.strictEqual(j.code, want.code, `${where} --json: error code (${j.error})`);
  assert.match(j.error, want.message);
  assert.ok(typeof j.hint === 'string' && j.hint.length > 10, `${where} --json: a hint`);
  assert.deepStrictEqual(fp(), before, `${where} --json: nothing changed`);
  return `${j.code}: "${stableMessage(lines[0].replace(/^error: /, ''), [...opts.roots, opts.cwd])}"`;
}

// ---------------------------------------------------------------------------------------
// Files

export const sha256File = (f: string): string => createHash('sha256').update(fs.readFileSync(f)).digest('hex');

/**
 * Every entry under `dir` (folders, files by hash, symlinks by target): "nothing changed"
 * means this is deep-equal before and after.
 */
export function fingerprint(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const p = path.join(d, e.name);
      const rel = path.relative(dir, p);
      if (e.isSymbolicLink()) out[rel] = `-> ${fs.readlinkSync(p)}`;
      else if (e.isDirectory()) {
        out[`${rel}/`] = `dir ${(fs.statSync(p).mode & 0o777).toString(8)}`;
        walk(p);
      } else out[rel] = sha256File(p);
    }
  };
  walk(dir);
  return out;
}

/** Our temporary files (any purpose, any pid) in `dir`. */
export function tempFiles(dir: string): string[] {
  return fs.existsSync(dir) ? fs.readdirSync(dir).filter((n) => /^\.ai-memory-backup-[0-9a-f]{6}-\d+-[0-9a-f]{8}\.[a-z-]+\.tmp$/.test(n)).sort() : [];
}

/** Restore pins in `dir`. */
export function pinFiles(dir: string): string[] {
  return fs.existsSync(dir) ? fs.readdirSync(dir).filter((n) => n.startsWith('.ai-memory-backup-pin-')).sort() : [];
}

export interface FolderState {
  /** Files under a final snapshot name (ai-memory-*.db). */
  snapshots: string[];
  /** Snapshots that fail their manifest, with the reason. Must always be empty. */
  bad: string[];
  /** Our manifests without a snapshot (allowed after a crash: manifest first; cleaned by the next run). */
  orphanManifests: string[];
  temps: string[];
  pins: string[];
  lock: boolean;
}

const REQUIRED_FIELDS: [string, string][] = [
  ['snapshot', 'string'],
  ['sha256', 'string'],
  ['bytes', 'number'],
  ['source_db', 'string'],
  ['version', 'string'],
  ['created_at', 'string'],
];

/**
 * Checks a backup folder independently of the engine: every file under a final snapshot
 * name has a manifest of the right shape that names it, with its exact byte count and
 * sha256.
 */
export function inspectBackupFolder(dir: string): FolderState {
  const st: FolderState = { snapshots: [], bad: [], orphanManifests: [], temps: tempFiles(dir), pins: pinFiles(dir), lock: false };
  if (!fs.existsSync(dir)) return st;
  const names = fs.readdirSync(dir).sort();
  st.lock = names.includes('.ai-memory-backup.lock');
  for (const name of names) {
    if (/^ai-memory-.*\.db$/.test(name)) {
      st.snapshots.push(name);
      const problem = manifestProblem(dir, name);
      if (problem) st.bad.push(`${name}: ${problem}`);
    } else if (/^ai-memory-.*\.manifest\.json$/.test(name)) {
      const snap = `${name.slice(0, -'.manifest.json'.length)}.db`;
      if (!names.includes(snap)) st.orphanManifests.push(name);
    }
  }
  return st;
}

function manifestProblem(dir: string, name: string): string | undefined {
  const mpath = path.join(dir, `${name.slice(0, -3)}.manifest.json`);
  if (!fs.existsSync(mpath)) return 'no manifest';
  let m: Record<string, unknown>;
  try {
    m = JSON.parse(fs.readFileSync(mpath, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    return `manifest is not JSON (${String(e)})`;
  }
  for (const [k, t] of REQUIRED_FIELDS) if (typeof m[k] !== t) return `manifest field ${k} is not a ${t}`;
  if (m.snapshot !== name) return `manifest names ${String(m.snapshot)}`;
  const size = fs.statSync(path.join(dir, name)).size;
  if (m.bytes !== size) return `${size} bytes, manifest says ${String(m.bytes)}`;
  const h = sha256File(path.join(dir, name));
  if (h !== String(m.sha256).toLowerCase()) return `sha256 ${h}, manifest says ${String(m.sha256)}`;
  return undefined;
}

/** Pre-restore copies beside `dbPath` (main files only), sorted. */
export function preRestoreCopies(dbPath: string): string[] {
  const dir = path.dirname(dbPath);
  const stem = path.basename(dbPath).replace(/\.db$/, '');
  return fs
    .readdirSync(dir)
    .filter((n) => n.startsWith(`${stem}.pre-restore-`) && n.endsWith('.db'))
    .sort()
    .map((n) => path.join(dir, n));
}

// ---------------------------------------------------------------------------------------
// Native reads

export interface NativeState {
  integrity: string;
  fts: string;
  memories: number;
  /** sha256 over (id, namespace, title, content, updated_at) of every memory, by id. */
  digest: string;
}

const stateCache = new Map<string, NativeState>();

/**
 * {@link nativeState}, remembered by the sha256 of the main file and the -wal: the same
 * bytes give the same answer, so a file seen before (a hard link, a copy) is not re-read.
 */
export function nativeStateCached(dbPath: string): NativeState {
  const key = `${sha256File(dbPath)}:${fs.existsSync(`${dbPath}-wal`) ? sha256File(`${dbPath}-wal`) : '-'}`;
  let s = stateCache.get(key);
  if (!s) {
    s = nativeState(dbPath);
    stateCache.set(key, s);
  }
  return s;
}

/** integrity_check, the FTS5 integrity-check and a digest of every memory, on one private copy (main + -wal). */
export function nativeState(dbPath: string): NativeState {
  return withNativeCopy(dbPath, (db) => {
    const integrity = (db.prepare('PRAGMA integrity_check').pluck().all() as unknown[]).map(String).join('\n');
    let fts = 'ok';
    try {
      db.exec("INSERT INTO memories_fts(memories_fts, rank) VALUES('integrity-check', 1)");
    } catch (e) {
      fts = e instanceof Error ? e.message : String(e);
    }
    const stmt = db.prepare('SELECT id, namespace, title, content, updated_at FROM memories ORDER BY id') as unknown as { raw(): { all(): unknown[][] } };
    const rows = stmt.raw().all();
    const h = createHash('sha256');
    for (const r of rows) h.update(JSON.stringify(r));
    return { integrity, fts, memories: rows.length, digest: h.digest('hex') };
  });
}

// ---------------------------------------------------------------------------------------
// tmpfs (disk full, read-only folders)

export interface Mount {
  path: string;
  unmount(): void;
}

/** Why tmpfs mounts are impossible here (not root, or mount refused), or undefined when they work. */
export function mountUnavailable(): string | undefined {
  if (process.platform !== 'linux') return `needs Linux (this is ${process.platform})`;
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return 'needs root to mount a small tmpfs (run the suite as root, e.g. in the CI container)';
  const probe = makeTempDir('aimb-mnt-probe-');
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', probe], { stdio: 'pipe' });
  } catch (e) {
    const err = e as { stderr?: Buffer; message: string };
    return `mount -t tmpfs failed here (${(err.stderr?.toString() || err.message).trim()}): no CAP_SYS_ADMIN in this container?`;
  }
  execFileSync('umount', [probe], { stdio: 'pipe' });
  return undefined;
}

const mounted = new Set<string>();

/** Mounts a tmpfs of `sizeBytes` on a new temp folder (`ro` for read-only). Unmount by path. */
export function mountTmpfs(sizeBytes: number, opts: { ro?: boolean; mode?: string } = {}): Mount {
  const dir = makeTempDir('aimb-mnt-');
  const o = [`size=${sizeBytes}`, `mode=${opts.mode ?? '0755'}`];
  if (opts.ro) o.push('ro');
  execFileSync('mount', ['-t', 'tmpfs', '-o', o.join(','), 'tmpfs', dir], { stdio: 'pipe' });
  mounted.add(dir);
  return {
    path: dir,
    unmount() {
      if (!mounted.has(dir)) return;
      execFileSync('umount', [dir], { stdio: 'pipe' });
      mounted.delete(dir);
    },
  };
}

/** Remounts a tmpfs read-only or read-write. */
export function remount(m: Mount, mode: 'ro' | 'rw'): void {
  execFileSync('mount', ['-o', `remount,${mode}`, m.path], { stdio: 'pipe' });
}

/** Free bytes for an unprivileged writer... and for root (tmpfs has no reserve). */
export function freeBytes(dir: string): number {
  const s = fs.statfsSync(dir);
  return s.bavail * s.bsize;
}

/** Fills `dir` with a filler file until only `leaveBytes` (rounded down to 4 KiB pages) are free. */
export function fillTo(dir: string, leaveBytes: number, name = 'filler.bin'): void {
  const p = path.join(dir, name);
  const fd = fs.openSync(p, 'a');
  try {
    const chunk = Buffer.alloc(1 << 16, 0x42);
    for (;;) {
      const free = freeBytes(dir);
      const excess = free - leaveBytes;
      if (excess <= 0) break;
      const n = Math.min(chunk.length, Math.max(4096, excess - (excess % 4096)));
      try {
        fs.writeSync(fd, chunk, 0, n);
      } catch {
        break;
      }
      if (n < 4096) break;
    }
  } finally {
    fs.closeSync(fd);
  }
}

/** Unmounts whatever a failing test left mounted (by path; process exit). */
function unmountAll(): void {
  for (const dir of [...mounted]) {
    try {
      execFileSync('umount', ['-l', dir], { stdio: 'pipe' });
    } catch {
      // already gone
    }
    mounted.delete(dir);
  }
}
process.on('exit', unmountAll);
if (typeof after === 'function') after('unmount reliability tmpfs mounts', unmountAll);

// ---------------------------------------------------------------------------------------
// Trials

/** Soak mode: AI_MEMORY_SOAK=1 runs many more trials (see the README). */
export const SOAK = process.env.AI_MEMORY_SOAK === '1';

/** A soak or an explicit trial count: tests may run for hours, not minutes. */
export const LONG = SOAK || Boolean(process.env.AI_MEMORY_SOAK_TRIALS);

/** `normal` trials, or `soak` with AI_MEMORY_SOAK=1; AI_MEMORY_SOAK_TRIALS=<n> overrides both. */
export function trialCount(normal: number, soak: number): number {
  const n = Number(process.env.AI_MEMORY_SOAK_TRIALS);
  if (Number.isInteger(n) && n > 0) return n;
  return SOAK ? soak : normal;
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/** "a: 3, b: 5" — for console summaries. */
export function tally(xs: string[]): string {
  const m = new Map<string, number>();
  for (const x of xs) m.set(x, (m.get(x) ?? 0) + 1);
  return [...m.entries()].map(([k, v]) => `${k}: ${v}`).join(', ');
}

/** A copy of a rollback-mode database caught mid-transaction: main file with uncommitted pages spilled into it + its hot -journal. */
export function makeHotJournalDb(src: string, dest: string): { committedDigest: string } {
  const committedDigest = nativeState(src).digest;
  const conn = openNative(src);
  try {
    conn.pragma('cache_size = 10'); // tiny cache: the transaction spills pages into the main file
    conn.exec('BEGIN');
    conn.exec("UPDATE memories SET content = content || ' UNCOMMITTED GARBAGE ' || hex(randomblob(64))");
    fs.copyFileSync(src, dest);
    fs.copyFileSync(`${src}-journal`, `${dest}-journal`);
    conn.exec('ROLLBACK');
  } finally {
    conn.close();
  }
  const head = fs.readFileSync(`${dest}-journal`).subarray(0, 8);
  assert.ok(head.equals(JOURNAL_MAGIC), 'fixture: the copied journal is hot (its header is live)');
  assert.notStrictEqual(sha256File(dest), sha256File(src), 'fixture: uncommitted pages reached the main file');
  return { committedDigest };
}
