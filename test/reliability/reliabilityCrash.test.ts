/**
 * Reliability 1: crash injection. The real CLI, as a separate process, is SIGKILLed at
 * random moments during backups and restores (≥ 100 trials each; many more with
 * AI_MEMORY_SOAK=1), and deterministically at every named step (AI_MEMORY_BACKUP_CRASH_AT,
 * src/core/testHooks.ts). After each kill the folder and the database are checked, then
 * the next run — without injection — must succeed and clean up after the dead one.
 * SIGTERM, at random moments and at every step (AI_MEMORY_BACKUP_CRASH_SIGNAL=SIGTERM): the
 * process itself must stop at a safe point and leave nothing behind.
 */
import * as assert from 'assert';
import { randomUUID } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { runBackup } from '../../src/core/ops/backup';
import { archivePaths, listArchived, PackStore, readIndex, rebuildArchived } from '../../src/core/store/archive';
import { createAiMemoryDb } from '../support/aiMemoryDb';
import {
  cliBundle,
  fingerprint,
  inspectBackupFolder,
  makeHotJournalDb,
  median,
  nativeState,
  nativeStateCached,
  pinFiles,
  preRestoreCopies,
  LONG,
  REPO_ROOT,
  runCliProcess,
  sha256File,
  tally,
  tempFiles,
  trialCount,
  type ProcResult,
  type RunOptions,
} from '../support/reliability';
import { reliabilityCase } from '../support/reliabilityReport';
import { openNative, type NativeDb } from '../support/sqlite';
import { Prng } from '../support/textGen';
import { makeTempDir, removeTempDir } from '../support/tmp';

const KEEP = 3;

