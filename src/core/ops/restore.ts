/**
 * `restore`: put a snapshot in place of the live database without ever losing what was
 * there.
 *
 * Everything is checked before anything is touched: the snapshot's manifest (shape, name,
 * byte count, sha256), its format and its integrity (sql.js), and that no process has the
 * database open. Then, each step leaving a complete database under the live name:
 *
 *   1. the snapshot's verified bytes → temp file beside the database → fsync;
 *   2. the current database, its -wal and -shm get a second name,
 *      `<stem>.pre-restore-<ts>.db[-wal|-shm]` (hard links: the live name never goes away);
 *   3. if the live -wal holds committed transactions, the live name is first given a
 *      consolidated copy of the old database (main file + WAL, via the same consistent
 *      reader as backup) so that
 *   4. removing the live -wal/-shm loses nothing, and
 *   5. the verified temp is renamed over the live name (atomic);
 *   6. the placed file's sha256 is checked.
 * Removing the old -wal before step 5 is what ai-memory's own restore misses: SQLite
 * replays any -wal it finds beside a database, whatever file that database is now
 * (pager.c pagerOpenWalIfPresent), so an old WAL next to a restored file silently mixes the
 * two. On any failure the old database is what the live name holds and the message says
 * where everything is.
 */
import { isNoHardLinkError } from '../common/fsFacts';
import { constants as fsc, promises as fsp } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { fsyncDir, tempPath, writeAll, cleanStaleTemps } from '../store/atomicFs';
import { listSnapshots } from '../store/catalog';
import { BackupError, errnoCode, errorMessage, ioError, isBackupError } from '../common/errors';
import { hashFile } from '../common/hashFile';
import { TempFileSink } from '../store/fileSink';
import { describeHolders, findHolders, type Holder } from './inUse';
import { DEFAULT_CHUNK_BYTES, readConsistentImage } from '../sqlite/image';
import { formatStamp, preRestoreName } from '../store/naming';
import { pinSnapshot, removeStalePins } from '../store/pins';
import { examineSnapshot, problemError, type SnapshotReport } from './snapshotCheck';
import { JOURNAL_MAGIC } from '../sqlite/sqliteFormat';
import { crashPoint } from '../common/testHooks';
import { letSignalsIn, throwIfCancelled, type Progress } from '../common/cancel';
import { checkLabel, type CheckMode } from '../common/checks';
import { scanWal } from '../sqlite/wal';
import { findArchived, rebuildToTemp, type Rebuilt } from './archived';

export interface RestoreOptions {
  dbPath: string;
  /** A snapshot file, or a folder (its newest snapshot). */
  from: string;
  /** Skip the manifest check (sha256, bytes) — ai-memory's --skip-verify. */
  skipVerify?: boolean;
  /** Skip the sql.js integrity check (needed for encrypted snapshots). */
  skipIntegrity?: boolean;
  /** Which integrity check (default quick). */
  verify?: CheckMode;
  /** Restore even though a process has the database open. */
  force?: boolean;
  dryRun?: boolean;
  signal?: AbortSignal;
  onProgress?: (p: Progress) => void;
  now?: () => Date;
}

export interface RestorePlan {
  snapshot: string;
  manifest: string | undefined;
  checks: string[];
  db: string;
  dbExists: boolean;
  /** Where the current files will be kept (only those that exist). */
  keep: { from: string; to: string }[];
  /** The live -wal holds committed transactions that will be folded into the kept state first. */
  consolidate: boolean;
  holders: Holder[];
  /** Dry run only: why the real restore would refuse (the database is in use), or undefined. */
  wouldRefuse?: { code: 'IN_USE'; message: string; hint: string };
}

export interface RestoreResult {
  status: 'restored' | 'dry-run';
  from: string;
  to: string;
  /** Where the previous database was kept. */
  previous?: string;
  sha256: string;
  bytes: number;
  plan: RestorePlan;
  report: SnapshotReport;
  warnings: string[];
  durationMs: number;
}

const SIDECARS = ['-wal', '-shm'] as const;

const CANCELLED = 'Restore cancelled; nothing was changed.';

