/**
 * `backup`: a hot, consistent, verified, crash-safe snapshot of the ai-memory database.
 *
 * Order of work, each step leaving the folder valid if the process dies right there:
 *   read image → temp file (hashed while written) → fsync, with the sql.js check of that
 *   temp file (the bytes just hashed and written, read back lazily) running while the
 *   disk flushes →
 *   identical to the newest snapshot? drop the temp, report "unchanged" →
 *   manifest under its final name (no snapshot yet: harmless) →
 *   snapshot under its final name (link, never overwriting) → fsync folder →
 *   retention (snapshot first, then its manifest).
 * A crash therefore never leaves a file under a final snapshot name without a matching
 * manifest; temp files and manifest-only leftovers are cleaned by the next run.
 */
import { constants as fsc, promises as fsp } from 'node:fs';
import { join, resolve } from 'node:path';
import { freeBytes } from '../common/fsFacts';
import { wideModeNote, cleanStaleTemps, createFileNoClobber, dirModeLike, fileModeLike, fsyncDir, publishNoClobber, reachableMode, tempPath, writeFileAtomic } from '../store/atomicFs';
import { FUTURE_SKEW_MS, listSnapshots, type SnapshotEntry } from '../store/catalog';
import { indexNameFor, listArchived, refuseInsideArchive } from '../store/archive';
import { withOwners } from '../store/ownership';
import { thisMachine } from '../common/machine';
import { readSmallRegular } from '../common/regularFile';
import { refuseSidecarFolder, resolveDbPath, type DbLocation } from '../sqlite/dbFiles';
import { BackupError, errnoCode, errorMessage, ioError, isBackupError } from '../common/errors';
import { hashFile } from '../common/hashFile';
import { TempFileSink } from '../store/fileSink';
import { acquireFolderLock } from '../store/folderLock';
import { DEFAULT_CHUNK_BYTES, inspectDatabase, readConsistentImage, type ImageInfo } from '../sqlite/image';
import { OUR_TOOL, rfc3339, serializeManifest, type Manifest } from '../store/manifest';
import { formatStamp, manifestNameFor, parseSnapshotName, snapshotName } from '../store/naming';
import { isEmptyPolicy, type RetentionPolicy } from '../store/retention';
import { applyPrune, archiveOlder, normalizePolicy } from './prune';
import { readState, STATE_NAME, type BackupState } from '../store/state';
import { checkFile, describeMaxCheckable, loadSqlEngine, MAX_CHECKABLE_BYTES, releaseReadBuffers, type ImageCheck } from '../sqlite/sqlEngine';
import { collectAll } from '../common/gc';
import { crashPoint } from '../common/testHooks';
import { factsManifestFields, factsOfFile, type MemoryFacts } from '../memory/facts';
import { TOOL_VERSION } from '../common/version';
import { letSignalsIn, throwIfCancelled, type Progress } from '../common/cancel';
import { checkLabel, type VerifyMode } from '../common/checks';
import { planSigning, signIfKeyed, type SigningOptions, type SigningOutcome } from '../store/backupSigning';

export type { Progress } from '../common/cancel';
export type { VerifyMode } from '../common/checks';

export const DEFAULT_KEEP = 48;

/** Verified backups of databases up to this size keep their image in memory while reading (catch-ups). */
const HELD_IMAGE_MAX_BYTES = 32 << 20;

export interface BackupOptions {
  dbPath: string;
  backupDir: string;
  /** Keep the newest N snapshots (default 48); 0 keeps all. Ignored when `policy` is given. */
  keep?: number;
  /** Tiered retention (restic's semantics, retention.ts); overrides `keep`. */
  policy?: RetentionPolicy;
  /** Keep the newest N snapshots plain and move older kept ones into the page-dedup archive; undefined: no archiving. */
  plain?: number;
  verify?: VerifyMode;
  signal?: AbortSignal;
  onProgress?: (p: Progress) => void;
  /** How long to wait for another backup in the same folder (default 30 s). */
  lockWaitMs?: number;
  /** Skip (status 'skipped') when a backup of this folder finished less than this long ago — one run per interval across VS Code windows. */
  skipIfRunWithinMs?: number;
  /** Clock, for tests. */
  now?: () => Date;
  chunkBytes?: number;
  /** Images up to this size are read whole before writing (image.ts); tests set 0 to force streaming. */
  bufferBytes?: number;
  /** ai-memory 1.0 manifest signing (store/backupSigning.ts); default: the operator key where ai-memory keeps it. */
  signing?: SigningOptions;
}

