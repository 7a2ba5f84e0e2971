/**
 * Retention for a backup folder: which snapshots the policy keeps and why, and deleting the
 * rest — used by `backup` after each new snapshot and by `prune`.
 *
 * Only snapshots of THIS database (their manifest's source_db, ownership.ts) named in the
 * shared format (their time is in the name) and not symlinks take part; anything else in the
 * folder (another database's snapshots, snapshots without a usable manifest, pre-restore
 * copies, foreign files, other names) is never deleted, nor archived. Never deleted either, whatever the policy: the newest snapshot, the one
 * just written, and those pinned by a running restore (pins are read again right before
 * each delete, so a restore that began after the plan was made is honoured too).
 */
import { describeHolders, filesInUse, type Holder } from './inUse';
import { promises as fsp } from 'node:fs';
import { resolve } from 'node:path';
import { BackupError, errorMessage } from '../common/errors';
import { collectAll } from '../common/gc';
import { crashPoint } from '../common/testHooks';
import { fsyncDir } from '../store/atomicFs';
import { archiveFoldersProblem, archivedProblem, archivePaths, archiveSnapshot, collectGarbage, deleteArchived, dropPlain, listArchived, PackStore, type ArchivedSnapshot, type GcResult } from '../store/archive';
import { listSnapshots, type SnapshotEntry } from '../store/catalog';
import { withOwners, type OwnerInfo } from '../store/ownership';
import { acquireFolderLock } from '../store/folderLock';
import { resolveDbPath, sameDbPath } from '../sqlite/dbFiles';
import { pinnedSnapshots, withPinWatch, removeStalePins, type PinWatch } from '../store/pins';
import { applyRetention, DEFAULT_POLICY, describePolicy, policyFromKeep, reasonsText, validatePolicy, type KeepReason, type RetentionPolicy } from '../store/retention';

export interface PruneDecision {
  name: string;
  path: string;
  time: number;
  keep: boolean;
  reasons: KeepReason[];
  /** "hourly 3 of 48 (2026-11-29 14h)"; empty when not kept. */
  why: string;
  entry: SnapshotEntry & Partial<OwnerInfo>;
}

/** Whose snapshots retention and archiving act on: the database (resolved) and the clock for "future". */
export interface OwnerScope {
  dbPath: string;
  now?: number;
}

export function normalizePolicy(p: RetentionPolicy | number | undefined): RetentionPolicy {
  if (p === undefined) return DEFAULT_POLICY;
  if (typeof p === 'number') {
    if (!Number.isInteger(p) || p < 0) throw new BackupError('USAGE', `--keep must be a whole number ≥ 0, got ${p}.`);
    return policyFromKeep(p);
  }
  try {
    validatePolicy(p);
  } catch (e) {
    throw new BackupError('USAGE', `--${(e as Error).message}.`);
  }
  return p;
}

/**
 * The snapshots retention may consider: shared-format names, real files, of this database
 * (when owners are known) — known for sure: one whose manifest names its database by a
 * relative path (ownership.ts `guessed`) is never deleted on that guess.
 */
export function retentionCandidates<T extends SnapshotEntry & Partial<OwnerInfo>>(entries: T[]): T[] {
  return entries.filter((e) => e.timeSource === 'name' && !e.symlink && (e.owner === undefined || (e.owner === 'this' && !e.guessed)));
}

/** This database's snapshots in `dir`, plain and archived, newest first, each with its owner. */
export async function ownedSnapshots(dir: string, scope: OwnerScope): Promise<(SnapshotEntry & OwnerInfo)[]> {
  return retentionCandidates(await withOwners(dir, scope.dbPath, await listSnapshots(dir, { archived: true, now: scope.now })));
}

