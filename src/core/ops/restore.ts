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
 * two — and it rolls a hot -journal back into it (hasHotJournal), which corrupts it. So
 * every sidecar SQLite may open (dbFiles.ts SIDECARS: -wal, -shm, -journal) is kept aside
 * with the database and removed before the swap, whether or not the database file exists.
 * On any failure the old database is what the live name holds and the message says
 * where everything is.
 *
 * A damaged database (0 bytes, a header that is not SQLite's, a hot journal left by a
 * writer that crashed) is exactly when a restore is needed: it is kept aside as it is, with
 * all its sidecars (nothing is folded in: there is no consistent state to fold), and said so.
 *
 * The path is resolved once, as SQLite does (dbFiles.ts): a symlinked database is replaced
 * at its real file, beside which its sidecars live. A database that does not exist is
 * created only at a path the user named (`--db`, the aiMemory.databasePath setting:
 * `createIfMissing`), never at one that was guessed.
 */
import { exists } from '../common/fsFacts';
import { isNoHardLinkError } from '../common/fsFacts';
import { constants as fsc, promises as fsp } from 'node:fs';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { createHash } from 'node:crypto';
import { applyLikeness, copyFileExcl, dirModeLike, fileModeLike, fsyncDir, likenessOf, newFileGid, publishNoClobber, reachableMode, tempPath, cleanStaleTemps, type Likeness } from '../store/atomicFs';
import { listSnapshots, readManifestFor } from '../store/catalog';
import { newestOfThis, ownerKey, ownerName, restoreOrder, withOwners, type OwnerInfo } from '../store/ownership';
import { journalIsLive, refuseSidecarFolder, resolveDbPath, resolvedDbPathOr, sameDbPath, SIDECARS, walHasCommits } from '../sqlite/dbFiles';
import { thisMachine } from '../common/machine';
import { kindOf, openRegular } from '../common/regularFile';
import { BackupError, errnoCode, errorMessage, ioError, isBackupError } from '../common/errors';
import { hashFile } from '../common/hashFile';
import { TempFileSink } from '../store/fileSink';
import { describeHolders, findHolders, type Holder } from './inUse';
import { DEFAULT_CHUNK_BYTES, readConsistentImage } from '../sqlite/image';
import { formatStamp, manifestNameFor, preRestoreName, restoreLockName } from '../store/naming';
import { pinSnapshot, removeStalePins } from '../store/pins';
import { examineSnapshot, problemError, type SnapshotReport } from './snapshotCheck';
import { looksEncrypted, notADatabase, parseHeader } from '../sqlite/sqliteFormat';
import { crashPoint } from '../common/testHooks';
import { acquireFolderLock, liveLockHolder, type FolderLock } from '../store/folderLock';
import { letSignalsIn, throwIfCancelled, type Progress } from '../common/cancel';
import { checkLabel, type CheckMode } from '../common/checks';
import { anchorFor } from '../store/catalog';
import type { OperatorPublicKey } from '../store/operatorKey';
import type { SignatureVerdict } from '../store/signing';
import { liveFacts } from './schemaGuard';
import { selectRestoreSource, type Selection } from './snapshotSelect';
import { findArchived, rebuildToTemp, type Rebuilt } from './archived';
import { rebuildArchived } from '../store/archive';

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
  /** Restore even though a process has the database open, the snapshot's schema is newer, or the file replaced is not ai-memory's (nor a database). */
  force?: boolean;
  /**
   * Restore even though a process has the database open — only that (`--force-in-use`; the
   * extension's "Restore Anyway"): a user who chose to restore under a running server has
   * not chosen to replace another program's file or to drop newer columns.
   */
  forceInUse?: boolean;
  /** ai-memory 1.0's --snapshot NAME (inside a --from folder). */
  snapshot?: string;
  /** ai-memory 1.0's --latest (inside a --from folder). */
  latest?: boolean;
  /** ai-memory 1.0's --allow-unsigned-manifest: accept an unsigned manifest although an operator key is configured. */
  allowUnsignedManifest?: boolean;
  /** The operator public key (undefined: resolved as ai-memory does; null: none). */
  anchor?: OperatorPublicKey | null;
  dryRun?: boolean;
  /**
   * Create the database when nothing is at `dbPath` — only for a path the user named
   * explicitly (--db, the aiMemory.databasePath setting), never for a discovered default.
   */
  createIfMissing?: boolean;
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
  /** The database path as given, when it differs from `db` (a symlink: the real file is replaced). */
  dbGiven?: string;
  /** Why the current database is kept as it is, without folding its WAL in (it is damaged). */
  damaged?: string;
  /** Whose snapshot it is (its manifest's source_db), and whether that is this database. */
  source: OwnerInfo;
  /** Where the current files will be kept (only those that exist). */
  keep: { from: string; to: string }[];
  /** The live -wal holds committed transactions that will be folded into the kept state first. */
  consolidate: boolean;
  holders: Holder[];
  /** How the snapshot was chosen, and what its signature says. */
  selection: Selection;
  signature?: SignatureVerdict;
  /** ai-memory 1.0's `manifest_verification` (plus `unsigned` / `signed_no_key` without an operator key). */
  verification: 'signed' | 'unsigned_allowed' | 'unsigned' | 'signed_no_key' | 'skipped';
  /** Dry run only: why the real restore would refuse (the database is in use), or undefined. */
  wouldRefuse?: { code: 'IN_USE'; message: string; hint: string };
}

export interface RestoreResult {
  status: 'restored' | 'dry-run';
  from: string;
  to: string;
  /** Where the previous database was kept. */
  previous?: string;
  /** Every file kept aside (the database and its sidecars). */
  keptAside: string[];
  /** There was no database: a new one was created at `to`. */
  created: boolean;
  sha256: string;
  bytes: number;
  plan: RestorePlan;
  report: SnapshotReport;
  warnings: string[];
  durationMs: number;
}

const CANCELLED = 'Restore cancelled; nothing was changed.';

/**
 * The snapshot a `--from` names: the file itself, or a folder's newest snapshot OF THIS
 * DATABASE (ownership.ts; by the time in the name, future-dated ones last). When the
 * folder holds none of this database's, the newest of the snapshots whose database is not
 * here (moved, renamed, another machine) or that name none, as long as they are of one
 * database only — and the warnings say whose it is; snapshots of another database that
 * exists here are never chosen without being named.
 */