export interface BackupResult {
  status: 'created' | 'unchanged' | 'skipped';
  /** The database as given and the file that was read (they differ when the path is a symlink). */
  db: DbLocation;
  snapshotPath: string;
  manifestPath: string;
  manifest: Manifest;
  /** For 'unchanged': when the identical snapshot was made. */
  unchangedSince?: string;
  pruned: string[];
  /** Snapshots moved into the page-dedup archive by this run. */
  archived: string[];
  cleaned: string[];
  warnings: string[];
  image?: ImageInfo;
  check?: ImageCheck;
  durationMs: number;
  /** Whether the new manifest is signed for ai-memory 1.0, by which key, or why not. */
  signing?: SigningOutcome;
}

const CANCELLED = 'Backup cancelled; nothing was written.';

/**
 * Creates the backup folder if needed (with `dirMode`: never wider than the database's
 * mode allows, atomicFs.dirModeLike) and proves we can write there, before reading anything.
 */
export async function prepareBackupDir(dir: string, dirMode = 0o755): Promise<void> {
  await refuseInsideArchive(dir); // before anything is made there
  await refuseSidecarFolder(dir, 'Backup folder', 'Choose a folder with --to.');
  try {
    const st = await fsp.stat(dir);
    if (!st.isDirectory()) {
      throw new BackupError('TARGET_NOT_DIRECTORY', `Backup folder ${dir} is a file, not a folder.`, {
        hint: 'Choose a folder with --to.',
      });
    }
  } catch (e) {
    if (errnoCode(e) === 'ENOTDIR') {
      throw new BackupError('TARGET_NOT_DIRECTORY', `Backup folder ${dir} is inside a file, not a folder.`, {
        hint: 'Choose a folder with --to.',
      });
    }
    if (errnoCode(e) !== 'ENOENT') throw ioError('checking', dir, e);
    try {
      await fsp.mkdir(dir, { recursive: true, mode: dirMode });
    } catch (e2) {
      if (errnoCode(e2) === 'ENOTDIR' || errnoCode(e2) === 'EEXIST') {
        throw new BackupError('TARGET_NOT_DIRECTORY', `Cannot create backup folder ${dir}: part of that path is a file.`, {
          hint: 'Choose a folder with --to.',
        });
      }
      throw ioError('creating folder', dir, e2);
    }
  }
  try {
    await fsp.access(dir, fsc.W_OK | fsc.X_OK);
  } catch (e) {
    // A drive mounted read-only (a write-protected SD card, a disk remounted after errors): no permission fixes that.
    if (errnoCode(e) === 'EROFS') throw ioError('writing to', dir, e);
    throw new BackupError('TARGET_NOT_WRITABLE', `Backup folder ${dir} is not writable.`, {
      hint: 'Fix its permissions, or choose another folder with --to.',
      cause: e,
    });
  }
}

/** Removes manifests of ours whose snapshot never got its final name (a crash between the two). */
async function cleanOrphanManifests(dir: string, existing: Set<string>): Promise<string[]> {
  const removed: string[] = [];
  let names: string[];
  try {
    names = await fsp.readdir(dir);
  } catch {
    return removed;
  }
  for (const name of names) {
    if (!name.startsWith('ai-memory-') || !name.endsWith('.manifest.json')) continue;
    const snap = `${name.slice(0, -'.manifest.json'.length)}.db`;
    if (existing.has(snap)) continue;
    // An archived snapshot's manifest has its page index beside it: never an orphan.
    if (await fsp.lstat(join(dir, indexNameFor(snap))).then(() => true, () => false)) continue;
    try {
      const o = JSON.parse(await readSmallRegular(join(dir, name))) as Partial<Manifest>;
      // Only ours (written manifest-first); ai-memory's own orphans are not ours to judge.
      if (typeof o.tool === 'string' && o.tool.startsWith(OUR_TOOL) && o.snapshot === snap) {
        await fsp.unlink(join(dir, name));
        removed.push(name);
      }
    } catch {
      // unreadable: leave it
    }
  }
  return removed;
}