async function exists(p: string): Promise<boolean> {
  try {
    await fsp.lstat(p);
    return true;
  } catch {
    return false;
  }
}

/** The snapshot a `--from` names: the file itself, or a folder's newest (name time; mtime only for foreign names). */
export async function resolveRestoreSource(from: string): Promise<string> {
  const p = resolve(from);
  let st;
  try {
    st = await fsp.stat(p);
  } catch (e) {
    if (errnoCode(e) === 'ENOENT' && (await exists(p))) return p; // a dangling symlink: examine() reports it
    if (errnoCode(e) === 'ENOENT' && (await findArchived(p))) return p; // in the folder's page-dedup archive
    throw new BackupError('SNAPSHOT_NOT_FOUND', `${p} does not exist.`, { hint: 'Pass a snapshot file or the backup folder with --from.' });
  }
  if (!st.isDirectory()) return p;
  const entries = await listSnapshots(p, { manifests: false, archived: true });
  if (!entries.length) {
    throw new BackupError('NO_SNAPSHOTS', `No snapshots found in ${p}.`, { hint: 'Run `backup` first, or pass the folder that holds your ai-memory-*.db snapshots.' });
  }
  return entries[0].path;
}

async function liveJournalIsHot(dbPath: string): Promise<boolean> {
  try {
    const fh = await fsp.open(`${dbPath}-journal`, fsc.O_RDONLY);
    try {
      const b = Buffer.alloc(8);
      const { bytesRead } = await fh.read(b, 0, 8, 0);
      return bytesRead === 8 && b.equals(JOURNAL_MAGIC);
    } finally {
      await fh.close();
    }
  } catch {
    return false;
  }
}

/** A free `<stem>.pre-restore-<ts>[_n].db` whose -wal/-shm names are free too. */
async function asideName(dbPath: string, stamp: string): Promise<string> {
  const dir = dirname(dbPath);
  for (let seq = 1; seq < 1000; seq++) {
    const cand = join(dir, preRestoreName(basename(dbPath), stamp, seq));
    const taken = await Promise.all([cand, ...SIDECARS.map((s) => cand + s)].map(exists));
    if (!taken.some(Boolean)) return cand;
  }
  throw new BackupError('IO', `No free name to keep the current database beside ${dbPath}.`);
}

/** Gives `src` a second name `dest`: a hard link, or a durable copy where links are unsupported. */
async function keepCopy(src: string, dest: string): Promise<void> {
  try {
    await fsp.link(src, dest);
    return;
  } catch (e) {
    if (!isNoHardLinkError(e)) throw ioError('keeping a copy of', src, e);
  }
  const tmp = tempPath(dirname(dest), 'keep');
  try {
    await fsp.copyFile(src, tmp, fsc.COPYFILE_EXCL);
    const fh = await fsp.open(tmp, fsc.O_RDONLY);
    await fh.sync().finally(() => fh.close());
    await fsp.link(tmp, dest).catch(async () => fsp.rename(tmp, dest));
  } catch (e) {
    throw ioError('keeping a copy of', src, e);
  } finally {
    await fsp.rm(tmp, { force: true }).catch(() => undefined);
  }
}

/** Writes a consistent image of `source` (main + committed WAL) to a new temp file beside `near`. */
async function consolidatedCopy(source: string, near: string): Promise<string> {
  const sink = new TempFileSink(tempPath(dirname(near), 'consolidate'), { keepInMemory: false, chunkBytes: DEFAULT_CHUNK_BYTES });
  try {
    await readConsistentImage(source, sink, { maxAttempts: 3 });
    await sink.finish();
    return sink.path;
  } catch (e) {
    await sink.discard();
    throw e;
  }
}

async function walHasCommits(dbPath: string): Promise<boolean> {
  let fh;
  try {
    fh = await fsp.open(`${dbPath}-wal`, fsc.O_RDONLY);
  } catch {
    return false;
  }
  try {
    return (await scanWal(fh)).commitFrame > 0;
  } finally {
    await fh.close();
  }
}