/** Said when a snapshot is taken as this database's on a relative source_db (ownership.ts `guessed`). */
function guessWarning(name: string, raw: string | undefined, dbPath: string): string {
  return `${name}'s manifest names its database only as "${raw ?? ''}" (a relative path, as ai-memory's CLI writes it): it is taken as ${dbPath}, the database that path leads to from beside the backup folder — check it is, if other projects back up into this folder`;
}

/**
 * `noneOfThisHint`: what to do when the folder holds only other databases' snapshots, in the
 * words of the command asking (restore by default; inspect, diff and extract read, and take
 * no --db beside --from).
 */
export async function resolveRestoreSource(
  from: string,
  given: string,
  noneOfThisHint = 'Pass the snapshot file itself with --from to restore one of them (restore says whose it is), or point --db at the database they belong to.',
): Promise<{ snapshot: string; source: OwnerInfo; warnings: string[] }> {
  // Whose a snapshot is compares resolved paths (manifests hold the resolved source_db): the
  // database as SQLite resolves it, whatever form it was given in (`./x.db`, a link).
  const dbPath = await resolvedDbPathOr(given);
  const p = resolve(from);
  const warnings: string[] = [];
  /** Whose the snapshot file `p` is, by its manifest at `manifestPath` (beside it, or in the archive). */
  const fileSource = async (manifestPath: string): Promise<OwnerInfo> => {
    const m = await readManifestFor(basename(p), manifestPath);
    const [source] = await withOwners(dirname(p), dbPath, [{ manifest: m.manifest, manifestState: m.manifestState }]);
    if (source.guessed && source.owner === 'this') warnings.push(guessWarning(basename(p), m.manifest?.source_db, dbPath));
    return { owner: source.owner, source: source.source, guessed: source.guessed, host: source.host };
  };
  let st;
  try {
    st = await fsp.stat(p);
  } catch (e) {
    if (errnoCode(e) === 'ENOENT' && (await exists(p))) return { snapshot: p, source: { owner: 'unknown' }, warnings }; // a dangling symlink: examine() reports it
    // In the folder's page-dedup archive: whose it is comes from its manifest there.
    const archived = errnoCode(e) === 'ENOENT' ? await findArchived(p) : undefined;
    if (archived) return { snapshot: p, source: await fileSource(archived.manifestPath), warnings };
    if (errnoCode(e) !== 'ENOENT') throw ioError('reading', p, e); // a loop of links, a folder we may not enter: not "does not exist"
    throw new BackupError('SNAPSHOT_NOT_FOUND', `${p} does not exist.`, { hint: 'Pass a snapshot file or the backup folder with --from.' });
  }
  if (!st.isDirectory()) return { snapshot: p, source: await fileSource(join(dirname(p), manifestNameFor(basename(p)))), warnings };
  const listed = await withOwners(p, dbPath, await listSnapshots(p, { archived: true }));
  if (!listed.length) {
    throw new BackupError('NO_SNAPSHOTS', `No snapshots found in ${p}.`, { hint: 'Run `backup` first, or pass the folder that holds your ai-memory-*.db snapshots.' });
  }
  // "The newest" is among the snapshots that can be restored, named as snapshots are: a link
  // leading out of the folder is never restored (it would only block the choice), and a file
  // whose name is not a snapshot's (a sync tool's conflict copy, one copied in by hand) is
  // ranked by its file time, so it comes after every properly named one. When nothing else is
  // there, the list as it is: restore then says why that one cannot be restored.
  const entries = restoreOrder(listed);
  const pick = (e: (typeof entries)[number]) => {
    // Newer snapshots passed over because their manifest is missing, damaged or refused (a sync
    // tool that delivers the file before its manifest, an edit): named, never passed in silence.
    const unknown = entries.slice(0, entries.indexOf(e)).filter((x) => x.owner === 'unknown' && x.timeSource === 'name' && !x.future);
    if (unknown.length) {
      warnings.push(`${unknown.length === 1 ? `${unknown[0].name} is newer` : `${unknown.length} newer snapshots (${unknown.map((x) => x.name).join(', ')}) are newer`}, but without a usable manifest (${[...new Set(unknown.map((x) => `manifest ${x.manifestState}`))].join(', ')}) whose it is cannot be told: restoring ${e.name}. To restore a newer one, pass it with --from once its manifest is back`);
    }
    if (e.future) warnings.push(`${e.name} is dated in the future (a clock that was wrong, or a file copied in); it is restored only because no other snapshot of this database is there`);
    if (e.guessed && e.owner === 'this') warnings.push(guessWarning(e.name, e.manifest?.source_db, dbPath));
    return { snapshot: e.path, source: { owner: e.owner, source: e.source, guessed: e.guessed, host: e.host }, warnings };
  };
  // Known to be this database's first; one whose manifest names it by a relative path is a
  // guess (ownership.ts), taken when no other is there — a newer guess passed over is named.
  const mine = newestOfThis(entries, false);
  if (mine) {
    const newerGuess = entries.slice(0, entries.indexOf(mine)).find((e) => e.owner === 'this' && e.guessed);
    if (newerGuess) {
      warnings.push(`${newerGuess.name} is newer, but its manifest names its database only as "${newerGuess.manifest?.source_db ?? ''}" (a relative path, as ai-memory's CLI writes it), which cannot tell it from another project's: restoring ${mine.name}, the newest known to be of ${dbPath}. To restore ${newerGuess.name}, pass it with --from`);
    }
    // One of this path passed over as another machine's by the host name alone (no machine id
    // here or in its manifest: macOS, a container): a host name that changed (a laptop on
    // another network, a container made anew) makes this machine's own newer snapshot look so.
    const here = thisMachine();
    const byHost = entries.slice(0, entries.indexOf(mine)).find((e) => e.owner === 'gone' && e.host && !e.future && e.source && sameDbPath(e.source, dbPath) && !(e.manifest?.machine_id && here.machine_id));
    if (byHost) {
      warnings.push(`${byHost.name} is newer, of ${dbPath} too, but its manifest says it was taken on ${byHost.host}, and without machine ids only host names tell machines apart here: restoring ${mine.name}, the newest taken as ${here.host ?? 'this machine'}. If this machine was called ${byHost.host} then (a host name that changed), restore ${byHost.name} with --from`);
    }
    return pick(mine);
  }
  const guess = newestOfThis(entries);
  if (guess) return pick(guess);
  const groups = new Map<string, typeof entries>();
  for (const e of entries) {
    if (e.owner === 'other') continue;
    const key = e.owner === 'unknown' ? '' : ownerKey(e);
    groups.set(key, [...(groups.get(key) ?? []), e]);
  }
  if (groups.size === 1) {
    const [key, list] = [...groups.entries()][0];
    warnings.push(
      key
        ? list[0].host
          ? `no snapshot in ${p} was taken of ${dbPath} on this machine; restoring the newest one of ${ownerName(list[0])}, another machine's`
          : `no snapshot in ${p} was taken of ${dbPath}; restoring the newest one of ${key}, which is not on this machine (a moved or renamed database, or another machine's)`
        : `no snapshot in ${p} was taken of ${dbPath}; restoring the newest one, whose database is unknown (no usable manifest)`,
    );
    return pick(list[0]);
  }
  const bySource = new Map<string, number>();
  for (const e of entries) {
    const k = e.source ? ownerName(e) : '(no manifest)';
    bySource.set(k, (bySource.get(k) ?? 0) + 1);
  }
  throw new BackupError('NO_SNAPSHOTS', `None of the ${entries.length} snapshots in ${p} was taken of ${dbPath}: they are of ${[...bySource].map(([k, n]) => `${k} (${n})`).join(', ')}.`, {
    hint: noneOfThisHint,
  });
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
    await copyFileExcl(src, tmp);
    const fh = await fsp.open(tmp, fsc.O_RDONLY);
    await fh.sync().finally(() => fh.close());
    await fsp.link(tmp, dest).catch(async () => fsp.rename(tmp, dest));
  } catch (e) {
    throw ioError('keeping a copy of', src, e);
  } finally {
    await fsp.rm(tmp, { force: true }).catch(() => undefined);
  }
}