/** Decides what the policy keeps in `dir`, newest first, with reasons. Changes nothing. */
export async function planRetention(
  dir: string,
  policy: RetentionPolicy,
  opts: { justWritten?: string; pinned?: Set<string>; entries?: SnapshotEntry[]; zone?: string } & OwnerScope,
): Promise<PruneDecision[]> {
  // Given entries are the caller's choice of one database's snapshots (list applies the policy per database).
  const entries = opts.entries ? opts.entries.filter((e) => e.timeSource === 'name' && !e.symlink) : await ownedSnapshots(dir, opts);
  const pinned = opts.pinned ?? (await pinnedSnapshots(dir));
  const protect = new Map<string, string>();
  if (entries.length) protect.set(entries[0].name, 'newest');
  for (const n of pinned) protect.set(n, 'pinned by a restore');
  if (opts.justWritten) protect.set(opts.justWritten, 'just written');
  return applyRetention(entries, policy, { protect, zone: opts.zone }).map((d) => ({
    name: d.item.name,
    path: d.item.path,
    time: d.item.time,
    keep: d.keep,
    reasons: d.reasons,
    why: reasonsText(d.reasons),
    entry: d.item,
  }));
}

/**
 * Deletes one snapshot the plan drops. A plain one: the snapshot first, then its manifest
 * (a crash in between leaves a manifest without a snapshot, cleaned by the next backup).
 * An archived one (archive.ts) goes through `deleteArchived`.
 */
/**
 * Deletes a snapshot retention let go. A plain file whose very snapshot is also in the
 * archive (a crash between archiving it and dropping the plain file, or `materialize` into
 * the folder) takes that copy with it: the listing shows one entry for both, and the copy
 * would come back as a snapshot of its own to prune next time. Another snapshot of the
 * same name (a clock set back) is not the same sha256, and stays.
 */
async function deleteEntry(dir: string, e: SnapshotEntry, archivedTwin: () => Promise<ArchivedSnapshot | undefined>): Promise<void> {
  if (e.archived) return deleteArchived(dir, e.name);
  await fsp.unlink(e.path);
  crashPoint('backup:prune-between');
  await fsp.rm(e.manifestPath, { force: true });
  const twin = await archivedTwin();
  if (twin?.manifest && e.manifest && twin.manifest.sha256 === e.manifest.sha256 && twin.manifest.bytes === e.manifest.bytes) await deleteArchived(dir, e.name);
}

export interface PruneOutcome {
  decisions: PruneDecision[];
  pruned: string[];
  warnings: string[];
}

/**
 * Applies `policy` in `dir` (the caller holds the folder lock). `deleteOther` deletes
 * entries that are not plain files (archived snapshots).
 */
export async function applyPrune(
  dir: string,
  policy: RetentionPolicy,
  opts: { justWritten?: string; dryRun?: boolean; entries?: SnapshotEntry[] } & OwnerScope,
): Promise<PruneOutcome> {
  const pruned: string[] = [];
  const warnings: string[] = [];
  if (!opts.dryRun) await removeStalePins(dir); // pins of restores that died no longer protect anything
  // Pins made since the plan are honoured before each delete; looking costs one small read
  // unless a pin was made (pins.ts), never a listing of the whole folder per delete.
  return await withPinWatch(dir, (pins) => applyPlan(dir, policy, opts, pins, pruned, warnings));
}