/**
 * Applies retention (`keep` = the newest N, or a tiered policy) to the snapshots of THIS
 * database (`owner.dbPath`, resolved) in the shared naming format, plain and archived; `protect`
 * names snapshots kept whatever the policy (the one just written). A snapshot whose manifest
 * names another database (or none: no manifest, so no owner) is neither counted nor deleted —
 * a folder shared by two databases must never lose one's snapshots to the other's retention
 * (ownership.ts). Future-dated snapshots rank below all others (catalog.ts), so they go
 * first. The caller holds the folder lock.
 */
export async function pruneSnapshots(dir: string, keep: number | RetentionPolicy, protect: Set<string>, owner: { dbPath: string; now?: number }): Promise<{ pruned: string[]; warnings: string[] }> {
  const policy = normalizePolicy(keep);
  if (isEmptyPolicy(policy)) return { pruned: [], warnings: [] };
  const [justWritten] = [...protect];
  const r = await applyPrune(dir, policy, { justWritten, dbPath: owner.dbPath, now: owner.now });
  return { pruned: r.pruned, warnings: r.warnings };
}

/** Moves this database's older kept snapshots into the archive (when `plain` is set); a failure here never fails the backup. */
async function archiveStep(dir: string, opts: BackupOptions, owner: { dbPath: string; now?: number }, warnings: string[], progress: (p: Progress) => void): Promise<string[]> {
  if (opts.plain === undefined) return [];
  progress({ phase: 'pruning', message: 'archiving older snapshots' });
  // The check and the facts are done: what they (and the copy) left is freed before the
  // archive takes memory of its own, which then reuses it. A default backup that archived
  // one snapshot at 500 MB peaked at 113–114 MB of RSS before, 101–102 MB with this alone,
  // 97–99 MB with the pack collection reading indexes a window at a time (archive.ts).
  releaseReadBuffers();
  await collectAll();
  try {
    const r = await archiveOlder(dir, opts.plain, { signal: opts.signal, dbPath: owner.dbPath, now: owner.now });
    warnings.push(...r.warnings);
    return r.archived;
  } catch (e) {
    // The new snapshot is already published: a failure (or a cancel) here only leaves older snapshots plain.
    warnings.push(`archiving older snapshots ${isBackupError(e) && e.code === 'CANCELLED' ? 'was cancelled' : 'failed'} (they stay as they were): ${errorMessage(e)}`);
    return [];
  }
}

/**
 * Writes the folder's state file (state.ts) once the run's snapshot is published (or found
 * unchanged). The snapshot is already there, retention already applied: a state file that
 * cannot be written (a disk that filled up) must not turn that run into a failure — exit 1
 * and "try again" while a new snapshot exists, and older ones may have just been pruned.
 * It only makes the status bar and `--skip-if-recent` see the previous run: said in a warning.
 */
async function recordRun(dir: string, state: BackupState, fileMode: number, warnings: string[]): Promise<void> {
  try {
    await writeFileAtomic(join(dir, STATE_NAME), JSON.stringify(state satisfies BackupState), fileMode);
  } catch (e) {
    warnings.push(`could not record this run in ${join(dir, STATE_NAME)} (${errorMessage(e)}): the snapshot ${state.snapshot} is ${state.status === 'created' ? 'made' : 'there'} and complete, but the status and --skip-if-recent still see the previous run; free some space in ${dir}`);
  }
}

function nextFreeSeq(names: string[], stamp: string): number {
  let seq = 0;
  for (const name of names) {
    const t = parseSnapshotName(name);
    if (t && name.startsWith(`ai-memory-${stamp}`)) seq = Math.max(seq, t.seq);
  }
  return seq + 1;
}