/** Writes a consistent image of `source` (main + committed WAL) to a new temp file beside `near`, with the mode and owner of `like`. */
async function consolidatedCopy(source: string, near: string, like: Likeness): Promise<string> {
  const sink = new TempFileSink(tempPath(dirname(near), 'consolidate'), { holdUpTo: 0, chunkBytes: DEFAULT_CHUNK_BYTES, mode: fileModeLike(like.mode) });
  try {
    await readConsistentImage(source, sink, { maxAttempts: 3 });
    await sink.finish();
    const fh = await fsp.open(sink.path, fsc.O_RDONLY);
    await applyLikeness(fh, like).finally(() => fh.close());
    return sink.path;
  } catch (e) {
    await sink.discard();
    throw e;
  }
}

/**
 * Makes `dir` and its missing parents, one level at a time, each no wider than a file of
 * `fileMode` (dirModeLike): returns those it made, deepest first ([] when `dir` existed).
 * A level someone else makes meanwhile is theirs (EEXIST), never ours to remove. On any
 * failure, the levels it made are removed again and the error says nothing was changed.
 * `dryRun`: makes nothing, only fails as making them would (a file on the way, no write
 * permission where the first one would go).
 */
async function makeFolders(dir: string, fileMode: number, dryRun: boolean): Promise<string[]> {
  const fail = (e: unknown, at: string): BackupError => {
    const code = errnoCode(e);
    const err =
      code === 'ENOTDIR' || code === 'EEXIST'
        ? new BackupError('TARGET_NOT_DIRECTORY', `Cannot create the database's folder ${dir}: part of that path (${at}) is a file.`, { hint: 'Point --db somewhere else.' })
        : ioError('creating folder', at, e);
    return new BackupError(err.code, err.message, { hint: err.hint, state: 'Nothing was changed.', cause: e });
  };
  await refuseSidecarFolder(dir, "The database's folder", 'Point --db somewhere else.');
  const missing: string[] = [];
  for (let d = dir; ; d = dirname(d)) {
    const st = await fsp.stat(d).catch((e: unknown) => {
      if (errnoCode(e) === 'ENOENT' || errnoCode(e) === 'ENOTDIR') return undefined; // ENOTDIR: a file further up, found there
      throw fail(e, d);
    });
    if (st) {
      if (!st.isDirectory()) throw fail(Object.assign(new Error('not a directory'), { code: 'ENOTDIR' }), d);
      if (dryRun && missing.length) await fsp.access(d, fsc.W_OK | fsc.X_OK).catch((e: unknown) => Promise.reject(fail(e, missing[missing.length - 1])));
      break;
    }
    missing.push(d);
    if (dirname(d) === d) break;
  }
  if (dryRun) return [];
  const made: string[] = [];
  for (const d of missing.reverse()) {
    try {
      await fsp.mkdir(d, { mode: dirModeLike(fileMode) });
      made.unshift(d);
    } catch (e) {
      if (errnoCode(e) === 'EEXIST' && (await isDirectory(d))) continue; // made by someone else: theirs
      for (const m of made) await fsp.rmdir(m).catch(() => undefined);
      throw fail(e, d);
    }
  }
  return made;
}

/**
 * Run as root: the owner and group of the nearest folder on the way to `dir` that exists,
 * when that is another user — a new database made there is theirs (the agent that uses it
 * runs as them). Undefined when not root, or when that folder is root's.
 */
async function ownerForNewFiles(dir: string): Promise<{ uid: number; gid: number } | undefined> {
  if (process.platform === 'win32' || process.geteuid?.() !== 0) return undefined;
  for (let d = dir; ; d = dirname(d)) {
    const st = await fsp.stat(d).catch(() => undefined);
    if (st?.isDirectory()) return st.uid !== 0 ? { uid: st.uid, gid: st.gid } : undefined;
    if (dirname(d) === d) return undefined;
  }
}