async function applyPlan(
  dir: string,
  policy: RetentionPolicy,
  opts: { justWritten?: string; dryRun?: boolean; entries?: SnapshotEntry[] } & OwnerScope,
  pins: PinWatch,
  pruned: string[],
  warnings: string[],
): Promise<PruneOutcome> {
  const decisions = await planRetention(dir, policy, { justWritten: opts.justWritten, entries: opts.entries, dbPath: opts.dbPath, now: opts.now, pinned: opts.dryRun ? await pinnedSnapshots(dir) : await pins.pinned() });
  for (const d of decisions) {
    if (d.reasons.length === 1 && d.reasons[0].why === 'pinned by a restore') warnings.push(`kept ${d.name}: a restore is reading it`);
  }
  // A plain snapshot a process has open (an agent pointed at it, to use the old memories) is
  // no snapshot to delete any more: unlinked, it takes every write since with it when that
  // process ends. One look at /proc for all of them; a dry run says so too.
  const inUse = await filesInUse(decisions.filter((d) => !d.keep && !d.entry.archived).map((d) => d.entry.path)).catch(() => new Map<string, Holder[]>());
  for (const d of decisions) {
    const holders = d.keep ? undefined : inUse.get(d.entry.path);
    if (!holders?.length) continue;
    d.keep = true;
    d.reasons = [{ bucket: 'protected', why: 'in use', text: 'in use' }];
    d.why = `in use by ${describeHolders(holders)}`;
    warnings.push(`kept ${d.name}: it is open in ${describeHolders(holders)}, which may be using it as a database; it is deleted once nothing has it open`);
  }
  if (opts.dryRun) return { decisions, pruned, warnings };
  let archived: Promise<Map<string, ArchivedSnapshot>> | undefined; // read once, if a plain file goes
  const twinOf = (name: string) => async () => (await (archived ??= listArchived(dir).then((l) => new Map(l.map((a) => [a.name, a]))))).get(name);
  for (const d of decisions) {
    if (d.keep) continue;
    // Pins read again right before the delete: a restore that began after the plan is honoured too.
    if ((await pins.pinned()).has(d.name)) {
      d.keep = true;
      d.reasons = [{ bucket: 'protected', why: 'pinned by a restore', text: 'pinned by a restore' }];
      d.why = 'pinned by a restore';
      warnings.push(`kept ${d.name}: a restore is reading it`);
      continue;
    }
    try {
      await deleteEntry(dir, d.entry, twinOf(d.name));
      pruned.push(d.name);
    } catch (err) {
      d.keep = true;
      d.why = 'could not be deleted';
      warnings.push(`could not delete ${d.name}: ${errorMessage(err)}`);
    }
  }
  if (pruned.length) await fsyncDir(dir);
  return { decisions, pruned, warnings };
}

export const DEFAULT_PLAIN = 3;

export interface ArchiveOutcome {
  archived: string[];
  newPackBytes: number;
  gc: GcResult;
  warnings: string[];
}

/**
 * Keeps the newest `plain` kept snapshots as plain files and moves older ones into the
 * page-dedup archive (archive.ts), then collects what no kept snapshot needs. Only plain
 * snapshots with a matching manifest are archived (a snapshot we cannot verify stays as it
 * is); one a restore is reading (pinned) waits for the next run. The caller holds the lock.
 */
export async function archiveOlder(dir: string, plain: number, opts: { signal?: AbortSignal } & OwnerScope): Promise<ArchiveOutcome> {
  if (!Number.isInteger(plain) || plain < 1) throw new BackupError('USAGE', `--plain must be a whole number ≥ 1, got ${plain}.`);
  const entries = await ownedSnapshots(dir, opts);
  const alsoArchived = new Map((await listArchived(dir)).map((a) => [a.name, a.manifest]));
  return await withPinWatch(dir, (pins) => archiveEntries(dir, entries, plain, alsoArchived, pins, opts));
}