export async function runBackup(opts: BackupOptions): Promise<BackupResult> {
  const started = Date.now();
  const now = opts.now ?? (() => new Date());
  // One resolution of the database path (dbFiles.ts): its -wal/-shm/-journal are beside the real file.
  const db = await resolveDbPath(opts.dbPath);
  const dbPath = db.path;
  const dir = resolve(opts.backupDir);
  const keep = opts.policy ? normalizePolicy(opts.policy) : (opts.keep ?? DEFAULT_KEEP);
  const verify = opts.verify ?? 'quick';
  const progress = opts.onProgress ?? (() => undefined);
  if (typeof keep === 'number' && (!Number.isInteger(keep) || keep < 0)) throw new BackupError('USAGE', `--keep must be a whole number ≥ 0, got ${keep}.`);
  if (opts.plain !== undefined && (!Number.isInteger(opts.plain) || opts.plain < 1)) throw new BackupError('USAGE', `--plain must be a whole number ≥ 1, got ${opts.plain}.`);

  // Refusals first, before anything is created.
  const info = await inspectDatabase(dbPath);
  const signingPlan = await planSigning(opts.signing);
  // Snapshots, manifests, temp files and a new folder: never wider than the database's mode,
  // nor than its folders let anyone reach it (a 0644 database in a 0700 folder: 0600), and
  // no group bits for a group that is not the database's.
  const fileMode = fileModeLike(await reachableMode(dbPath, dir));
  await prepareBackupDir(dir, dirModeLike(fileMode));
  progress({ phase: 'waiting', message: 'waiting for the backup folder' });
  const lock = await acquireFolderLock(dir, { purpose: 'backup', waitMs: opts.lockWaitMs, signal: opts.signal });
  crashPoint('backup:after-lock');
  // The snapshot's time (its name) is taken under the lock, right before the database is read:
  // runs that waited for one another get names in the order of what they read. Taken before
  // the wait, a run that waited longer but read later could be named older than a run that
  // read earlier — and restore and retention go by the name.
  const startedAt = now();
  const warnings: string[] = [...signingPlan.notes];
  let sink: TempFileSink | undefined;
  try {
    if (opts.skipIfRunWithinMs !== undefined) {
      const state = await readState(dir);
      const last = state ? Date.parse(state.last_run) : NaN;
      // Judged now that we hold the lock, not when we started waiting for it: a run that
      // waited for another one finished meanwhile must see that run as recent, not as future.
      const lockedAt = now().getTime();
      if (state && Number.isFinite(last) && lockedAt - last < opts.skipIfRunWithinMs && lockedAt >= last) {
        const entries = await withOwners(dir, dbPath, await listSnapshots(dir, { now: lockedAt }));
        const snap = entries.find((e) => e.name === state.snapshot);
        // Only a recent run of THIS database counts (the folder may be shared).
        if (snap?.manifest && snap.owner === 'this') {
          return { status: 'skipped', db, snapshotPath: snap.path, manifestPath: snap.manifestPath, manifest: snap.manifest, pruned: [], archived: [], cleaned: [], warnings, durationMs: Date.now() - started };
        }
      }
    }
    const cleaned = await cleanStaleTemps(dir);
    const before = await withOwners(dir, dbPath, await listSnapshots(dir, { now: now().getTime() }));
    const mine = before.filter((e) => e.owner === 'this');
    for (const e of mine) {
      if (e.future) warnings.push(`${e.name} is dated in the future (a clock that was wrong, or a file copied in): it never counts as newer than a snapshot taken now`);
    }
    cleaned.push(...(await cleanOrphanManifests(dir, new Set(before.map((e) => e.name)))));

    const free = await freeBytes(dir);
    if (free !== undefined && free < info.size) {
      throw new BackupError('NO_SPACE', `Not enough space in ${dir}: ${free} bytes free, the database is ${info.size} bytes.`, {
        hint: 'Free some space or choose another folder; earlier snapshots were left as they were.',
      });
    }

    // The check reads the temp file back lazily (flat memory). With --verify off the file is
    // still opened for the schema version and memory count that ai-memory 1.0's manifest
    // (and its signature) need — only the pragma is skipped.
    const checkable = info.kind === 'sqlite';
    sink = new TempFileSink(tempPath(dir, 'snapshot'), {
      // A verified backup of a small image (≤ 32 MiB: main file and WAL together, as the
      // sink learns once the WAL is scanned) holds it while reading, as before the lazy
      // checker: under a busy server a read overtaken by a checkpoint is then caught up in
      // memory instead of read again (image.ts). Larger images stream, so memory stays flat
      // whatever the size. The check still reads the written file, never this copy.
      holdUpTo: verify !== 'off' && info.kind === 'sqlite' ? HELD_IMAGE_MAX_BYTES : 0,
      chunkBytes: opts.chunkBytes ?? DEFAULT_CHUNK_BYTES,
      onBytes: (done, total) => progress({ phase: 'reading', done, total }),
      mode: fileMode,
    });
    throwIfCancelled(opts.signal, CANCELLED);
    // Compile the WASM checker while the disk works (a failure surfaces in checkFile).
    if (checkable) loadSqlEngine().catch(() => undefined);
    progress({ phase: 'reading', done: 0, total: info.size });
    const image = await readConsistentImage(dbPath, sink, {
      signal: opts.signal,
      chunkBytes: opts.chunkBytes,
      bufferBytes: opts.bufferBytes,
      onRetry: (attempt, reason) => warnings.push(`read ${attempt - 1} raced a writer (${reason}); read again`),
      hook: async (point) => {
        if (point === 'after-stream') crashPoint('backup:after-stream');
      },
    });
    await sink.drain();
    // The fsync starts now and the check (CPU, in memory) runs while the disk flushes;
    // nothing is published before both are done.
    const durable = sink.finish();
    durable.catch(() => undefined); // awaited below, or by discard() when the check fails

    let check: ImageCheck | undefined;
    let facts: MemoryFacts | undefined;
    let integrity: Manifest['integrity'];
    let checkNote: string | undefined;
    if (image.kind === 'encrypted') {
      integrity = 'encrypted';
      warnings.push('the database is encrypted (not plain SQLite): the snapshot is a consistent copy, but its integrity cannot be checked here');
    } else if (checkable && image.bytes > MAX_CHECKABLE_BYTES) {
      integrity = 'unverified';
      checkNote = `not checked: larger than ${describeMaxCheckable()}`;
      warnings.push(`${checkNote} (the most the WASM checker opens): the snapshot is copied consistently but not integrity-checked`);
    } else if (checkable && verify === 'off') {
      // Reads a few pages only (lazily): 1.0's facts at any size.
      check = await checkFile(sink.path, 'facts');
      integrity = 'unverified';
    } else if (checkable) {
      const mode = verify === 'full' ? 'full' : 'quick';
      progress({ phase: 'checking', message: `PRAGMA ${checkLabel(mode)}` });
      // Exactly the bytes that were hashed and written: the temp file, all its writes done
      // (drain), read back through the page cache while its fsync runs.
      check = await checkFile(sink.path, mode);
      if (!check.ok) {
        throw new BackupError('INTEGRITY_FAILED', `The snapshot of ${dbPath} fails ${checkLabel(mode)}: ${check.result}. No snapshot was written.`, {
          hint: 'The database itself is damaged. Keep the file as it is, restore the last good snapshot, or try `sqlite3 <db> .recover`.',
        });
      }
      integrity = 'ok';
    } else {
      integrity = 'unverified';
    }
    const sha256 = await durable;
    crashPoint('backup:after-temp-fsync');
    crashPoint('backup:after-check');
    // The check runs synchronously (WASM): a SIGINT/SIGTERM that came meanwhile is only
    // handled when the event loop next polls. Let it poll (two turns: from the poll phase,
    // one setImmediate runs before the next poll), so a cancel during the check stops us
    // here, before anything is published, instead of being noticed too late.
    await letSignalsIn();
    throwIfCancelled(opts.signal, CANCELLED);

    // Identical to a snapshot of this database we already have? Keep that one — after proving its bytes still
    // match. The newest first; then any other one whose manifest says the same bytes, which
    // is the case right after a restore: the database is then the restored (older) snapshot,
    // and copying it again would only add a duplicate.
    // …unless we now hold an operator key it is not signed with: then a signed one is written.
    const signedAsWeWould = (e: SnapshotEntry) => !signingPlan.key || e.manifest?.signer === signingPlan.key.fingerprint;
    const identical = mine.filter((e) => e.manifest && !e.symlink && e.manifest.sha256 === sha256 && e.size === image.bytes && signedAsWeWould(e));
    for (const same of identical) {
      const manifest = same.manifest as Manifest;
      progress({ phase: 'hashing', message: `comparing with ${same.name}` });
      const old = await hashFile(same.path, opts.signal).catch(() => undefined);
      if (old?.sha256 !== sha256) continue;
      await sink.discard();
      sink = undefined;
      const { pruned, warnings: w } = await pruneSnapshots(dir, keep, new Set([same.name]), { dbPath, now: now().getTime() });
      warnings.push(...w);
      const archived = await archiveStep(dir, opts, { dbPath, now: now().getTime() }, warnings, progress);
      await recordRun(dir, { last_run: rfc3339(now()), status: 'unchanged', snapshot: same.name, sha256 }, fileMode, warnings);
      return {
        status: 'unchanged',
        db,
        snapshotPath: same.path,
        manifestPath: same.manifestPath,
        manifest,
        unchangedSince: manifest.created_at,
        pruned,
        archived,
        cleaned,
        warnings,
        image,
        check,
        durationMs: Date.now() - started,
      };
    }

    // What the new snapshot holds (counts per tier and namespace, the recall-insensitive
    // digest), from the checked temp file — only now, so an unchanged run (most hourly
    // runs) does not pay for reading every memory. Verified snapshots only: with --verify
    // off nothing but the header is read, and the facts are computed when first shown.
    if (integrity === 'ok' && sink) {
      progress({ phase: 'checking', message: 'reading what the snapshot holds' });
      facts = await factsOfFile(sink.path).catch((e: unknown) => {
        warnings.push(`could not read the memories' facts (${errorMessage(e)}); they will be computed when first shown`);
        return undefined;
      });
      await letSignalsIn();
      throwIfCancelled(opts.signal, CANCELLED);
    }

    progress({ phase: 'publishing' });
    // A clock set back a little (NTP stepping it back; more than FUTURE_SKEW_MS and the
    // newest is "future", ranked last anyway) would name this snapshot older than the
    // database's newest one, whose contents it follows: restore's newest (and retention's
    // order) then took the older contents for the newer. It takes that snapshot's second
    // instead, with the next sequence number (`…Z_2.db`), so it sorts after it; its
    // manifest's created_at keeps the clock's own time.
    const newestMine = mine.find((e) => !e.future && e.timeSource === 'name');
    const stamp = formatStamp(newestMine && newestMine.time > startedAt.getTime() ? new Date(newestMine.time) : startedAt);
    // ai-memory orders a folder's snapshots by file time (its restore takes the newest, its
    // --keep deletes the oldest). After a clock set back, the snapshot this one follows bears a
    // file time later than now: this one is dated just after it, or ai-memory's restore took
    // the older contents for the newer too. So is one made within the same tick of a coarse
    // file system's clock (FAT keeps even seconds: four backups in two seconds had one time).
    const follows = newestMine && !newestMine.archived ? await fsp.stat(newestMine.path).catch(() => undefined) : undefined;
    const written = follows ? await fsp.stat(sink.path).catch(() => undefined) : undefined;
    // A file system that keeps whole seconds (HFS+, exFAT through FUSE) or even seconds (FAT)
    // shows it in the time it stored for the snapshot followed; there this one must be a tick
    // later, judged before it is stored (a FUSE mount shows the unrounded time until then).
    const tick = !follows || follows.mtimeMs % 1000 !== 0 ? 0 : follows.mtimeMs % 2000 === 0 ? 2000 : 1000;
    // (Not after a file time further ahead than a clock set back a little: that one is a file copied in, or dated by a clock far off.)
    let datedAfter: Date | undefined;
    if (follows && written && written.mtimeMs < follows.mtimeMs + Math.max(tick, 1e-3) && follows.mtimeMs <= Date.now() + FUTURE_SKEW_MS) {
      datedAfter = new Date(follows.mtimeMs + (tick || 1000)); // a second at least: the coarsest file times still tell them apart
      await fsp.utimes(sink.path, datedAfter, datedAfter).catch(() => undefined); // best effort, as for pull and materialize
    }
    // A name is taken by a plain snapshot or an archived one (a clock set back can meet either):
    // publishing never clobbers the first, and must not shadow the second.
    const archivedNames = new Set((await listArchived(dir)).map((a) => a.name));
    let seq = nextFreeSeq([...before.map((e) => e.name), ...archivedNames], stamp);
    let published: { name: string; manifest: Manifest } | undefined;
    for (let tries = 0; tries < 1000 && !published; tries++, seq++) {
      const name = snapshotName(stamp, seq);
      if (archivedNames.has(name)) continue;
      const manifest: Manifest = signIfKeyed(signingPlan, {
        snapshot: name,
        sha256,
        bytes: image.bytes,
        source_db: dbPath,
        version: TOOL_VERSION,
        created_at: rfc3339(now()),
        backend: 'sqlite',
        schema_version: check?.schemaVersion,
        memory_count: check?.memories,
        tool: `${OUR_TOOL} ${TOOL_VERSION}`,
        ...thisMachine(),
        integrity,
        check: check && verify !== 'off' ? (verify === 'full' ? 'full' : 'quick') : 'off',
        check_note: checkNote,
        page_size: image.pageSize,
        pages: image.pages,
        memories: check?.memories,
        wal_frames: image.walCommitFrame,
        sqlite: check?.sqliteVersion,
        ...(facts ? factsManifestFields(facts) : {}),
      });
      const manifestPath = join(dir, manifestNameFor(name));
      // Its name durable before the snapshot gets its own: after a power loss, a snapshot
      // whose manifest's name was lost would be refused by restore.
      if (!(await createFileNoClobber(manifestPath, serializeManifest(manifest), fileMode, { purpose: 'manifest', beforeName: () => crashPoint('backup:before-manifest') }))) continue;
      crashPoint('backup:after-manifest');
      if (!(await publishNoClobber(sink.path, join(dir, name)))) {
        await fsp.rm(manifestPath, { force: true }); // ours, written a moment ago
        continue;
      }
      published = { name, manifest };
    }
    if (!published) throw new BackupError('IO', `Could not find a free snapshot name in ${dir}.`);
    sink = undefined;
    // Some file systems date a file anew when it is renamed (fusefat): dated again, as named.
    if (datedAfter) {
      const named = join(dir, published.name);
      const st = await fsp.stat(named).catch(() => undefined);
      if (st && st.mtimeMs < datedAfter.getTime()) await fsp.utimes(named, datedAfter, datedAfter).catch(() => undefined);
    }
    await fsyncDir(dir);
    // A folder on a drive that keeps no modes (FAT, exFAT): the snapshot has the mount's, said when wider.
    const got = await fsp.stat(join(dir, published.name)).catch(() => undefined);
    const wide = got ? wideModeNote(dir, got.mode & 0o777, fileMode) : undefined;
    if (wide) warnings.push(wide);
    crashPoint('backup:after-publish');

    progress({ phase: 'pruning' });
    const { pruned, warnings: w } = await pruneSnapshots(dir, keep, new Set([published.name]), { dbPath, now: now().getTime() });
    warnings.push(...w);
    crashPoint('backup:after-prune');
    const archived = await archiveStep(dir, opts, { dbPath, now: now().getTime() }, warnings, progress);
    await recordRun(dir, { last_run: rfc3339(now()), status: 'created', snapshot: published.name, sha256 }, fileMode, warnings);
    // Unsigned is said by the CLI's `Signed  :` line / `unsigned_reason`, not as a warning.
    const signing = signingPlan.outcome(published.manifest);
    return {
      status: 'created',
      db,
      snapshotPath: join(dir, published.name),
      manifestPath: join(dir, manifestNameFor(published.name)),
      manifest: published.manifest,
      signing,
      pruned,
      archived,
      cleaned,
      warnings,
      image,
      check,
      durationMs: Date.now() - started,
    };
  } finally {
    await sink?.discard();
    await lock.release();
  }
}