/** A folder made for a new database gets its owner (ownerForNewFiles) and `mode` (its group bits only for the group they were meant for). */
async function giveFolder(d: string, owner: { uid: number; gid: number }, mode: number): Promise<void> {
  try {
    await fsp.chown(d, owner.uid, owner.gid);
    await fsp.chmod(d, mode);
  } catch (e) {
    throw ioError('giving the owner of its folder to', d, e);
  }
}

/** What is at a database's path and its sidecars' (dev:ino, or undefined where nothing is), not following links. */
async function filesAt(dbPath: string): Promise<Map<string, string | undefined>> {
  const out = new Map<string, string | undefined>();
  for (const p of [dbPath, ...SIDECARS.map((x) => dbPath + x)]) {
    const st = await fsp.lstat(p, { bigint: true }).catch((e: unknown) => {
      if (errnoCode(e) === 'ENOENT' || errnoCode(e) === 'ENOTDIR') return undefined;
      throw ioError('checking', p, e);
    });
    out.set(p, st ? `${st.dev}:${st.ino}` : undefined);
  }
  return out;
}

/** How the files at a database's path differ from the plan's (appeared, replaced, gone), or undefined. */
async function changedSincePlan(dbPath: string, planned: Map<string, string | undefined>): Promise<string | undefined> {
  const now = await filesAt(dbPath);
  for (const [p, was] of planned) {
    const is = now.get(p);
    if (is === was) continue;
    return was === undefined ? `${p} appeared` : is === undefined ? `${p} disappeared` : `${p} was replaced`;
  }
  return undefined;
}

async function isDirectory(path: string): Promise<boolean> {
  return (await fsp.stat(path).catch(() => undefined))?.isDirectory() === true;
}

/**
 * Why the current database cannot be read as a database (so there is nothing to fold in),
 * or undefined when it can. A hot journal counts: its consistent state exists only after
 * SQLite rolls the journal back, which the kept copy (with its -journal) still allows.
 * `foreign`: why the file is not what is left of a database at all (notADatabase).
 */
async function damage(dbPath: string): Promise<{ why: string; foreign?: string } | undefined> {
  let fh;
  let size: number;
  try {
    ({ fh, size } = await openRegular(dbPath));
  } catch (e) {
    return { why: `it cannot be read (${e instanceof Error ? e.message : String(e)})` };
  }
  try {
    if (size === 0) return { why: 'it is empty (0 bytes)' };
    const head = Buffer.alloc(4096);
    const { bytesRead } = await fh.read(head, 0, head.length, 0);
    const first = head.subarray(0, bytesRead);
    if (!parseHeader(first) && !looksEncrypted(first, size)) return { why: 'it is not an SQLite database (its header is damaged)', foreign: notADatabase(first, size) };
  } finally {
    await fh.close();
  }
  if (await journalIsLive(dbPath)) return { why: 'it has a hot rollback journal (a writer crashed mid-transaction)' };
  return undefined;
}

export async function runRestore(opts: RestoreOptions): Promise<RestoreResult> {
  const at = { placing: false };
  try {
    // One restore of a database at a time: a second (a double click, another window, the
    // window reloaded while its restore went on in the background, a terminal) is refused at
    // once. Two at once both said "Restored", the later one's snapshot winning; or the second
    // failed halfway on the first's kept copy. A dry run changes nothing and takes no lock.
    const lock = opts.dryRun ? undefined : await lockDatabase(opts.dbPath, opts.signal);
    try {
      return await restore(opts, at, lock);
    } finally {
      await lock?.release();
    }
  } catch (e) {
    // Every failure before the swap began changed nothing (the folders a new database would
    // have had are removed again): said so, once, whatever the failure was (a damaged pack,
    // a cancel, a sha256 mismatch). place() says itself what it left where.
    if (at.placing || !isBackupError(e) || e.state || /nothing was changed/i.test(e.message)) throw e;
    throw new BackupError(e.code, e.message, { hint: e.hint, state: 'Nothing was changed.', cause: e.cause });
  }
}

/** The restore lock held by runRestore; `beside` moves it next to the database once its folder exists. */
interface RestoreLock {
  /** Takes the lock beside the database (its folder made now) if it was held elsewhere, then lets the other go. */
  beside(): Promise<void>;
  release(): Promise<void>;
}

function restoreLockOptions(real: string, name: string, signal?: AbortSignal) {
  return {
    purpose: 'restore',
    name,
    waitMs: 0,
    signal,
    busy: (holder: string) => ({
      message: `Another restore of ${real} is running (${holder}). Nothing was changed.`,
      hint: 'Wait for it to finish, then look at what the database holds before restoring again.',
    }),
  };
}

/**
 * The restore lock of a database: `.<name>.ai-memory-restore.lock` beside its real file (a
 * symlinked path locks where it leads). The folder lock's rules: a dead holder's lock (a
 * restore killed with its window) is taken over.
 *
 * A database whose folder does not exist yet is locked in the nearest folder that does,
 * under a name holding the whole rest of its path (`.new%2Fmemories.db.ai-memory-restore.lock`),
 * until its folder is made; then beside it, as every later restore of it looks there. Before,
 * the lock stayed in that other folder under the database's bare name: a second restore
 * started once the first had made the folder took the lock beside the database, which was
 * free, and both ran; and a restore of another database of that name in the folder that did
 * exist (`~/memories.db` while `~/new/memories.db` was restored) was refused.
 */