async function archiveEntries(
  dir: string,
  entries: (SnapshotEntry & OwnerInfo)[],
  plain: number,
  alsoArchived: Map<string, ArchivedSnapshot['manifest']>,
  pins: PinWatch,
  opts: { signal?: AbortSignal },
): Promise<ArchiveOutcome> {
  const warnings: string[] = [];
  const archived: string[] = [];
  let newPackBytes = 0;
  // An archive folder that is a link leads outside this folder: nothing is archived into it,
  // no plain file is dropped for a copy there, nothing there is collected.
  const unsafe = await archiveFoldersProblem(dir);
  if (unsafe) {
    warnings.push(`nothing was archived and nothing in the archive was collected: ${unsafe}; the plain snapshots stay as they are`);
    return { archived, newPackBytes, gc: { deletedPacks: [], deletedBases: [], repacked: [], freedBytes: 0, cleaned: [], warnings: [] }, warnings };
  }
  const older = entries.filter((e) => !e.archived).slice(plain);
  // Archiving removes the plain file, as a retention delete does: one a process has open (an
  // agent pointed at it, which has not written yet — a write shows as a sha256 mismatch) stays
  // plain, or what it writes next goes with the file (applyPrune's rule).
  const inUse = await filesInUse(older.map((e) => e.path)).catch(() => new Map<string, Holder[]>());
  let store: PackStore | undefined;
  for (const e of older) {
    if ((await pins.pinned()).has(e.name)) {
      warnings.push(`${e.name} stays plain for now: a restore is reading it`);
      continue;
    }
    const holders = inUse.get(e.path);
    if (holders?.length) {
      warnings.push(`${e.name} stays plain: it is open in ${describeHolders(holders)}, which may be using it as a database; it is archived once nothing has it open`);
      continue;
    }
    if (alsoArchived.has(e.name)) {
      // Archived by a run that died before removing the plain copy: finish that run's work —
      // only when both are the same snapshot (same sha256 and size). A plain file of the same
      // name with other content (a clock set back, a file copied in) is another snapshot:
      // never dropped for the archived one.
      const a = alsoArchived.get(e.name);
      if (a && e.manifestState === 'ok' && e.manifest && e.sizeMatches && a.sha256 === e.manifest.sha256 && a.bytes === e.manifest.bytes) {
        // The plain file goes only for an archived copy that rebuilds: a good copy put back
        // after a pack was damaged (from an off-machine copy) is the only one left.
        store ??= await PackStore.load(archivePaths(dir));
        const problem = await archivedProblem(dir, e.name, a, store);
        if (problem) {
          warnings.push(`${e.name} stays plain: its archived copy would not rebuild (${problem}); the plain file is kept`);
          continue;
        }
        await dropPlain(dir, e.name);
        archived.push(e.name);
      } else {
        warnings.push(`${e.name} stays plain: the archive holds ${a ? `another snapshot of the same name (sha256 ${a.sha256})` : 'a snapshot of the same name whose manifest cannot be read'}; both are kept`);
      }
      continue;
    }
    if (e.manifestState !== 'ok' || !e.manifest || !e.sizeMatches) {
      warnings.push(`${e.name} stays plain: its manifest is ${e.manifestState === 'ok' ? 'not its size' : e.manifestState}, so it cannot be archived safely`);
      continue;
    }
    store ??= await PackStore.load(archivePaths(dir));
    try {
      const r = await archiveSnapshot(dir, e.name, e.manifest, store, opts.signal);
      archived.push(e.name);
      newPackBytes += r.newPackBytes;
    } catch (err) {
      if (err instanceof BackupError && err.code === 'CANCELLED') throw err;
      warnings.push(`${e.name} stays plain: ${errorMessage(err)}`);
    }
  }
  // What archiving left (its reads of the plain files, packs and indexes written) goes
  // before the collection reads every index.
  if (archived.length) await collectAll();
  // The store this run loaded (and added to) already lists every pack; gc reuses it.
  const gc = await collectGarbage(dir, { pinned: (await pins.pinned()).size > 0, store });
  warnings.push(...gc.warnings);
  return { archived, newPackBytes, gc, warnings };
}

export interface PruneOptions {
  backupDir: string;
  /** The database whose snapshots are pruned (others' in a shared folder are left alone). */
  dbPath: string;
  policy: RetentionPolicy;
  /** Keep the newest N kept snapshots plain and archive the older ones; undefined: no archiving. */
  plain?: number;
  dryRun?: boolean;
  lockWaitMs?: number;
  signal?: AbortSignal;
}

/** `prune`: applies the policy now, under the folder lock; `dryRun` only reports. */
export type PruneRunResult = PruneOutcome & { policy: string; archive?: ArchiveOutcome; wouldArchive?: string[] };