export async function runRestore(opts: RestoreOptions): Promise<RestoreResult> {
  const started = Date.now();
  const now = opts.now ?? (() => new Date());
  const progress = opts.onProgress ?? (() => undefined);
  const warnings: string[] = [];

  // The live database: follow a symlink to the real file (SQLite does too), refuse a folder.
  let dbPath = resolve(opts.dbPath);
  let dbExists = false;
  try {
    const st = await fsp.stat(dbPath);
    if (st.isDirectory()) {
      throw new BackupError('DB_IS_DIRECTORY', `${dbPath} is a directory, not a database file.`, { hint: 'Point --db at the ai-memory .db file.' });
    }
    dbPath = await fsp.realpath(dbPath);
    dbExists = true;
  } catch (e) {
    if (isBackupError(e)) throw e;
    if (errnoCode(e) !== 'ENOENT') throw ioError('checking', dbPath, e);
  }

  const snapshot = await resolveRestoreSource(opts.from);
  const unpin = await pinSnapshot(dirname(snapshot), basename(snapshot));
  let rebuilt: Rebuilt | undefined;
  try {
    crashPoint('restore:after-pin');
    throwIfCancelled(opts.signal, CANCELLED);
    // An archived snapshot is rebuilt first (every page and the whole file checked against
    // its index and manifest), then examined and placed like a plain one.
    const archived = await findArchived(snapshot);
    if (archived) {
      progress({ phase: 'reading', message: `rebuilding ${archived.name} from the archive` });
      rebuilt = await rebuildToTemp(archived, { signal: opts.signal, onBytes: (done, total) => progress({ phase: 'reading', done, total }) });
    }
    const source = rebuilt?.file ?? snapshot;
    progress({ phase: 'hashing', message: `checking ${basename(snapshot)}` });
    const integrity = opts.skipIntegrity ? 'off' : (opts.verify ?? 'quick');
    const { report, bytes } = await examineSnapshot(source, {
      as: archived ? { name: archived.name, manifestPath: archived.manifestPath, path: archived.path } : undefined,
      useManifest: !opts.skipVerify,
      integrity,
      stopAtFirst: true,
      encryptedIsProblem: true,
      keepBytes: true,
      signal: opts.signal,
      onBytes: (done, total) => progress({ phase: 'hashing', done, total }),
    });
    if (report.problems.length) throw problemError(report.problems[0]);
    const sha256 = report.sha256 as string;

    if (dbExists && (await liveJournalIsHot(dbPath))) {
      throw new BackupError('HOT_JOURNAL', `${dbPath} has a live rollback journal: a writer is mid-transaction or crashed in one. Nothing was changed.`, {
        hint: 'Stop the writer, or open the database once with sqlite3 so SQLite rolls the journal back, then restore.',
      });
    }
    const holders = dbExists || (await exists(`${dbPath}-wal`)) ? await findHolders(dbPath) : [];
    const stamp = formatStamp(now());
    const aside = await asideName(dbPath, stamp);
    const keep: { from: string; to: string }[] = [];
    if (dbExists) keep.push({ from: dbPath, to: aside });
    for (const s of SIDECARS) if (await exists(dbPath + s)) keep.push({ from: dbPath + s, to: aside + s });
    const consolidate = dbExists && (await walHasCommits(dbPath));
    const checks = [
      opts.skipVerify ? 'manifest check skipped (--skip-verify)' : `sha256 and size match ${basename(report.manifestPath)}`,
      integrity === 'off' ? 'integrity check skipped (--skip-integrity)' : `PRAGMA ${checkLabel(integrity)}: ok`,
    ];
    const plan: RestorePlan = { snapshot, manifest: opts.skipVerify ? undefined : report.manifestPath, checks, db: dbPath, dbExists, keep, consolidate, holders };

    if (holders.length && !opts.force) {
      const refusal = { code: 'IN_USE' as const, message: `The database is in use by ${describeHolders(holders)}. Nothing was changed.`, hint: 'Stop your agent (or the ai-memory server) first, then restore. --force restores anyway.' };
      // A dry run still shows the whole plan, and says it would be refused.
      if (opts.dryRun) {
        plan.wouldRefuse = refusal;
        return { status: 'dry-run', from: snapshot, to: dbPath, previous: dbExists ? aside : undefined, sha256, bytes: report.bytes, plan, report, warnings, durationMs: Date.now() - started };
      }
      throw new BackupError(refusal.code, refusal.message, { hint: refusal.hint });
    }
    if (holders.length) warnings.push(`restoring while the database is open by ${describeHolders(holders)} (--force)`);
    if (opts.dryRun) {
      return { status: 'dry-run', from: snapshot, to: dbPath, previous: dbExists ? aside : undefined, sha256, bytes: report.bytes, plan, report, warnings, durationMs: Date.now() - started };
    }
    throwIfCancelled(opts.signal, CANCELLED);

    const dir = dirname(dbPath);
    await fsp.mkdir(dir, { recursive: true }).catch((e: unknown) => {
      throw ioError('creating folder', dir, e);
    });
    await cleanStaleTemps(dir);
    // Checked again right before the swap: the server may have started since the plan was made.
    const recheck = opts.force ? async () => undefined : async () => {
      const now = await findHolders(dbPath);
      if (now.length) {
        throw new BackupError('IN_USE', `The database was opened by ${describeHolders(now)} during the restore.`, {
          hint: 'Stop your agent (or the ai-memory server) first, then restore again.',
        });
      }
    };
    await place({ dbPath, snapshot: source, bytes, sha256, keep, consolidate, progress, signal: opts.signal, recheck });
    // Pins (and pin temps) left by restores that died (killed, power cut) are dropped; live pins stay.
    await removeStalePins(dirname(snapshot));
    await cleanStaleTemps(dirname(snapshot));
    return { status: 'restored', from: snapshot, to: dbPath, previous: dbExists ? aside : undefined, sha256, bytes: report.bytes, plan, report, warnings, durationMs: Date.now() - started };
  } finally {
    await rebuilt?.done();
    await unpin();
  }
}