async function lockDatabase(dbPath: string, signal?: AbortSignal): Promise<RestoreLock> {
  const real = (await resolveDbPath(dbPath)).path;
  const folder = dirname(real);
  const nameIn = (dir: string): string => {
    if (dir === folder) return restoreLockName(basename(real));
    const rest = relative(dir, real);
    const encoded = encodeURIComponent(rest);
    // A file name has 255 bytes at most: a deep path is named by its hash.
    return restoreLockName(encoded.length <= 200 ? encoded : createHash('sha256').update(rest).digest('hex').slice(0, 32));
  };
  let dir = folder;
  while (!(await isDirectory(dir)) && dirname(dir) !== dir) dir = dirname(dir);
  let lock: FolderLock = await acquireFolderLock(dir, restoreLockOptions(real, nameIn(dir), signal));
  let isBeside = dir === folder;
  // Holding the lock beside the database: a restore of it that began before its folder existed
  // may still hold its lock in a folder above (until it has made the folder and taken the lock
  // here, which we now hold): it runs, so this one is refused.
  const refuseIfBegunAbove = async () => {
    // (A database in the root folder has no folder above: the loop would read its own lock.)
    for (let above = dirname(folder); above !== folder; above = dirname(above)) {
      const holder = await liveLockHolder(join(above, nameIn(above)));
      if (holder) {
        await lock.release();
        const busy = restoreLockOptions(real, '', signal).busy(holder);
        throw new BackupError('LOCKED', busy.message, { hint: busy.hint });
      }
      if (dirname(above) === above) return;
    }
  };
  if (isBeside) await refuseIfBegunAbove();
  return {
    async beside() {
      if (isBeside) return;
      const there = await acquireFolderLock(folder, restoreLockOptions(real, nameIn(folder), signal));
      await lock.release();
      lock = there;
      isBeside = true;
      await refuseIfBegunAbove();
    },
    release: () => lock.release(),
  };
}