export async function runPrune(opts: PruneOptions): Promise<PruneRunResult> {
  const dir = resolve(opts.backupDir);
  const policy = normalizePolicy(opts.policy);
  const scope: OwnerScope = { dbPath: (await resolveDbPath(opts.dbPath)).path };
  const st = await fsp.stat(dir).catch(() => undefined);
  if (st && !st.isDirectory()) throw new BackupError('TARGET_NOT_DIRECTORY', `Backup folder ${dir} is a file, not a folder. Nothing was changed.`, { hint: 'Pass the backup folder with --to.' });
  if (!st) throw new BackupError('SNAPSHOT_NOT_FOUND', `Backup folder ${dir} does not exist.`, { hint: 'Pass the backup folder with --to.' });
  // Said, not left to wonder at: snapshots this database's retention leaves alone because their
  // manifest names it by a relative path (a folder of ai-memory's own backups prunes nothing).
  const listed = await withOwners(dir, scope.dbPath, await listSnapshots(dir, { archived: true }));
  const guessed = listed.filter((e) => e.owner === 'this' && e.guessed);
  const note = guessed.length
    ? [`${guessed.length} snapshot${guessed.length === 1 ? ' is' : 's are'} left alone: ${guessed.length === 1 ? 'its manifest names' : 'their manifests name'} the database by a relative path (as ai-memory's CLI writes it), which cannot tell it from another project's; retention never deletes on that guess (ai-memory's own --keep prunes them)`]
    : [];
  // Another machine's snapshots of a database at this very path (a folder synced between
  // machines): that machine's retention prunes them, never this one's. Said, because a machine
  // whose host name changed (one without a machine id) sees its older snapshots so too.
  const elsewhere = listed.filter((e) => e.host && e.source && sameDbPath(e.source, scope.dbPath ?? ''));
  if (elsewhere.length) {
    const hosts = [...new Set(elsewhere.map((e) => e.host))].join(', ');
    note.push(
      `${elsewhere.length} snapshot${elsewhere.length === 1 ? ' is' : 's are'} left alone: taken of a database at this path on another machine (${hosts}), as ${elsewhere.length === 1 ? 'its manifest says' : 'their manifests say'}; that machine's own backups prune them. If this machine was called ${hosts} before, delete them yourself when they are no longer needed`,
    );
  }
  // A signature that does not verify with the key configured now (an operator key rotated, or
  // an altered manifest): no owner can be told, so retention never deletes them, and after a
  // rotation the folder would keep every older snapshot for good without a word.
  const refused = listed.filter((e) => e.signature?.state === 'refused');
  if (refused.length) {
    note.push(
      `${refused.length} snapshot${refused.length === 1 ? ' is' : 's are'} left alone: ${refused.length === 1 ? 'its manifest is' : 'their manifests are'} signed with another key than the operator key configured now (signed before a key change, or altered), so ai-memory 1.0 refuses to restore ${refused.length === 1 ? 'it' : 'them'} and retention cannot tell whose ${refused.length === 1 ? 'it is' : 'they are'} (the oldest: ${refused.reduce((a, b) => (b.time < a.time ? b : a)).name}). To restore one, configure the public key that signed it; delete them yourself when they are no longer needed`,
    );
  }
  if (opts.dryRun) {
    // As the real run decides (a snapshot in use is kept), deleting nothing.
    const { decisions, warnings } = await applyPrune(dir, policy, { ...scope, dryRun: true });
    const wouldArchive = opts.plain === undefined ? undefined : decisions.filter((d) => d.keep && !d.entry.archived).slice(opts.plain).filter((d) => d.reasons[0]?.why !== 'in use').map((d) => d.name);
    return { decisions, pruned: [], warnings: [...note, ...warnings], policy: describePolicy(policy), wouldArchive };
  }
  const lock = await acquireFolderLock(dir, { purpose: 'prune', waitMs: opts.lockWaitMs ?? 30_000, signal: opts.signal });
  try {
    const r = await applyPrune(dir, policy, scope);
    r.warnings.unshift(...note);
    const archive = opts.plain === undefined ? undefined : await archiveOlder(dir, opts.plain, { signal: opts.signal, ...scope });
    if (archive) r.warnings.push(...archive.warnings);
    return { ...r, policy: describePolicy(policy), archive };
  } finally {
    await lock.release();
  }
}