async function writeTemp(tmp: string, snapshot: string, bytes: Uint8Array | undefined, sha256: string, signal: AbortSignal | undefined): Promise<void> {
  try {
    if (bytes) {
      const fh = await fsp.open(tmp, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL, 0o644);
      try {
        for (let pos = 0; pos < bytes.length; pos += DEFAULT_CHUNK_BYTES) {
          await writeAll(fh, bytes.subarray(pos, Math.min(bytes.length, pos + DEFAULT_CHUNK_BYTES)), pos);
        }
        await fh.sync();
      } finally {
        await fh.close();
      }
      return;
    }
    // Too large to hold (only with --skip-integrity): copy, then prove the copy is what was verified.
    await fsp.copyFile(snapshot, tmp, fsc.COPYFILE_EXCL);
    const fh = await fsp.open(tmp, fsc.O_RDONLY);
    await fh.sync().finally(() => fh.close());
  } catch (e) {
    throw ioError('writing', tmp, e);
  }
  const copied = await hashFile(tmp, signal);
  if (copied.sha256 !== sha256) {
    throw new BackupError('SHA_MISMATCH', `The snapshot changed while it was copied (sha256 ${copied.sha256}, verified ${sha256}).`, { hint: 'Try again.' });
  }
}

async function place(s: {
  dbPath: string;
  snapshot: string;
  bytes: Uint8Array | undefined;
  sha256: string;
  keep: { from: string; to: string }[];
  consolidate: boolean;
  progress: (p: Progress) => void;
  signal: AbortSignal | undefined;
  recheck: () => Promise<void>;
}): Promise<void> {
  const dir = dirname(s.dbPath);
  const tmp = tempPath(dir, 'restore');
  const kept: string[] = [];
  // 'untouched': the live files are as they were; 'changed': the live name holds the old
  // content in another form (consolidated, or without an empty WAL); 'swapped': it holds the new file.
  let stage: 'untouched' | 'changed' | 'swapped' = 'untouched';
  try {
    s.progress({ phase: 'placing', message: 'writing the snapshot beside the database' });
    await writeTemp(tmp, s.snapshot, s.bytes, s.sha256, s.signal);
    crashPoint('restore:after-temp');
    // A signal that came during the last write is handled before we decide (two turns of
    // the event loop: from the poll phase, one setImmediate runs before the next poll).
    await letSignalsIn();
    throwIfCancelled(s.signal, CANCELLED);

    // The -wal/-shm get their second names before the main file: a crash in between leaves
    // at most stray sidecars, never a pre-restore .db without its -wal (an older state).
    const keepOrder = [...s.keep.filter((k) => k.from !== s.dbPath), ...s.keep.filter((k) => k.from === s.dbPath)];
    for (const k of keepOrder) {
      await keepCopy(k.from, k.to);
      kept.push(k.to);
      crashPoint('restore:between-keeps');
    }
    await fsyncDir(dir);
    crashPoint('restore:after-keep');
    await s.recheck();

    if (s.consolidate) {
      s.progress({ phase: 'placing', message: 'folding the old WAL into the kept state' });
      const merged = await consolidatedCopy(s.dbPath, s.dbPath);
      crashPoint('restore:consolidated-temp');
      await fsp.rename(merged, s.dbPath).catch(async (e: unknown) => {
        await fsp.rm(merged, { force: true });
        throw ioError('replacing', s.dbPath, e);
      });
      stage = 'changed';
      await fsyncDir(dir);
      crashPoint('restore:after-consolidate');
    }
    for (const suffix of SIDECARS) {
      if (await exists(s.dbPath + suffix)) {
        stage = 'changed';
        await fsp.rm(s.dbPath + suffix, { force: true });
        crashPoint('restore:between-sidecars');
      }
    }
    await fsyncDir(dir);
    crashPoint('restore:after-sidecars');

    await fsp.rename(tmp, s.dbPath).catch((e: unknown) => {
      throw ioError('placing the snapshot at', s.dbPath, e);
    });
    stage = 'swapped';
    await fsyncDir(dir);
    crashPoint('restore:after-swap');

    s.progress({ phase: 'hashing', message: 'checking the placed file' });
    const placed = await hashFile(s.dbPath);
    if (placed.sha256 !== s.sha256) {
      throw new BackupError('RESTORE_FAILED', `The placed file's sha256 (${placed.sha256}) is not the snapshot's (${s.sha256}).`);
    }
    crashPoint('restore:after-verify');
  } catch (e) {
    await fsp.rm(tmp, { force: true }).catch(() => undefined);
    const keptDb = s.keep.find((k) => k.from === s.dbPath)?.to;
    const what = errorMessage(e);
    if (stage === 'swapped' && keptDb) {
      // Put the old database back as one consistent file (its main file + WAL merged).
      try {
        const back = await consolidatedCopy(keptDb, s.dbPath);
        await fsp.rename(back, s.dbPath);
        await fsyncDir(dir);
      } catch (e2) {
        throw new BackupError('RESTORE_FAILED', `Restore failed (${what}) and putting the old database back failed too (${e2 instanceof Error ? e2.message : String(e2)}).`, {
          state: `Your previous database is complete at ${keptDb} (with its -wal, if it had one). Copy it to ${s.dbPath} by hand.`,
          cause: e,
        });
      }
      throw new BackupError('RESTORE_FAILED', `Restore failed: ${what}`, { state: `Your previous database is back at ${s.dbPath}; a copy is also kept at ${keptDb}.`, cause: e });
    }
    let state: string;
    if (stage === 'untouched') {
      // Nothing changed: drop the second names too, so a failed restore leaves no trace.
      for (const k of kept) await fsp.rm(k, { force: true }).catch(() => undefined);
      state = `Nothing was changed at ${s.dbPath}.`;
    } else {
      state = `Your previous database is still at ${s.dbPath} (its WAL folded in), and a copy as it was is kept at ${keptDb ?? 'its pre-restore name'}.`;
    }
    if (isBackupError(e)) throw new BackupError(e.code, e.message, { hint: e.hint, state, cause: e.cause });
    throw new BackupError('RESTORE_FAILED', `Restore failed: ${what}`, { state, cause: e });
  }
}