async function restore(opts: RestoreOptions, at: { placing: boolean }, lock: RestoreLock | undefined): Promise<RestoreResult> {
  const started = Date.now();
  const now = opts.now ?? (() => new Date());
  const progress = opts.onProgress ?? (() => undefined);
  const warnings: string[] = [];

  // The live database, resolved once as SQLite does (dbFiles.ts); a folder is refused.
  const loc = await resolveDbPath(opts.dbPath);
  const dbPath = loc.path;
  let dbExists = false;
  try {
    const st = await fsp.stat(dbPath);
    if (st.isDirectory()) {
      throw new BackupError('DB_IS_DIRECTORY', `${dbPath} is a directory, not a database file.`, { hint: 'Point --db at the ai-memory .db file.' });
    }
    // A FIFO, a socket or a device is no database, damaged or not (damage() is for files that
    // SQLite would open): a path that names one is a wrong path. Moved aside and replaced, it
    // broke whatever uses it (as root, even /dev/null).
    if (!st.isFile()) {
      throw new BackupError('DB_IS_DIRECTORY', `${dbPath}${loc.viaLink ? ` (where ${loc.given} leads)` : ''} is ${kindOf(st)}, not a database file. Nothing was changed.`, { hint: 'Point --db at the ai-memory .db file.' });
    }
    dbExists = true;
  } catch (e) {
    if (isBackupError(e)) throw e;
    if (errnoCode(e) !== 'ENOENT' && errnoCode(e) !== 'ENOTDIR') throw ioError('checking', dbPath, e);
  }
  if (!dbExists && !opts.createIfMissing) {
    throw new BackupError('DB_NOT_FOUND', `Database not found: ${dbPath}${loc.viaLink ? ` (where ${loc.given} leads)` : ''}. Nothing was created.`, {
      hint: 'To restore into a new database there (a new machine), name it explicitly: --db PATH.',
    });
  }

  const anchor = opts.skipVerify ? undefined : await anchorFor(opts.anchor);
  // ai-memory 1.0's --snapshot/--latest choose by name or by signed time; otherwise a folder
  // means this database's newest snapshot (its manifest's source_db), a file that file.
  let selection: Selection;
  let chosen: { snapshot: string; source: OwnerInfo; warnings: string[] };
  if (opts.snapshot !== undefined || opts.latest) {
    selection = await selectRestoreSource(opts.from, { snapshot: opts.snapshot, latest: opts.latest, anchor, dbPath });
    chosen = await resolveRestoreSource(selection.path, dbPath);
  } else {
    chosen = await resolveRestoreSource(opts.from, dbPath);
    selection = { path: chosen.snapshot, selectedBy: 'explicit', skipped: [] };
  }
  const snapshot = chosen.snapshot;
  warnings.push(...chosen.warnings);
  if (!chosen.warnings.length && chosen.source.owner !== 'this') {
    warnings.push(
      chosen.source.source
        ? chosen.source.host
          ? `${basename(snapshot)} was taken on another machine (${chosen.source.host}), of its ${chosen.source.source}: not of this machine's ${dbPath}`
          : `${basename(snapshot)} was taken of ${chosen.source.source}, not of ${dbPath}`
        : `${basename(snapshot)} has no usable manifest: whose database it was taken of is unknown`,
    );
  }
  // The file alone must be the whole state: a -wal beside it with committed transactions
  // (a database copied as it ran, a kept *.pre-restore-* copy) or a live rollback journal
  // would be silently left out of a byte copy.
  if ((await walHasCommits(snapshot)) || (await journalIsLive(snapshot))) {
    throw new BackupError('SOURCE_HAS_WAL', `${snapshot} is not a complete snapshot: ${(await journalIsLive(snapshot)) ? 'a live rollback journal' : 'a -wal holding committed transactions'} beside it is part of its state, and restoring the file alone would lose that. Nothing was changed.`, {
      hint: `Make a snapshot of it first (\`backup --db ${snapshot} --to DIR\` reads the file and its WAL consistently), then restore that snapshot.`,
    });
  }
  const unpin = await pinSnapshot(dirname(snapshot), basename(snapshot));
  let rebuilt: Rebuilt | undefined;
  try {
    crashPoint('restore:after-pin');
    throwIfCancelled(opts.signal, CANCELLED);
    const integrity = opts.skipIntegrity ? 'off' : (opts.verify ?? 'quick');
    // The one read of the snapshot also writes the copy that will be put in place (beside
    // the database, so the final rename stays on one file system) and SQLite checks that
    // copy: what is placed is exactly what was hashed and checked. A database folder that
    // does not exist yet (a new machine) is made first, so the copy is written once there
    // too (an archived snapshot was rebuilt in the backup folder and then copied again:
    // 1.6x the time); the folders made are removed again unless the restore completes. A
    // dry run checks the snapshot itself and makes nothing.
    const dir = dirname(dbPath);
    // Folders made for it are no wider than the snapshot (an archived one: its manifest's mode, which its rebuild gets).
    const archivedRef = await findArchived(snapshot);
    // As its folders let others reach it, group bits only for its own group (atomicFs.reachableMode).
    const snapMode = await reachableMode(archivedRef ? archivedRef.manifestPath : snapshot, dir).catch(() => 0o600);
    // Run as root, a new database (and the folders made for it) belongs to the owner of the
    // folder it is made in: root's own file in /home/alice/.claude could not be opened by
    // alice's ai-memory server at all. Judged before anything is made.
    const newOwner = await ownerForNewFiles(dir);
    const countedGid = await newFileGid(dir); // the group snapMode's group bits were meant for
    const made = await makeFolders(dir, snapMode, opts.dryRun === true);
    // Its folder exists now: the lock goes beside the database, where any later restore of it looks.
    await lock?.beside().catch(async (e: unknown) => {
      await lock.release();
      for (const d of made) await fsp.rmdir(d).catch(() => undefined);
      throw e;
    });
    const tmp = !opts.dryRun && (made.length > 0 || (await isDirectory(dir))) ? tempPath(dir, 'restore') : undefined;
    let tmpOwned = tmp !== undefined;
    let completed = false;
    try {
      if (newOwner) for (const d of made) await giveFolder(d, newOwner, newOwner.gid === countedGid ? dirModeLike(snapMode) : dirModeLike(snapMode) & ~0o070);
      // An archived snapshot is rebuilt first, the whole file checked against
      // its index and manifest: straight into that copy beside the database when there is
      // one (one write, as for a plain snapshot), else into a temp file in the backup folder.
      // Then it is examined (its sha256 the one the rebuild computed from the bytes it wrote,
      // as the copy of a plain snapshot is hashed as it is written; then checked) and placed
      // like a plain one, whose placed file is hashed once more.
      const archived = archivedRef;
      let source = snapshot;
      let rebuiltInPlace = false;
      let hashed: string | undefined;
      if (archived) {
        progress({ phase: 'reading', message: `rebuilding ${archived.name} from the archive` });
        const onBytes = (done: number, total: number) => progress({ phase: 'reading', done, total });
        if (tmp) {
          hashed = (await rebuildArchived(archived.dir, archived.name, tmp, { signal: opts.signal, onBytes })).sha256;
          crashPoint('archive:after-rebuild');
          rebuiltInPlace = true;
          source = tmp;
        } else {
          rebuilt = await rebuildToTemp(archived, { signal: opts.signal, onBytes });
          source = rebuilt.file;
          hashed = rebuilt.result.sha256;
        }
      }
      progress({ phase: 'hashing', message: `checking ${basename(snapshot)}` });
      const { report, copied: copiedNow } = await examineSnapshot(source, {
        as: archived ? { name: archived.name, manifestPath: archived.manifestPath, path: archived.path } : undefined,
        useManifest: !opts.skipVerify,
        anchor: anchor ?? null,
        unsignedIsProblem: true,
        allowUnsigned: opts.allowUnsignedManifest,
        integrity,
        stopAtFirst: true,
        encryptedIsProblem: true,
        copyTo: rebuiltInPlace ? undefined : tmp,
        // The rebuild hashed the bytes it wrote (as the copy of a plain snapshot does): not read again.
        hashed,
        signal: opts.signal,
        onBytes: (done, total) => progress({ phase: 'hashing', done, total }),
      });
      const copied = copiedNow || rebuiltInPlace;
      if (report.problems.length) throw problemError(report.problems[0]);
      const sha256 = report.sha256 as string;
      if (selection.skipped.length) warnings.push(`--latest only considers snapshots whose signed manifest verifies, and one dated in the future only when no other verifies; skipped: ${selection.skipped.join(', ')}`);
      if (report.signature?.state === 'signed-no-key') warnings.push('the manifest is signed, but no operator public key is configured here to check it: only its plain sha256 and size were checked');
      if (report.signature?.state === 'unsigned' && anchor) warnings.push(`restoring a snapshot whose manifest is NOT signed (--allow-unsigned-manifest): nothing but its plain sha256 vouches for it`);

      // A snapshot from a newer ai-memory would lose its newer columns under the older one.
      const snapSchema = report.integrity?.schemaVersion ?? report.manifest?.schema_version;
      const snapIsAiMemory = report.integrity?.memories !== undefined || report.manifest?.memory_count !== undefined || report.manifest?.memories !== undefined;
      const read = dbExists && (snapSchema !== undefined || snapIsAiMemory) ? await liveFacts(dbPath, opts.signal) : undefined;
      const liveNow = read && !('unknown' in read) ? read : undefined;
      const unknown = read && 'unknown' in read ? read : undefined;
      // Whose database it is cannot be told (encrypted: no schema without its key). An
      // ai-memory snapshot is plain SQLite, which neither another program's encrypted database
      // nor an encrypted (SQLCipher) ai-memory opens: refused as another program's; --force.
      // (An encrypted snapshot over an encrypted database — SQLCipher to SQLCipher, with
      // --skip-integrity — is no such mismatch: not refused.)
      if (snapIsAiMemory && unknown?.encrypted && report.format !== 'encrypted') {
        if (!opts.force) {
          throw new BackupError('NOT_AI_MEMORY', `${dbPath} cannot be told to be an ai-memory database (${unknown.unknown}), and ${basename(snapshot)} is a plain ai-memory snapshot, which an encrypted database's program cannot open. Nothing was changed.`, {
            hint: 'Point --db at your ai-memory database. To replace this file anyway (it is kept aside first), pass --force.',
          });
        }
        warnings.push(`${dbPath} could not be told to be an ai-memory database (${unknown.unknown}); replaced (--force), kept aside`);
      } else if (snapIsAiMemory && unknown) {
        warnings.push(`whether ${dbPath} is an ai-memory database could not be told (${unknown.unknown}); it is kept aside`);
      }
      // An ai-memory snapshot over a database with tables but no memories table: another
      // program's database (a browser's history, an app's data), reached by a wrong --db — a
      // workspace's MCP file, a mistyped or chosen path. Moved aside and replaced, that program
      // found an ai-memory database in its place. Refused; --force restores anyway.
      if (snapIsAiMemory && liveNow && !liveNow.hasMemories && liveNow.tableCount > 0) {
        const holds = `${liveNow.tables.join(', ')}${liveNow.tableCount > liveNow.tables.length ? `, … (${liveNow.tableCount} tables)` : ''}`;
        if (!opts.force) {
          throw new BackupError('NOT_AI_MEMORY', `${dbPath} is not an ai-memory database (it has no memories table; its tables: ${holds}), and ${basename(snapshot)} is one: restoring would put ai-memory's database in place of another program's. Nothing was changed.`, {
            hint: 'Point --db at your ai-memory database. To replace this file anyway (it is kept aside first), pass --force.',
          });
        }
        warnings.push(`${dbPath} was not an ai-memory database (its tables: ${holds}); replaced by an ai-memory snapshot (--force), kept aside`);
      }
      if (snapSchema !== undefined && dbExists) {
        const live = liveNow?.schemaVersion;
        if (live !== undefined && snapSchema > live) {
          if (!opts.force) {
            throw new BackupError('SCHEMA_NEWER', `${basename(snapshot)} is on schema version ${snapSchema}, newer than the database it would replace (schema version ${live}). Nothing was changed.`, {
              hint: 'The ai-memory that uses this database would silently drop the newer columns. Upgrade ai-memory first, or pass --force to restore anyway.',
            });
          }
          warnings.push(`the snapshot's schema version ${snapSchema} is newer than the replaced database's ${live} (--force)`);
        }
      }

      // The set kept aside: the database and every sidecar SQLite may open beside it,
      // whether or not the database file itself exists (a stray -journal or -wal beside a
      // missing database would be replayed into the restored file).
      const planned = await filesAt(dbPath);
      const present = SIDECARS.map((x) => planned.get(dbPath + x) !== undefined);
      // The database as the restore began (dbExists) must still be there, or still be absent.
      if ((planned.get(dbPath) !== undefined) !== dbExists) {
        throw new BackupError('IN_USE', `${dbPath} ${dbExists ? 'disappeared' : 'appeared'} during the restore: something else writes there. Nothing was changed.`, {
          hint: 'Check what uses this database path, then restore again (what is there then is kept aside first).',
        });
      }
      const holders = dbExists || present.some(Boolean) ? await findHolders(dbPath) : [];
      const stamp = formatStamp(now());
      const aside = await asideName(dbPath, stamp);
      const keep: { from: string; to: string }[] = [];
      if (dbExists) keep.push({ from: dbPath, to: aside });
      SIDECARS.forEach((x, i) => {
        if (present[i]) keep.push({ from: dbPath + x, to: aside + x });
      });
      const hurt = dbExists ? await damage(dbPath) : undefined;
      // A file that is no database, damaged or not (a wrong --db: a shell profile, a config, a
      // key): moved aside and replaced, the program that reads it found a database in its
      // place. Refused, as another program's database is; --force restores anyway.
      if (hurt?.foreign) {
        if (!opts.force) {
          throw new BackupError('NOT_AI_MEMORY', `${dbPath} is not a database, nor what is left of one (${hurt.foreign}): restoring would put ai-memory's database in place of another file. Nothing was changed.`, {
            hint: 'Point --db at your ai-memory database. If this file is what is left of it, pass --force: it is kept aside first.',
          });
        }
        warnings.push(`${dbPath} was not a database (${hurt.foreign}); replaced (--force), kept aside`);
      }
      const damaged = hurt?.why;
      // A database file with other names (hard links): SQLite takes each name for a database of
      // its own (its own -wal), and the restore gives the new file to this name only — an agent
      // configured with another name goes on with the old contents, which the kept copy shares.
      const links = dbExists ? ((await fsp.stat(dbPath).catch(() => undefined))?.nlink ?? 1) : 1;
      if (links > 1) warnings.push(`${dbPath} has ${links - 1} other name${links === 2 ? '' : 's'} (hard link${links === 2 ? '' : 's'}): the restore replaces only this name; an agent configured with another name goes on with the current contents (also kept at ${aside}). Point it at ${dbPath}, or replace the other name with a symbolic link to it`);
      if (damaged) warnings.push(`the current database is damaged (${damaged}): it is kept as it is, with its sidecars, at ${aside}`);
      const consolidate = dbExists && !damaged && (await walHasCommits(dbPath));
      const checks = [
        opts.skipVerify ? 'manifest check skipped (--skip-verify)' : `sha256 and size match ${basename(report.manifestPath)}`,
        integrity === 'off' ? 'integrity check skipped (--skip-integrity)' : `PRAGMA ${checkLabel(integrity)}: ok`,
      ];
      if (report.signature?.state === 'verified') checks.unshift(`manifest signed by the operator key ${report.signature.fingerprint} (verified; its signed values were used)`);
      const sig = report.signature?.state;
      const verification = opts.skipVerify || !sig ? 'skipped' : sig === 'verified' ? 'signed' : sig === 'signed-no-key' ? 'signed_no_key' : anchor ? 'unsigned_allowed' : 'unsigned';
      const plan: RestorePlan = { snapshot, manifest: opts.skipVerify ? undefined : report.manifestPath, checks, db: dbPath, dbExists, dbGiven: loc.viaLink ? loc.given : undefined, damaged, source: chosen.source, keep, consolidate, holders, selection, signature: report.signature, verification };
      const done = (status: RestoreResult['status']): RestoreResult => ({
        status,
        from: snapshot,
        to: dbPath,
        previous: dbExists ? aside : undefined,
        keptAside: keep.map((k) => k.to),
        created: !dbExists,
        sha256,
        bytes: report.bytes,
        plan,
        report,
        warnings,
        durationMs: Date.now() - started,
      });

      const inUseAllowed = opts.force || opts.forceInUse;
      if (holders.length && !inUseAllowed) {
        const refusal = { code: 'IN_USE' as const, message: `The database is in use by ${describeHolders(holders)}. Nothing was changed.`, hint: 'Stop your agent (or the ai-memory server) first, then restore. --force restores anyway.' };
        // A dry run still shows the whole plan, and says it would be refused.
        if (opts.dryRun) {
          plan.wouldRefuse = refusal;
          return done('dry-run');
        }
        throw new BackupError(refusal.code, refusal.message, { hint: refusal.hint });
      }
      if (holders.length) warnings.push(`restoring while the database is open by ${describeHolders(holders)} (${opts.force ? '--force' : '--force-in-use'})`);
      if (opts.dryRun) {
        return done('dry-run');
      }
      throwIfCancelled(opts.signal, CANCELLED);

      await fsp.mkdir(dir, { recursive: true }).catch((e: unknown) => {
        throw ioError('creating folder', dir, e);
      });
      await cleanStaleTemps(dir); // ours is alive (this pid): kept
      // Checked again right before the swap: the server may have started since the plan was
      // made, and the files the plan keeps aside must still be the ones there. A database
      // made (and closed) at that path meanwhile would otherwise be replaced with no copy
      // kept; a sidecar that appeared would be deleted unkept.
      const recheck = async () => {
        const changed = await changedSincePlan(dbPath, planned);
        if (changed) {
          throw new BackupError('IN_USE', `${changed} during the restore: something else writes there.`, {
            hint: 'Check what uses this database path, then restore again (what is there then is kept aside first).',
          });
        }
        if (inUseAllowed) return;
        const now = await findHolders(dbPath);
        if (now.length) {
          throw new BackupError('IN_USE', `The database was opened by ${describeHolders(now)} during the restore.`, {
            hint: 'Stop your agent (or the ai-memory server) first, then restore again.',
          });
        }
      };
      // The placed file gets the mode and (where permitted) the owner of the file it replaces;
      // a new database the snapshot's mode (never wider than its source's), owned by us.
      // (A new file's group is the one reachableMode counted on: the folder's when it is set-group-ID.)
      const like = (await likenessOf(dbPath)) ?? (newOwner ? { mode: snapMode & 0o666 & (newOwner.gid === countedGid ? 0o777 : 0o707), ...newOwner } : undefined) ?? { mode: snapMode & 0o666, uid: process.getuid?.() ?? -1, gid: (await newFileGid(dir)) ?? process.getgid?.() ?? -1 };
      tmpOwned = !copied; // place() owns the copy now (renames it, or removes it on failure)
      at.placing = true;
      await place({ dbPath, snapshot: source, tmp: copied ? tmp : undefined, sha256, keep, consolidate, damaged, like, progress, signal: opts.signal, recheck });
      // Pins (and pin temps) left by restores that died (killed, power cut) are dropped; live pins stay.
      await removeStalePins(dirname(snapshot));
      await cleanStaleTemps(dirname(snapshot));
      completed = true;
      return done('restored');
    } finally {
      if (tmpOwned && tmp) await fsp.rm(tmp, { force: true }).catch(() => undefined);
      // Deepest first; only empty ones (rmdir): anything put there meanwhile keeps its folder.
      // Our lock beside the database goes first (a folder holding it is not empty).
      if (!completed && made.length) await lock?.release();
      if (!completed) for (const d of made) await fsp.rmdir(d).catch(() => undefined);
    }
  } finally {
    await rebuilt?.done();
    await unpin();
  }
}