/** Every crash point named in src/core (so a new step cannot go untested). */
function crashPointsInSource(): string[] {
  const dir = path.join(REPO_ROOT, 'src', 'core');
  const names = new Set<string>();
  const files = (fs.readdirSync(dir, { recursive: true }) as string[]).filter((n) => n.endsWith('.ts'));
  for (const f of files) {
    for (const m of fs.readFileSync(path.join(dir, f), 'utf8').matchAll(/crashPoint\('([^']+)'\)/g)) names.add(m[1]);
  }
  return [...names].sort();
}

const BACKUP_STEPS = [
  'lock:after-create',
  'backup:after-lock',
  'backup:after-stream',
  'backup:after-temp-fsync',
  'backup:after-check',
  'backup:before-manifest',
  'backup:after-manifest',
  'backup:after-publish',
  'backup:prune-between',
  'backup:after-prune',
];
const RESTORE_STEPS = [
  'restore:after-pin',
  'restore:after-temp',
  'restore:between-keeps',
  'restore:after-keep',
  'restore:consolidated-temp',
  'restore:after-consolidate',
  'restore:between-sidecars',
  'restore:after-sidecars',
  'restore:after-swap',
  'restore:after-verify',
];

/** Archiving and pruning (src/core/store/archive.ts, ops/prune.ts); restore's rebuild of an archived snapshot. */
const ARCHIVE_STEPS = [
  'archive:pack-temp',
  'archive:after-packs',
  'archive:after-base',
  'archive:after-index',
  'archive:after-manifest',
  'archive:plain-between',
  'archive:delete-between',
  'archive:gc-between',
  'archive:gc-base-between',
  'archive:repack-written',
];
const ARCHIVE_RESTORE_STEPS = ['archive:after-rebuild'];

/** Where a kill landed, from the last --progress-json line the process printed. */
function landing(r: ProcResult): string {
  if (!r.killedByUs && r.signal !== 'SIGKILL') return r.code === 0 ? 'finished first' : `exited ${r.code}`;
  return `killed in ${r.phases.at(-1) ?? 'startup'}`;
}

// ---------------------------------------------------------------------------------------
// Backup: one database that "the server" (a native connection in this process) changes
// between trials, one backup folder with --keep 3 so retention runs in most trials.

class BackupBench {
  readonly root = makeTempDir('aimb-crash-backup-');
  readonly db = path.join(this.root, 'db', 'ai-memory.db');
  readonly backups = path.join(this.root, 'backups');
  protected conn: NativeDb;
  private n = 0;

  constructor(memories = 400) {
    createAiMemoryDb(this.db, { memories, leaveWalCommits: 20 });
    this.conn = openNative(this.db, { timeout: 5000 });
    this.conn.pragma('wal_autocheckpoint = 0');
  }

  /** One committed change, like the server; now and then a checkpoint (PASSIVE, or TRUNCATE: WAL emptied). */
  mutate(): void {
    const i = ++this.n;
    const now = new Date(Date.UTC(2026, 5, 1) + i * 1000).toISOString();
    this.conn
      .prepare(`INSERT INTO memories (id, tier, namespace, title, content, tags, priority, confidence, source, access_count, created_at, updated_at, metadata)
        VALUES (?, 'mid', 'crash', ?, ?, '[]', 5, 1.0, 'mcp', 0, ?, ?, '{"agent_id":"crash-test"}')`)
      .run(randomUUID(), `trial-${i}`, `memory written before trial ${i} `.repeat(40), now, now);
    if (i % 3 === 0) this.conn.prepare("UPDATE memories SET content = content || ' (edited)', updated_at = ? WHERE rowid = ?").run(now, (i * 7) % 380 + 1);
    if (i % 10 === 0) this.conn.pragma('wal_checkpoint(PASSIVE)');
    if (i % 25 === 0) this.conn.pragma('wal_checkpoint(TRUNCATE)');
  }

  sourceHashes(): string {
    return ['', '-wal'].map((s) => (fs.existsSync(this.db + s) ? sha256File(this.db + s) : '-')).join(',');
  }

  args(json: boolean): string[] {
    return ['backup', '--db', this.db, '--to', this.backups, '--keep', String(KEEP), ...(json ? ['--json'] : []), '--progress-json'];
  }

  close(): void {
    this.conn.close();
    removeTempDir(this.root);
  }
}

/** One backup trial: a run killed (randomly or at a step), the checks, the next run, the checks. */
async function backupTrial(b: BackupBench, kill: { afterMs?: number; at?: string }): Promise<{ landed: string; problems: string[]; recoveryMs: number; recovery: ProcResult }> {
  const problems: string[] = [];
  b.mutate();
  const live = nativeState(b.db);
  const src = b.sourceHashes();
  const r = await runCliProcess(b.args(false), {
    cwd: b.root,
    killAfterMs: kill.afterMs,
    env: kill.at ? { AI_MEMORY_BACKUP_CRASH_AT: kill.at } : {},
  });
  const landed = kill.at ? `at ${kill.at}` : landing(r);
  if (kill.at && r.signal !== 'SIGKILL') problems.push(`step ${kill.at} was never reached (exit ${r.code}: ${r.stderr.trim()})`);
  if (!kill.at && !r.killedByUs && r.code !== 0) problems.push(`an uninjected backup failed (exit ${r.code}): ${r.stderr.trim()}`);
  if (b.sourceHashes() !== src) problems.push('the backup changed the live database files');
  const after = inspectBackupFolder(b.backups);
  for (const bad of after.bad) problems.push(`after the kill: ${bad}`);

  // The next run, as a scheduler would start it.
  const rec = await runCliProcess(b.args(true), { cwd: b.root });
  if (rec.code !== 0) {
    problems.push(`the next backup failed (exit ${rec.code}): ${rec.stderr.trim()}`);
    return { landed, problems, recoveryMs: rec.ms, recovery: rec };
  }
  const out = JSON.parse(rec.stdout) as { status: string; snapshot: string };
  const st = inspectBackupFolder(b.backups);
  for (const bad of st.bad) problems.push(`after the next run: ${bad}`);
  if (st.orphanManifests.length) problems.push(`orphan manifests left: ${st.orphanManifests.join(', ')}`);
  if (st.temps.length) problems.push(`temp files left: ${st.temps.join(', ')}`);
  if (st.pins.length) problems.push(`pins left: ${st.pins.join(', ')}`);
  if (st.lock) problems.push('the folder lock was left behind');
  if (st.snapshots.length > KEEP) problems.push(`${st.snapshots.length} snapshots with --keep ${KEEP}`);
  const snap = nativeState(path.join(b.backups, out.snapshot));
  if (snap.integrity !== 'ok' || snap.fts !== 'ok') problems.push(`newest snapshot ${out.snapshot}: integrity ${snap.integrity}, fts ${snap.fts}`);
  if (snap.digest !== live.digest) problems.push(`newest snapshot ${out.snapshot} (${out.status}) does not hold the live content (${snap.memories} vs ${live.memories} memories)`);
  return { landed, problems, recoveryMs: rec.ms, recovery: rec };
}

// ---------------------------------------------------------------------------------------
// Archive and prune: `backup --keep-last 6 --plain 2`, so every run archives the third
// newest snapshot and (once six are kept) deletes the oldest archived one, and the packs
// only it used are collected. Now and then a large change (most pages rewritten, or a
// VACUUM to another page size: every page new) makes packs mostly or wholly dead.

const ARCHIVE_KEEP = 6;
const ARCHIVE_PLAIN = 2;
/**
 * Random kills of `backup --keep-last 6 --plain 2` in the default run; each named step is
 * killed once besides. The long run (AI_MEMORY_CRASH_TRIALS=<n>, figures in the README's
 * Reliability section) is what shows hundreds of random kills.
 */
const ARCHIVE_TRIALS = 40;
/** The database of the archive trials: small (~0.5 MB), as every trial also rebuilds each archived snapshot twice. */
const ARCHIVE_MEMORIES = 150;

/** AI_MEMORY_CRASH_TRIALS=<n>: the archive's random kills for a long run; else `normal` (or the soak's count). */
function crashTrials(normal: number): number {
  const n = Number(process.env.AI_MEMORY_CRASH_TRIALS);
  if (Number.isInteger(n) && n > 0) return n;
  return trialCount(normal, 1000);
}

class ArchiveBench extends BackupBench {
  /** Large changes made so far (odd: the next is a VACUUM to another page size). */
  big = 0;
  archiveArgs(json: boolean): string[] {
    return ['backup', '--db', this.db, '--to', this.backups, '--keep-last', String(ARCHIVE_KEEP), '--plain', String(ARCHIVE_PLAIN), ...(json ? ['--json'] : []), '--progress-json'];
  }
  /** Rewrites most pages (every memory's content), or every page (VACUUM to another page size). */
  bigChange(): void {
    const c = this.conn;
    if (++this.big % 2 === 0) {
      c.prepare("UPDATE memories SET content = content || ' (rewritten)'").run();
    } else {
      c.pragma('wal_checkpoint(TRUNCATE)');
      c.pragma('journal_mode = DELETE');
      const size = c.pragma('page_size', { simple: true }) as number;
      c.pragma(`page_size = ${size === 4096 ? 8192 : 4096}`);
      c.exec('VACUUM');
      c.pragma('journal_mode = WAL');
    }
  }
}

/** Every snapshot of the folder, plain or archived, with the sha256 its manifest promises. */
function allSnapshots(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  const sha = (f: string) => (JSON.parse(fs.readFileSync(f, 'utf8')) as { sha256: string }).sha256;
  for (const n of fs.existsSync(dir) ? fs.readdirSync(dir) : []) {
    if (/^ai-memory-.*\.db$/.test(n) && fs.existsSync(path.join(dir, n.replace(/\.db$/, '.manifest.json')))) out.set(n, sha(path.join(dir, n.replace(/\.db$/, '.manifest.json'))));
  }
  const snaps = archivePaths(dir).snapshots;
  for (const n of fs.existsSync(snaps) ? fs.readdirSync(snaps) : []) {
    if (n.endsWith('.manifest.json') && fs.existsSync(path.join(snaps, n.replace(/\.manifest\.json$/, '.idx')))) {
      const name = n.replace(/\.manifest\.json$/, '.db');
      if (!out.has(name)) out.set(name, sha(path.join(snaps, n)));
    }
  }
  return out;
}

/** Problems with the archive: an archived snapshot that does not rebuild to its sha256, leftovers. */
async function archiveProblems(dir: string, strict: boolean): Promise<string[]> {
  const problems: string[] = [];
  const paths = archivePaths(dir);
  for (const a of await listArchived(dir)) {
    const out = path.join(dir, `..`, `rebuild-check-${process.pid}-${randomUUID()}.db`);
    try {
      const r = await rebuildArchived(dir, a.name, out);
      if (r.sha256 !== a.manifest?.sha256) problems.push(`archived ${a.name} rebuilds to ${r.sha256}, manifest ${a.manifest?.sha256}`);
    } catch (e) {
      problems.push(`archived ${a.name} does not rebuild: ${e instanceof Error ? e.message : String(e)}`);
    } finally {
      fs.rmSync(out, { force: true });
    }
  }
  if (strict) {
    for (const d of [paths.packs, paths.snapshots, paths.bases]) {
      const temps = tempFiles(d);
      if (temps.length) problems.push(`temp files left in ${path.basename(d)}/: ${temps.join(', ')}`);
    }
    const names = fs.existsSync(paths.snapshots) ? fs.readdirSync(paths.snapshots) : [];
    for (const n of names) if (n.endsWith('.idx') && !names.includes(n.replace(/\.idx$/, '.manifest.json'))) problems.push(`index without manifest left: ${n}`);
    // Every pack holds at least one page a kept snapshot uses (unused packs are collected).
    const live = new Set<string>();
    for (const a of await listArchived(dir)) {
      const idx = await readIndex(a.indexPath);
      for (let i = 0; i < idx.header.pieces; i++) live.add(idx.hashes.toString('latin1', i * 32, i * 32 + 32));
    }
    // Every base is named by a kept index (a base a dead run wrote before its index is collected).
    const named = new Set<string>();
    for (const a of await listArchived(dir)) {
      const b = fs.readFileSync(a.indexPath);
      const h = JSON.parse(b.toString('utf8', 12, 12 + b.readUInt32LE(8))) as { base?: string };
      if (h.base) named.add(`${h.base}.base`);
    }
    for (const n of fs.existsSync(paths.bases) ? fs.readdirSync(paths.bases) : []) if (n.endsWith('.base') && !named.has(n)) problems.push(`base ${n} is named by no kept index but was not collected`);
    const store = await PackStore.load(paths);
    store.packs.forEach((p, i) => {
      if (!store.keysOf(i).some((k) => live.has(k))) problems.push(`pack ${p} is used by no kept snapshot but was not collected`);
    });
    if (store.unreadable.size) problems.push(`unreadable packs: ${[...store.unreadable.keys()].join(', ')}`);
  }
  return problems;
}

/** Names lost between `before` and `after` that the policy did not drop (older than the newest ARCHIVE_KEEP of both). */
function lostKept(before: Map<string, string>, after: Map<string, string>): string[] {
  const all = [...new Set([...before.keys(), ...after.keys()])].sort().reverse();
  const keptZone = new Set(all.slice(0, ARCHIVE_KEEP));
  return [...before.keys()].filter((n) => !after.has(n) && keptZone.has(n));
}

async function archiveTrial(b: ArchiveBench, kill: { afterMs?: number; at?: string }, prepare?: () => Promise<void>): Promise<{ landed: string; problems: string[]; recovery: ProcResult }> {
  const problems: string[] = [];
  if (prepare) await prepare();
  b.mutate();
  const before = allSnapshots(b.backups);
  const src = b.sourceHashes();
  const r = await runCliProcess(b.archiveArgs(false), { cwd: b.root, killAfterMs: kill.afterMs, env: kill.at ? { AI_MEMORY_BACKUP_CRASH_AT: kill.at } : {} });
  const landed = kill.at ? `at ${kill.at}` : landing(r);
  if (kill.at && r.signal !== 'SIGKILL') problems.push(`step ${kill.at} was never reached (exit ${r.code}: ${r.stderr.trim()})`);
  if (!kill.at && !r.killedByUs && r.code !== 0) problems.push(`an uninjected backup failed (exit ${r.code}): ${r.stderr.trim()}`);
  if (b.sourceHashes() !== src) problems.push('the backup changed the live database files');
  const mid = allSnapshots(b.backups);
  for (const bad of inspectBackupFolder(b.backups).bad) problems.push(`after the kill: ${bad}`);
  for (const n of lostKept(before, mid)) problems.push(`after the kill: kept snapshot ${n} is gone`);
  for (const [n, h] of before) if (mid.has(n) && mid.get(n) !== h) problems.push(`after the kill: ${n}'s manifest changed`);
  problems.push(...(await archiveProblems(b.backups, false)).map((p) => `after the kill: ${p}`));

  const rec = await runCliProcess(b.archiveArgs(true), { cwd: b.root });
  if (rec.code !== 0) {
    problems.push(`the next backup failed (exit ${rec.code}): ${rec.stderr.trim()}`);
    return { landed, problems, recovery: rec };
  }
  const st = inspectBackupFolder(b.backups);
  for (const bad of st.bad) problems.push(`after the next run: ${bad}`);
  if (st.orphanManifests.length) problems.push(`orphan manifests left: ${st.orphanManifests.join(', ')}`);
  if (st.temps.length) problems.push(`temp files left: ${st.temps.join(', ')}`);
  if (st.lock) problems.push('the folder lock was left behind');
  if (st.snapshots.length > ARCHIVE_PLAIN) problems.push(`${st.snapshots.length} plain snapshots with --plain ${ARCHIVE_PLAIN}`);
  const after = allSnapshots(b.backups);
  if (after.size > ARCHIVE_KEEP) problems.push(`${after.size} snapshots with --keep-last ${ARCHIVE_KEEP}`);
  for (const n of lostKept(mid, after)) problems.push(`after the next run: kept snapshot ${n} is gone`);
  problems.push(...(await archiveProblems(b.backups, true)).map((p) => `after the next run: ${p}`));
  return { landed, problems, recovery: rec };
}

// ---------------------------------------------------------------------------------------
// Restore: a template database with 20 commits only in its -wal (old content) and a
// snapshot of another database (new content); each trial restores into a fresh copy.

interface RestoreTemplate {
  root: string;
  oldDb: string;
  snapshot: string;
  manifest: string;
  oldDigest: string;
  newDigest: string;
  snapshotSha: string;
  oldMainSha: string;
  oldWalSha: string;
}

function makeRestoreTemplate(): RestoreTemplate {
  const root = makeTempDir('aimb-crash-restore-tmpl-');
  const oldDb = path.join(root, 'old', 'ai-memory.db');
  createAiMemoryDb(oldDb, { memories: 300, seed: 11, leaveWalCommits: 20 });
  const newDb = path.join(root, 'new', 'ai-memory.db');
  createAiMemoryDb(newDb, { memories: 250, seed: 12 });
  return { root, oldDb, snapshot: '', manifest: '', oldDigest: nativeState(oldDb).digest, newDigest: '', snapshotSha: '', oldMainSha: sha256File(oldDb), oldWalSha: sha256File(`${oldDb}-wal`) };
}

async function finishTemplate(t: RestoreTemplate): Promise<void> {
  const r = await runBackup({ dbPath: path.join(t.root, 'new', 'ai-memory.db'), backupDir: path.join(t.root, 'backups') });
  t.snapshot = r.snapshotPath;
  t.manifest = r.manifestPath;
  t.snapshotSha = r.manifest.sha256;
  t.newDigest = nativeState(r.snapshotPath).digest;
  assert.notStrictEqual(t.newDigest, t.oldDigest);
}

async function restoreTrial(t: RestoreTemplate, kill: { afterMs?: number; at?: string }): Promise<{ landed: string; problems: string[]; content: string; recovery?: ProcResult }> {
  const problems: string[] = [];
  const root = makeTempDir('aimb-crash-restore-');
  try {
    const db = path.join(root, 'db', 'ai-memory.db');
    const backups = path.join(root, 'backups');
    fs.mkdirSync(path.dirname(db));
    fs.mkdirSync(backups);
    fs.copyFileSync(t.oldDb, db);
    fs.copyFileSync(`${t.oldDb}-wal`, `${db}-wal`);
    const snap = path.join(backups, path.basename(t.snapshot));
    fs.copyFileSync(t.snapshot, snap);
    fs.copyFileSync(t.manifest, path.join(backups, path.basename(t.manifest)));
    const args = ['restore', '--db', db, '--from', snap];

    const r = await runCliProcess([...args, '--progress-json'], {
      cwd: root,
      killAfterMs: kill.afterMs,
      env: kill.at ? { AI_MEMORY_BACKUP_CRASH_AT: kill.at } : {},
    });
    const landed = kill.at ? `at ${kill.at}` : landing(r);
    if (kill.at && r.signal !== 'SIGKILL') problems.push(`step ${kill.at} was never reached (exit ${r.code}: ${r.stderr.trim()})`);
    if (!kill.at && !r.killedByUs && r.code !== 0) problems.push(`an uninjected restore failed (exit ${r.code}): ${r.stderr.trim()}`);

    // The live database: present, intact, old or new content — never anything else.
    let content = 'missing';
    if (!fs.existsSync(db)) problems.push('the live database is missing');
    else {
      const live = nativeStateCached(db);
      if (live.integrity !== 'ok') problems.push(`live integrity_check: ${live.integrity.slice(0, 200)}`);
      if (live.fts !== 'ok') problems.push(`live FTS5 integrity-check: ${live.fts}`);
      content = live.digest === t.oldDigest ? 'old' : live.digest === t.newDigest ? 'new' : 'OTHER';
      if (content === 'OTHER') problems.push(`the live database holds neither the old nor the new content (${live.memories} memories)`);
    }
    const untouched = fs.existsSync(db) && sha256File(db) === t.oldMainSha && fs.existsSync(`${db}-wal`) && sha256File(`${db}-wal`) === t.oldWalSha;
    // Every pre-restore copy there is must be complete (main + its -wal = the old content).
    const copies = preRestoreCopies(db);
    let completeCopy = false;
    for (const c of copies) {
      const s = nativeStateCached(c);
      if (s.digest === t.oldDigest && s.integrity === 'ok') completeCopy = true;
      else problems.push(`${path.basename(c)} is not a complete copy of the old database (${s.memories} memories, integrity ${s.integrity.slice(0, 80)})`);
    }
    if (!untouched && !completeCopy) problems.push('the live files changed but no complete pre-restore copy exists');
    if (sha256File(snap) !== t.snapshotSha) problems.push('the snapshot changed');

    // The next restore, without injection.
    const rec = await runCliProcess([...args, '--json', '--progress-json'], { cwd: root });
    if (rec.code !== 0) problems.push(`the next restore failed (exit ${rec.code}): ${rec.stderr.trim()}`);
    else {
      const dbTemps = tempFiles(path.dirname(db));
      if (dbTemps.length) problems.push(`temp files left beside the database: ${dbTemps.join(', ')}`);
      const bTemps = tempFiles(backups);
      if (bTemps.length) problems.push(`temp files left in the backup folder: ${bTemps.join(', ')}`);
      const pins = pinFiles(backups);
      if (pins.length) problems.push(`stale pins left in the backup folder: ${pins.join(', ')}`);
      if (sha256File(db) !== t.snapshotSha) problems.push('after the next restore the database is not the snapshot');
      if (fs.existsSync(`${db}-wal`) || fs.existsSync(`${db}-shm`)) problems.push('a -wal/-shm beside the restored database');
      if (!preRestoreCopies(db).some((c) => nativeStateCached(c).digest === t.oldDigest)) problems.push('the old content is lost: no pre-restore copy holds it');
    }
    return { landed, problems, content, recovery: rec };
  } finally {
    removeTempDir(root);
  }
}

// ---------------------------------------------------------------------------------------

// ---------------------------------------------------------------------------------------
// SIGTERM (what a service manager, Ctrl-C or the extension's Cancel sends): the process must
// stop at a safe point and clean up by itself — no next run needed.

/**
 * How a run that got SIGTERM ended; anything else is a problem. `done` says whether its
 * output is the complete result: a signal landing while Node tears the finished process
 * down (its handlers already gone) ends it with the default action, after the work is done.
 */
function termOutcome(r: ProcResult, problems: string[], done: boolean): 'finished' | 'cancelled' | 'before start-up' {
  if (r.signal === 'SIGTERM' && r.phases.length === 0) return 'before start-up'; // Node's default action, before cli.ts ran
  if (r.signal === 'SIGTERM' && done) return 'finished';
  if (r.signal) problems.push(`died of ${r.signal} after it started (phases ${r.phases.join(' > ')})`);
  else if (r.code === 0) return 'finished';
  else if (r.code === 1 && /cancelled/i.test(r.stderr)) return 'cancelled';
  else problems.push(`exit ${r.code}: ${r.stderr.trim()}`);
  return 'cancelled';
}

/** SIGTERM after `afterMs`, or sent by the process to itself at step `at` (AI_MEMORY_BACKUP_CRASH_SIGNAL). */
type Term = { afterMs: number } | { at: string };
const termRun = (t: Term): Pick<RunOptions, 'killAfterMs' | 'killSignal' | 'env'> =>
  'at' in t ? { env: { AI_MEMORY_BACKUP_CRASH_AT: t.at, AI_MEMORY_BACKUP_CRASH_SIGNAL: 'SIGTERM' } } : { killAfterMs: t.afterMs, killSignal: 'SIGTERM' };

async function backupTermTrial(b: BackupBench, term: Term): Promise<{ outcome: string; problems: string[]; run: ProcResult }> {
  const problems: string[] = [];
  b.mutate();
  const live = nativeState(b.db);
  const src = b.sourceHashes();
  const r = await runCliProcess(b.args(true), { cwd: b.root, ...termRun(term) });
  const outcome = termOutcome(r, problems, /^\{"status":"(created|unchanged)"/.test(r.stdout) && r.stdout.endsWith('}\n'));
  if (b.sourceHashes() !== src) problems.push('the backup changed the live database files');
  const st = inspectBackupFolder(b.backups);
  for (const bad of st.bad) problems.push(bad);
  if (st.temps.length) problems.push(`temp files left by the process itself: ${st.temps.join(', ')}`);
  if (st.orphanManifests.length) problems.push(`orphan manifests left: ${st.orphanManifests.join(', ')}`);
  if (st.lock) problems.push('the lock was not released');
  if (outcome === 'finished') {
    const out = JSON.parse(r.stdout) as { snapshot: string };
    if (nativeState(path.join(b.backups, out.snapshot)).digest !== live.digest) problems.push('the finished backup does not hold the live content');
  }
  return { outcome, problems, run: r };
}

async function restoreTermTrial(t: RestoreTemplate, term: Term): Promise<{ outcome: string; problems: string[]; run: ProcResult }> {
  const problems: string[] = [];
  const root = makeTempDir('aimb-term-restore-');
  try {
    const dbDir = path.join(root, 'db');
    const db = path.join(dbDir, 'ai-memory.db');
    const backups = path.join(root, 'backups');
    fs.mkdirSync(dbDir);
    fs.mkdirSync(backups);
    fs.copyFileSync(t.oldDb, db);
    fs.copyFileSync(`${t.oldDb}-wal`, `${db}-wal`);
    const snap = path.join(backups, path.basename(t.snapshot));
    fs.copyFileSync(t.snapshot, snap);
    fs.copyFileSync(t.manifest, path.join(backups, path.basename(t.manifest)));
    const dbBefore = fingerprint(dbDir);
    const backupsBefore = fingerprint(backups);
    const r = await runCliProcess(['restore', '--db', db, '--from', snap, '--progress-json'], { cwd: root, ...termRun(term) });
    const outcome = termOutcome(r, problems, /^Checked : /m.test(r.stdout));
    if (outcome === 'finished') {
      if (sha256File(db) !== t.snapshotSha) problems.push('finished, but the database is not the snapshot');
      if (fs.existsSync(`${db}-wal`) || fs.existsSync(`${db}-shm`)) problems.push('a -wal/-shm beside the restored database');
      if (!preRestoreCopies(db).some((c) => nativeStateCached(c).digest === t.oldDigest)) problems.push('the old content is not in a pre-restore copy');
      if (tempFiles(dbDir).length) problems.push(`temp files left: ${tempFiles(dbDir).join(', ')}`);
    } else {
      // Cancelled (or stopped before it began): nothing changed at all beside the database.
      const now = fingerprint(dbDir);
      if (JSON.stringify(now) !== JSON.stringify(dbBefore)) problems.push(`cancelled, but the database folder changed: ${Object.keys(now).filter((k) => now[k] !== dbBefore[k]).concat(Object.keys(dbBefore).filter((k) => !(k in now))).join(', ')}`);
    }
    if (JSON.stringify(fingerprint(backups)) !== JSON.stringify(backupsBefore)) problems.push('the backup folder changed (a pin or temp left behind?)');
    return { outcome, problems, run: r };
  } finally {
    removeTempDir(root);
  }
}

/**
 * How long an uninjected run takes and when its late part begins, from the most recent
 * uninjected runs (every trial's second run is one): the kill delays follow the machine's
 * load as it changes.
 */
class RunTiming {
  private runs: { ms: number; late: number }[] = [];
  constructor(private readonly latePhase: string) {}
  add(r: ProcResult | undefined): void {
    if (!r || r.code !== 0) return;
    this.runs.push({ ms: r.ms, late: r.phaseAt[this.latePhase] ?? r.ms / 2 });
    if (this.runs.length > 9) this.runs.shift();
  }
  get duration(): number {
    return median(this.runs.map((x) => x.ms));
  }
  get late(): number {
    return median(this.runs.map((x) => x.late));
  }
  /** Even trials: anywhere in the run; odd trials: in its late part. */
  delay(i: number, rng: Prng): number {
    const from = i % 2 ? this.late : 0;
    return from + rng.next() * (this.duration * 1.1 - from);
  }
}

/** Trials run in this many independent lanes at once (2 cores: a lane mostly waits on its child process). */
const LANES = 2;

/** Runs `trial(i, lane)` for i in 0..n-1 over LANES lanes (lane k takes i ≡ k mod LANES, in order). */
async function inLanes<T>(n: number, trial: (i: number, lane: number) => Promise<T>): Promise<T[]> {
  const out: T[] = new Array<T>(n);
  await Promise.all(
    Array.from({ length: LANES }, async (_, lane) => {
      for (let i = lane; i < n; i += LANES) out[i] = await trial(i, lane);
    }),
  );
  return out;
}

/**
 * `trials` runs over the lanes, trial i killed after a random delay (`timing`, seeded per
 * lane from `seed`): asserts that none had a problem (each named with its trial and where its
 * kill landed) and that at least 40 % were really killed mid-run. `also` adds to the tally
 * printed before the assertions.
 */
async function randomKills<T extends { landed: string; problems: string[]; recovery?: ProcResult }>(
  trials: number,
  seed: number,
  timing: RunTiming,
  trial: (i: number, lane: number, afterMs: number) => Promise<T>,
  also?: (results: T[]) => string,
): Promise<string> {
  const rngs = Array.from({ length: LANES }, (_, k) => new Prng(seed + k));
  const failures: string[] = [];
  const results = await inLanes(trials, async (i, lane) => {
    const afterMs = timing.delay(i, rngs[lane]);
    const r = await trial(i, lane, afterMs);
    timing.add(r.recovery);
    for (const p of r.problems) failures.push(`trial ${i} (kill after ${afterMs.toFixed(0)} ms, ${r.landed}): ${p}`);
    return r;
  });
  const landings = results.map((r) => r.landed);
  const killed = landings.filter((l) => l.startsWith('killed')).length;
  console.log(`      ${tally(landings)}${also ? `; ${also(results)}` : ''}`);
  assert.deepStrictEqual(failures, []);
  assert.ok(killed >= trials * 0.4, `most runs were really killed (${killed})`);
  return `${trials} trials: ${trials} ok`;
}

describe('reliability 1: crash injection (SIGKILL and SIGTERM of the CLI process)', function () {
  this.timeout(LONG ? 4 * 3600_000 : 600_000);
  const backupTrials = trialCount(100, 1000);
  const restoreTrials = trialCount(100, 1000);
  const termTrials = trialCount(30, 200);

  before(async () => {
    await cliBundle();
  });

  it('tests every crash point named in src/core', () => {
    assert.deepStrictEqual(crashPointsInSource(), [...BACKUP_STEPS, ...RESTORE_STEPS, ...ARCHIVE_STEPS, ...ARCHIVE_RESTORE_STEPS].sort());
  });

  describe('backup', () => {
    const benches: BackupBench[] = [];
    const timing = new RunTiming('checking');
    before(async () => {
      for (let k = 0; k < LANES; k++) benches.push(new BackupBench());
      // Measured the way the trials run: all lanes at once.
      const runs = (
        await inLanes(3 * LANES, async (_i, lane) => {
          benches[lane].mutate();
          return runCliProcess(benches[lane].args(false), { cwd: benches[lane].root });
        })
      );
      for (const r of runs) assert.strictEqual(r.code, 0, r.stderr);
      for (const r of runs) timing.add(r);
      const b = benches[0];
      console.log(`      an uninjected backup takes ${timing.duration.toFixed(0)} ms, checking from ${timing.late.toFixed(0)} ms (database ${(fs.statSync(b.db).size / 1e6).toFixed(1)} MB + -wal ${(fs.statSync(`${b.db}-wal`).size / 1e6).toFixed(1)} MB; ${LANES} lanes)`);
    });
    after(() => {
      for (const b of benches) b.close();
    });

    reliabilityCase(
      'crash',
      `backup: ${backupTrials} SIGKILLs at random moments`,
      {
        done: `${backupTrials} backups (\`backup --keep ${KEEP}\`, ${LANES} independent lanes at once) of a ~2.4 MB ai-memory database with a live -wal, changed by a native connection before each trial (checkpointed now and then); each killed after a random delay (seeded): half spread over the whole duration of an uninjected run (measured continuously: each trial's second run is one), half over its second part (check, publish, retention); then the next backup run normally`,
        checked: 'at least 40% of the runs really killed mid-run (the others finished first; where each kill landed is printed); the live database files byte-identical; every file under a final snapshot name matches its manifest (size, sha256); the next run exits 0 and leaves no temp file, orphan manifest, lock or pin, at most 3 snapshots, and its newest snapshot passes native integrity_check + FTS5 check and holds exactly the live content',
      },
      () => randomKills(backupTrials, 20261124, timing, (_i, lane, afterMs) => backupTrial(benches[lane], { afterMs })),
    );

    reliabilityCase(
      'crash',
      `backup: ${termTrials} SIGTERMs at random moments`,
      {
        done: `${termTrials} backups sent SIGTERM (what Ctrl-C, a service manager or the extension's Cancel sends) after a random delay, as for the kills; no next run`,
        checked: 'the process exits by itself: 0 (finished; its snapshot holds the live content) or 1 "cancelled"; it has removed its own temp files and released the lock; no orphan manifest; every snapshot matches its manifest; the live database byte-identical',
      },
      async () => {
        const rngs = benches.map((_, k) => new Prng(20261200 + k));
        const failures: string[] = [];
        const outcomes = await inLanes(termTrials, async (i, lane) => {
          const afterMs = timing.delay(i, rngs[lane]);
          const t = await backupTermTrial(benches[lane], { afterMs });
          timing.add(t.outcome === 'finished' ? t.run : undefined);
          for (const p of t.problems) failures.push(`trial ${i} (SIGTERM after ${afterMs.toFixed(0)} ms, ${t.outcome}): ${p}`);
          return t.outcome;
        });
        console.log(`      ${tally(outcomes)}`);
        assert.deepStrictEqual(failures, []);
        return `${termTrials} trials: ${termTrials} ok (each finished or cancelled cleanly)`;
      },
    );

    reliabilityCase(
      'crash',
      'backup: SIGTERM at each named step',
      {
        done: `\`AI_MEMORY_BACKUP_CRASH_AT=<step> AI_MEMORY_BACKUP_CRASH_SIGNAL=SIGTERM\`: the process signals itself at each of the ${BACKUP_STEPS.length} backup steps`,
        checked: 'as for the random SIGTERMs; and it stops at the next safe point: cancelled when the signal comes before publishing (up to and including the integrity check), finished once the manifest is being written',
      },
      async () => {
        const publishFrom = BACKUP_STEPS.indexOf('backup:before-manifest');
        const out = await inLanes(BACKUP_STEPS.length, async (i, lane) => {
          const t = await backupTermTrial(benches[lane], { at: BACKUP_STEPS[i] });
          const want = i < publishFrom ? 'cancelled' : 'finished';
          if (t.outcome !== want) t.problems.push(`${t.outcome}, expected ${want}`);
          return { step: BACKUP_STEPS[i], ...t };
        });
        assert.deepStrictEqual(out.flatMap((o) => o.problems.map((p) => `${o.step}: ${p}`)), []);
        return `cancelled at ${out.filter((o) => o.outcome === 'cancelled').length} steps (up to backup:after-check), finished at ${out.filter((o) => o.outcome === 'finished').length} (from backup:before-manifest); all clean`;
      },
    );

    // The deterministic kills run in lanes too (in a hook); each step is then its own case.
    let stepResults: Map<string, Promise<Awaited<ReturnType<typeof backupTrial>>>> | undefined;
    const stepResult = (step: string) => {
      if (!stepResults) {
        const all = inLanes(BACKUP_STEPS.length, (i, lane) => backupTrial(benches[lane], { at: BACKUP_STEPS[i] }));
        all.catch(() => undefined);
        stepResults = new Map(BACKUP_STEPS.map((st, i) => [st, all.then((r) => r[i])]));
      }
      return stepResults.get(step) as Promise<Awaited<ReturnType<typeof backupTrial>>>;
    };
    for (const step of BACKUP_STEPS) {
      reliabilityCase(
        'crash',
        `backup: SIGKILL at ${step}`,
        {
          done: `\`AI_MEMORY_BACKUP_CRASH_AT=${step}\` on a backup with new content (retention due), then the next backup`,
          checked: 'the process died at that step; same checks as the random kills' + (step === 'lock:after-create' ? '; the next backup does not wait for the dead lock (< 5 s)' : ''),
        },
        async () => {
          const t = await stepResult(step);
          assert.deepStrictEqual(t.problems, []);
          if (step === 'lock:after-create') assert.ok(t.recoveryMs < 5000, `the next backup took ${t.recoveryMs.toFixed(0)} ms (waited for a dead lock)`);
          return 'killed at the step; folder valid; next run clean';
        },
      );
    }
  });

  describe('restore', () => {
    let t: RestoreTemplate;
    const timing = new RunTiming('placing');
    before(async () => {
      t = makeRestoreTemplate();
      await finishTemplate(t);
      for (const r of await inLanes(LANES, () => restoreTrial(t, {}))) {
        assert.deepStrictEqual(r.problems, []);
        assert.strictEqual(r.content, 'new');
      }
      // The duration of one uninjected restore run, all lanes at once (apart from the trial's checks).
      const root = makeTempDir('aimb-crash-restore-measure-');
      try {
        const runs = await inLanes(3 * LANES, async (i) => {
          const db = path.join(root, `m${i}`, 'ai-memory.db');
          fs.mkdirSync(path.dirname(db));
          fs.copyFileSync(t.oldDb, db);
          fs.copyFileSync(`${t.oldDb}-wal`, `${db}-wal`);
          return runCliProcess(['restore', '--db', db, '--from', t.snapshot, '--progress-json'], { cwd: root });
        });
        for (const r of runs) assert.strictEqual(r.code, 0, r.stderr);
        for (const r of runs) timing.add(r);
      } finally {
        removeTempDir(root);
      }
      console.log(`      an uninjected restore takes ${timing.duration.toFixed(0)} ms, placing from ${timing.late.toFixed(0)} ms (old: 300 memories + 20 commits in the -wal; snapshot: 250 memories; ${LANES} lanes)`);
    });
    after(() => {
      if (t) removeTempDir(t.root);
    });

    reliabilityCase(
      'crash',
      `restore: ${restoreTrials} SIGKILLs at random moments`,
      {
        done: `${restoreTrials} restores (${LANES} lanes at once, each into its own folder) of a snapshot (250 memories) over a database whose -wal holds 20 committed transactions (so the old WAL is folded in first), each killed after a random delay (seeded): half spread over the whole duration of an uninjected run, half over its placing part (temp, keep, fold, swap); then the same restore run normally`,
        checked: 'at least 40% of the runs really killed mid-run; the live database present, native integrity_check + FTS5 check ok, content = old (incl. WAL commits) or new; whenever the live files changed, a pre-restore copy (+ its -wal) holds the old content, and every pre-restore copy present is complete; the snapshot untouched; the next restore exits 0, leaves no temp file or pin, places the exact snapshot bytes with no -wal/-shm beside, and the old content is still in a pre-restore copy',
      },
      () =>
        randomKills(
          restoreTrials,
          20261125,
          timing,
          (_i, _lane, afterMs) => restoreTrial(t, { afterMs }),
          (results) => `live content after the kill: ${tally(results.map((r) => r.content))}`,
        ),
    );

    reliabilityCase(
      'crash',
      `restore: ${termTrials} SIGTERMs at random moments`,
      {
        done: `${termTrials} restores (over a database with WAL commits) sent SIGTERM after a random delay, as for the kills; no next run`,
        checked: 'the process exits by itself: 0 (finished: the exact snapshot in place, no -wal/-shm beside, the old content in a pre-restore copy, no temp) or 1 "cancelled" with the database folder byte-identical (no temp, no pre-restore link left); the backup folder byte-identical (its pin removed)',
      },
      async () => {
        const rngs = Array.from({ length: LANES }, (_, k) => new Prng(20261300 + k));
        const failures: string[] = [];
        const outcomes = await inLanes(termTrials, async (i, lane) => {
          const afterMs = timing.delay(i, rngs[lane]);
          const r = await restoreTermTrial(t, { afterMs });
          for (const p of r.problems) failures.push(`trial ${i} (SIGTERM after ${afterMs.toFixed(0)} ms, ${r.outcome}): ${p}`);
          return r.outcome;
        });
        console.log(`      ${tally(outcomes)}`);
        assert.deepStrictEqual(failures, []);
        return `${termTrials} trials: ${termTrials} ok (each finished or cancelled cleanly)`;
      },
    );

    reliabilityCase(
      'crash',
      'restore: SIGTERM at each named step',
      {
        done: `\`AI_MEMORY_BACKUP_CRASH_AT=<step> AI_MEMORY_BACKUP_CRASH_SIGNAL=SIGTERM\`: the process signals itself at each of the ${RESTORE_STEPS.length} restore steps`,
        checked: 'as for the random SIGTERMs: cancelled with the database folder byte-identical while nothing has been placed yet (up to and including restore:after-temp), finished from the first kept copy on (exact snapshot, old content kept aside); never anything in between',
      },
      async () => {
        const placingFrom = RESTORE_STEPS.indexOf('restore:between-keeps');
        const out = await inLanes(RESTORE_STEPS.length, async (i) => {
          const r = await restoreTermTrial(t, { at: RESTORE_STEPS[i] });
          const want = i < placingFrom ? 'cancelled' : 'finished';
          if (r.outcome !== want) r.problems.push(`${r.outcome}, expected ${want}`);
          return { step: RESTORE_STEPS[i], ...r };
        });
        assert.deepStrictEqual(out.flatMap((o) => o.problems.map((p) => `${o.step}: ${p}`)), []);
        const cancelled = out.filter((o) => o.outcome === 'cancelled').map((o) => o.step.replace('restore:', ''));
        return `cancelled at ${cancelled.join(', ')}; finished at the other ${out.length - cancelled.length} (from between-keeps); all clean`;
      },
    );

    let stepResults: Map<string, Promise<Awaited<ReturnType<typeof restoreTrial>>>> | undefined;
    const stepResult = (step: string) => {
      if (!stepResults) {
        const all = inLanes(RESTORE_STEPS.length, (i) => restoreTrial(t, { at: RESTORE_STEPS[i] }));
        all.catch(() => undefined);
        stepResults = new Map(RESTORE_STEPS.map((st, i) => [st, all.then((r) => r[i])]));
      }
      return stepResults.get(step) as Promise<Awaited<ReturnType<typeof restoreTrial>>>;
    };
    for (const step of RESTORE_STEPS) {
      reliabilityCase(
        'crash',
        `restore: SIGKILL at ${step}`,
        {
          done: `\`AI_MEMORY_BACKUP_CRASH_AT=${step}\` on a restore over a database with WAL commits, then the same restore again`,
          checked: 'the process died at that step; same checks as the random kills',
        },
        async () => {
          const r = await stepResult(step);
          assert.deepStrictEqual(r.problems, []);
          return `killed at the step; live database ${r.content === 'old' ? 'old (complete)' : 'new, old kept aside'}; next run clean`;
        },
      );
    }
  });

  // A damaged database and its sidecars: a hot -journal (a writer crashed mid-transaction),
  // or a 0-byte main file beside a -wal. Restore keeps the whole set aside as it is and
  // removes every sidecar before the swap (dbFiles.ts SIDECARS), so at every step the old
  // set is either still in place or complete under its pre-restore name, and the placed
  // snapshot never has an old -journal or -wal beside it.
  describe('restore over a damaged database (the whole sidecar set)', () => {
    let root: string;
    let snapshot: string;
    let manifest: string;
    let snapshotSha: string;
    const variants: { name: string; dir: string; files: Record<string, string> }[] = [];
    before(async () => {
      root = makeTempDir('aimb-crash-damaged-');
      const newDb = path.join(root, 'new', 'ai-memory.db');
      createAiMemoryDb(newDb, { memories: 150, seed: 21 });
      const r = await runBackup({ dbPath: newDb, backupDir: path.join(root, 'backups') });
      snapshot = r.snapshotPath;
      manifest = r.manifestPath;
      snapshotSha = r.manifest.sha256;
      // (a) a rollback-mode database copied mid-transaction: uncommitted pages in the main file, a hot -journal.
      const hot = path.join(root, 'tmpl-hot', 'ai-memory.db');
      const src = path.join(root, 'src', 'rollback.db');
      createAiMemoryDb(src, { memories: 200, walMode: false });
      fs.mkdirSync(path.dirname(hot));
      makeHotJournalDb(src, hot);
      // (b) a 0-byte main file beside a -wal of 20 commits.
      const empty = path.join(root, 'tmpl-empty', 'ai-memory.db');
      createAiMemoryDb(empty, { memories: 60, leaveWalCommits: 20 });
      fs.writeFileSync(empty, '');
      for (const [name, db] of [['a database with a hot -journal', hot], ['a 0-byte database with a -wal', empty]] as const) {
        const files: Record<string, string> = {};
        for (const sfx of ['', '-wal', '-shm', '-journal']) if (fs.existsSync(db + sfx)) files[sfx] = sha256File(db + sfx);
        variants.push({ name, dir: path.dirname(db), files });
      }
    });
    after(() => removeTempDir(root));

    async function damagedTrial(v: (typeof variants)[number], at: string): Promise<string[]> {
      const problems: string[] = [];
      const dir = makeTempDir('aimb-crash-damaged-run-');
      try {
        const db = path.join(dir, 'db', 'ai-memory.db');
        fs.mkdirSync(path.dirname(db));
        for (const sfx of Object.keys(v.files)) fs.copyFileSync(path.join(v.dir, 'ai-memory.db') + sfx, db + sfx);
        const snap = path.join(dir, path.basename(snapshot));
        fs.copyFileSync(snapshot, snap);
        fs.copyFileSync(manifest, path.join(dir, path.basename(manifest)));
        const args = ['restore', '--db', db, '--from', snap];
        const r = await runCliProcess(args, { cwd: dir, env: { AI_MEMORY_BACKUP_CRASH_AT: at } });
        // No consolidation for a damaged database: those two steps are never reached.
        const reachable = at !== 'restore:consolidated-temp' && at !== 'restore:after-consolidate';
        if (reachable && r.signal !== 'SIGKILL') problems.push(`step never reached (exit ${r.code}: ${r.stderr.trim()})`);
        if (!reachable && r.code !== 0) problems.push(`the restore failed (exit ${r.code}): ${r.stderr.trim()}`);
        const sha = (p: string) => (fs.existsSync(p) ? sha256File(p) : undefined);
        const setAt = (base: string) => ['', '-wal', '-shm', '-journal'].every((sfx) => sha(base + sfx) === v.files[sfx]);
        const checkState = (when: string) => {
          if (!fs.existsSync(db)) problems.push(`${when}: the database path is empty`);
          const live = sha(db);
          if (live === snapshotSha && (fs.existsSync(`${db}-journal`) || fs.existsSync(`${db}-wal`))) problems.push(`${when}: the placed snapshot has an old -journal/-wal beside it`);
          const complete = preRestoreCopies(db).some((c) => setAt(c));
          if (!setAt(db) && !complete) problems.push(`${when}: the live files changed but no pre-restore copy holds the whole old set`);
          if (live !== snapshotSha && !setAt(db) && live !== v.files['']) problems.push(`${when}: the live database is neither the old file nor the snapshot`);
        };
        checkState('after the kill');
        const rec = await runCliProcess(args, { cwd: dir });
        if (rec.code !== 0) problems.push(`the next restore failed (exit ${rec.code}): ${rec.stderr.trim()}`);
        else {
          checkState('after the next restore');
          if (sha(db) !== snapshotSha) problems.push('after the next restore the database is not the snapshot');
          for (const sfx of ['-wal', '-shm', '-journal']) if (fs.existsSync(db + sfx)) problems.push(`a ${sfx} beside the restored database`);
          if (!preRestoreCopies(db).some((c) => setAt(c))) problems.push('the old set is lost');
          const temps = tempFiles(path.dirname(db));
          if (temps.length) problems.push(`temp files left: ${temps.join(', ')}`);
          if (nativeState(db).integrity !== 'ok') problems.push('the restored database fails integrity_check');
        }
      } finally {
        removeTempDir(dir);
      }
      return problems;
    }

    for (const [k, name] of ['a database with a hot -journal', 'a 0-byte database with a -wal'].entries()) {
      reliabilityCase(
        'crash',
        `restore over ${name}: SIGKILL at each named step`,
        {
          done: `${k === 0 ? 'a rollback-mode database copied mid-transaction (uncommitted pages in the main file, its hot -journal)' : 'a 0-byte main file beside its -wal of 20 commits'}; \`AI_MEMORY_BACKUP_CRASH_AT=<step>\` at each of the ${RESTORE_STEPS.length} restore steps (the two consolidation steps are not reached: a damaged database is never folded), then the same restore again`,
          checked: 'after every kill: the database path is never empty; the placed snapshot never has an old -journal or -wal beside it; the old set (main + every sidecar, byte for byte) is either still in place or complete under a pre-restore name. After the next restore: the snapshot in place, no sidecar, no temp file, native integrity_check ok, the old set kept',
        },
        async () => {
          const v = variants[k];
          const out = await inLanes(RESTORE_STEPS.length, async (i) => ({ step: RESTORE_STEPS[i], problems: await damagedTrial(v, RESTORE_STEPS[i]) }));
          assert.deepStrictEqual(out.flatMap((o) => o.problems.map((p) => `${o.step}: ${p}`)), []);
          return `${RESTORE_STEPS.length} steps: the old set complete at every one; next run clean`;
        },
      );
    }
  });

  describe('archive and prune', function () {
    // Each trial is two CLI runs plus a rebuild of every archived snapshot twice (~2 s a trial
    // per lane on 2 busy cores). The default run covers every named archive step once and
    // ARCHIVE_TRIALS random kills; AI_MEMORY_CRASH_TRIALS=<n> (or a soak) runs many more.
    const archiveTrials = crashTrials(ARCHIVE_TRIALS);
    this.timeout(LONG || archiveTrials > ARCHIVE_TRIALS ? 4 * 3600_000 : 900_000);
    const benches: ArchiveBench[] = [];
    const timing = new RunTiming('pruning');
    before(async () => {
      for (let k = 0; k < LANES; k++) benches.push(new ArchiveBench(ARCHIVE_MEMORIES));
      // Fill each folder: six kept, four of them archived.
      const runs = await inLanes((ARCHIVE_KEEP + 1) * LANES, async (_i, lane) => {
        benches[lane].mutate();
        return runCliProcess(benches[lane].archiveArgs(false), { cwd: benches[lane].root });
      });
      for (const r of runs) assert.strictEqual(r.code, 0, r.stderr);
      for (const r of runs.slice(-2 * LANES)) timing.add(r);
      console.log(`      an uninjected backup + archive + prune takes ${timing.duration.toFixed(0)} ms, archiving from ${timing.late.toFixed(0)} ms (${LANES} lanes)`);
    });
    after(() => {
      for (const b of benches) b.close();
    });

    reliabilityCase(
      'crash',
      `archive and prune: ${archiveTrials} SIGKILLs at random moments`,
      {
        done: `${archiveTrials} runs of \`backup --keep-last ${ARCHIVE_KEEP} --plain ${ARCHIVE_PLAIN}\` (${LANES} lanes), each archiving the third-newest snapshot into the page-dedup archive, deleting the oldest archived one and collecting its packs; every 10th trial after a large change (every memory rewritten, or a VACUUM to another page size) so packs die or are repacked; each killed after a random delay (half over the whole run, half from its archiving part); then the next run normally`,
        checked: 'at least 40% really killed mid-run; after the kill and after the next run: no snapshot the policy keeps is lost, every plain snapshot matches its manifest, every archived snapshot rebuilds (page hashes, whole-file sha256) to its manifest\'s sha256, manifests unchanged; the live database byte-identical; after the next run no temp file, index without manifest, unreferenced pack or base, orphan manifest or lock, at most 2 plain and 6 snapshots',
      },
      () =>
        randomKills(archiveTrials, 20261129, timing, (i, lane, afterMs) =>
          archiveTrial(benches[lane], { afterMs }, i % 10 === 9 ? async () => benches[lane].bigChange() : undefined),
        ),
    );

    /** What each step needs to be reached: gc and repack need packs that died. */
    const prepareFor = (step: string, b: ArchiveBench) => async () => {
      if (step === 'archive:after-base') {
        // A new base: the snapshot the trial archives is the first after a VACUUM to another page size (every page new).
        const run = async () => {
          b.mutate();
          const r = await runCliProcess(b.archiveArgs(false), { cwd: b.root });
          assert.strictEqual(r.code, 0, r.stderr);
        };
        if (b.big % 2 !== 0) {
          b.bigChange();
          await run();
        }
        b.bigChange();
        await run();
        await run();
        return;
      }
      if (step !== 'archive:gc-between' && step !== 'archive:gc-base-between' && step !== 'archive:repack-written') return;
      // gc: a VACUUM to another page size (every page new): the packs of the snapshots before it
      // die wholly. repack: a rewrite of every memory (most pages new): they die mostly.
      // Each after a snapshot of the state before (so that state's pages are in packs), then
      // enough runs that every snapshot from before it is deleted.
      const wantVacuum = step === 'archive:gc-between' || step === 'archive:gc-base-between';
      const nextIsVacuum = b.big % 2 === 0;
      const run = async () => {
        b.mutate();
        const r = await runCliProcess(b.archiveArgs(false), { cwd: b.root });
        assert.strictEqual(r.code, 0, r.stderr);
      };
      if (nextIsVacuum !== wantVacuum) {
        b.bigChange();
        await run();
      }
      b.bigChange();
      for (let i = 0; i < ARCHIVE_KEEP - 1; i++) await run();
    };
    let stepResults: Map<string, Promise<Awaited<ReturnType<typeof archiveTrial>>>> | undefined;
    const stepResult = (step: string) => {
      if (!stepResults) {
        const all = inLanes(ARCHIVE_STEPS.length, (i, lane) => archiveTrial(benches[lane], { at: ARCHIVE_STEPS[i] }, prepareFor(ARCHIVE_STEPS[i], benches[lane])));
        all.catch(() => undefined);
        stepResults = new Map(ARCHIVE_STEPS.map((st, i) => [st, all.then((r) => r[i])]));
      }
      return stepResults.get(step) as Promise<Awaited<ReturnType<typeof archiveTrial>>>;
    };
    for (const step of ARCHIVE_STEPS) {
      reliabilityCase(
        'crash',
        `archive: SIGKILL at ${step}`,
        {
          done: `\`AI_MEMORY_BACKUP_CRASH_AT=${step}\` on \`backup --keep-last ${ARCHIVE_KEEP} --plain ${ARCHIVE_PLAIN}\`${step === 'archive:gc-between' || step === 'archive:gc-base-between' || step === 'archive:repack-written' ? ' after a large change and enough runs that packs (and bases) die' : step === 'archive:after-base' ? ' when the snapshot archived is the first after a VACUUM to another page size (a new base is written)' : ''}, then the next run`,
          checked: 'the process died at that step; same checks as the random kills',
        },
        async () => {
          const t = await stepResult(step);
          assert.deepStrictEqual(t.problems, []);
          return 'killed at the step; every kept snapshot rebuilds; next run clean';
        },
      );
    }

    reliabilityCase(
      'crash',
      'archive: SIGKILL at archive:after-rebuild (restore of an archived snapshot)',
      {
        done: '`AI_MEMORY_BACKUP_CRASH_AT=archive:after-rebuild` on `restore --from <archived snapshot>` (killed with the rebuilt copy beside the database and the pin in the backup folder), then the same restore again',
        checked: 'the database untouched by the killed run; the archive unchanged and every archived snapshot rebuilds; the next restore places exactly the archived snapshot\'s bytes and removes the dead run\'s temp file and pin',
      },
      async () => {
        const b = benches[0];
        const archived = await listArchived(b.backups);
        assert.ok(archived.length > 0, 'an archived snapshot to restore');
        const target = archived[archived.length - 1];
        const db = path.join(b.root, 'restore-target', 'ai-memory.db');
        fs.mkdirSync(path.dirname(db), { recursive: true });
        createAiMemoryDb(db, { memories: 10 });
        const before = sha256File(db);
        const args = ['restore', '--db', db, '--from', path.join(b.backups, target.name)];
        const r = await runCliProcess([...args, '--progress-json'], { cwd: b.root, env: { AI_MEMORY_BACKUP_CRASH_AT: 'archive:after-rebuild' } });
        assert.strictEqual(r.signal, 'SIGKILL', r.stderr);
        assert.strictEqual(tempFiles(path.dirname(db)).length, 1, 'the killed run left its rebuilt copy beside the database');
        assert.strictEqual(sha256File(db), before);
        assert.deepStrictEqual(await archiveProblems(b.backups, false), []);
        const rec = await runCliProcess([...args, '--json'], { cwd: b.root });
        assert.strictEqual(rec.code, 0, rec.stderr);
        assert.strictEqual(sha256File(db), target.manifest?.sha256);
        assert.deepStrictEqual(tempFiles(b.backups), []);
        assert.deepStrictEqual(tempFiles(path.dirname(db)), []);
        assert.deepStrictEqual(pinFiles(b.backups), []);
        return 'killed with the rebuilt copy beside the database; database untouched; the next restore is exact and cleans up';
      },
    );
  });
});