/** The copy when examineSnapshot could not make it (the folder did not exist yet): copy, then prove the copy is what was verified. */
async function writeTemp(tmp: string, snapshot: string, sha256: string, signal: AbortSignal | undefined, like: Likeness): Promise<void> {
  try {
    await copyFileExcl(snapshot, tmp);
    const fh = await fsp.open(tmp, fsc.O_RDONLY);
    await applyLikeness(fh, like)
      .then(() => fh.sync())
      .finally(() => fh.close());
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
  /** The verified copy beside the database, made while the snapshot was examined; undefined: copy now. */
  tmp: string | undefined;
  sha256: string;
  keep: { from: string; to: string }[];
  consolidate: boolean;
  /** The current database is damaged: kept as it is, never folded or put back by us. */
  damaged: string | undefined;
  like: Likeness;
  progress: (p: Progress) => void;
  signal: AbortSignal | undefined;
  recheck: () => Promise<void>;
}): Promise<void> {
  const dir = dirname(s.dbPath);
  const tmp = s.tmp ?? tempPath(dir, 'restore');
  const kept: string[] = [];
  // 'untouched': the live files are as they were; 'changed': the live name holds the old
  // content in another form (consolidated, or without an empty WAL); 'swapped': it holds the new file.
  let stage: 'untouched' | 'changed' | 'swapped' = 'untouched';
  try {
    if (!s.tmp) {
      s.progress({ phase: 'placing', message: 'writing the snapshot beside the database' });
      await writeTemp(tmp, s.snapshot, s.sha256, s.signal, s.like);
    } else {
      // The copy made while the snapshot was examined: the replaced file's mode and owner.
      const fh = await fsp.open(tmp, fsc.O_RDONLY);
      await applyLikeness(fh, s.like).finally(() => fh.close());
    }
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
      const merged = await consolidatedCopy(s.dbPath, s.dbPath, s.like);
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

    if (s.keep.some((k) => k.from === s.dbPath)) {
      await fsp.rename(tmp, s.dbPath).catch((e: unknown) => {
        throw ioError('placing the snapshot at', s.dbPath, e);
      });
    } else if (!(await publishNoClobber(tmp, s.dbPath))) {
      // No database was there (the plan, rechecked a moment ago): one that appeared since is never replaced.
      throw new BackupError('IN_USE', `${s.dbPath} appeared during the restore: something else writes there.`, {
        hint: 'Check what uses this database path, then restore again (what is there then is kept aside first).',
      });
    }
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
    if (stage === 'swapped' && keptDb && !s.damaged) {
      // Put the old database back as one consistent file (its main file + WAL merged).
      try {
        const back = await consolidatedCopy(keptDb, s.dbPath, s.like);
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
    } else if (s.damaged || !keptDb) {
      state = keptDb
        ? `Your previous (damaged) database is kept as it was, with its sidecars, at ${keptDb}.`
        : `The sidecars that were beside ${s.dbPath} are kept at ${s.keep.map((k) => k.to).join(', ')}.`;
    } else {
      state = `Your previous database is still at ${s.dbPath} (its WAL folded in), and a copy as it was is kept at ${keptDb}.`;
    }
    if (isBackupError(e)) throw new BackupError(e.code, e.message, { hint: e.hint, state, cause: e.cause });
    throw new BackupError('RESTORE_FAILED', `Restore failed: ${what}`, { state, cause: e });
  }
}
