/**
 * Copying the backup folder to a target, and bringing snapshots back.
 *
 * A sync is one LIST of the target, then:
 *  1. each verified local snapshot the target lacks goes up — the snapshot, then its
 *     manifest last, so on the target a snapshot without a manifest is an unfinished
 *     upload;
 *  2. retention: the target keeps, of what it and the local folder hold together, what the
 *     local folder's policy keeps (`keep`: the newest N, or tiered as restic does — hourly,
 *     daily, weekly, monthly, yearly — by the times in the names), so a tiered history
 *     lasts as long off the machine as on it, and a new machine with one fresh snapshot
 *     never wipes the history on the target; unfinished uploads that are not
 *     being redone are cleaned. Manifests are deleted before their snapshots (a crash in
 *     between leaves an "unfinished" snapshot, cleaned next time). Only names of ours
 *     (`ai-memory-*.db` and their manifests) directly under the prefix are ever deleted; a
 *     refused delete is reported.
 * The local folder is only read (and a pin keeps local retention off the file being sent);
 * an archived snapshot (store/archive.ts) the target lacks is rebuilt into a temp file there
 * first — the whole file checked against its index and manifest — and its
 * manifest goes up byte for byte, as a plain one's. A damaged archived snapshot is skipped
 * (said in `skipped`), never sent.
 */
import { takenElsewhere } from '../common/machine';
import { promises as fsp } from 'node:fs';
import { posix, win32 } from 'node:path';
import { throwIfCancelled } from '../common/cancel';
import { isBackupError } from '../common/errors';
import { hashFile } from '../common/hashFile';
import { SMALL_FILE_CAP } from '../common/regularFile';
import { rebuildArchived } from '../store/archive';
import { tempPath } from '../store/atomicFs';
import { compareEntries, FUTURE_SKEW_MS, listSnapshots, type SnapshotEntry } from '../store/catalog';
import { checkManifestNames, parseManifest, type Manifest } from '../store/manifest';
import { compareNewestFirst, isSnapshotFileName, manifestNameFor, parseSnapshotName } from '../store/naming';
import { pinSnapshot } from '../store/pins';
import { applyRetention, policyFromKeep, type RetentionPolicy } from '../store/retention';
import { backoffMs, updateTargetState, type RemoteSnapshotInfo, type TargetState } from './remoteState';
import type { RemoteEntry, RemoteTarget, Written } from './target';

export interface SyncProgress {
  phase: 'listing' | 'uploading' | 'deleting' | 'downloading' | 'checking';
  name?: string;
  done?: number;
  total?: number;
}

export interface SyncReport {
  target: string;
  uploaded: string[];
  /** Local snapshots the target already held. */
  present: string[];
  /** Old snapshots deleted on the target by retention. */
  deleted: string[];
  /** Unfinished uploads (a snapshot without its manifest) cleaned on the target. */
  cleaned: string[];
  refused: { name: string; message: string }[];
  /** Local snapshots not copied because they are not verified copies of their manifests. */
  skipped: { name: string; reason: string }[];
  remoteOnly: RemoteSnapshotInfo[];
  /** Whose each remote snapshot is (its manifest's source_db; '' unknown): kept for the next run, which then reads no manifest twice. */
  owners: Record<string, string>;
  /** Snapshots on the target whose manifest could not be read there: their database unknown, retention keeps them (said, not silent). */
  unreadable: { name: string; message: string }[];
  /** Facts about the copies that are no failure (a mirror drive that keeps no permissions), each once. */
  notes: string[];
  /** The stamp ({@link stampOf}) of each object found ours and whole this run, or written by it, for the next run to tell a rewritten object. */
  stamps: Record<string, string>;
}

/**
 * What a listing says of an object that changes whenever it is written again: its ETag (any
 * provider's, MD5 or not: with SSE-KMS or multipart it is no MD5, but it stays the object's
 * until the object is replaced), else the time it was written (a mirror folder). A snapshot
 * copied earlier counts as still there from the listing alone (no download), by its size:
 * one replaced there by other bytes of the same size (a sync tool, a provider's fault, a
 * hand) stayed "copied" for good while pull refused it. Undefined when the target says neither.
 */
export function stampOf(e: Pick<RemoteEntry, 'etag' | 'modifiedMs'> | Written | undefined): string | undefined {
  if (!e) return undefined;
  if (e.etag) return `etag:${e.etag}`;
  return e.modifiedMs !== undefined ? `mtime:${e.modifiedMs}` : undefined;
}

const MANIFEST_RE = /^ai-memory-.*\.manifest\.json$/;

/** Ours to delete on a target: a snapshot name in the shared format or its manifest. */
function isOurName(n: string): boolean {
  return (isSnapshotFileName(n) && parseSnapshotName(n) !== undefined) || (MANIFEST_RE.test(n) && parseSnapshotName(n.replace(/\.manifest\.json$/, '.db')) !== undefined);
}

/**
 * How long an upload without its other half is left alone on the target: another machine may
 * be mid-upload (a crash's is cleaned after). A day, not an hour: S3 dates a multipart upload's
 * object by when the upload began, so a large snapshot sent slowly looks old the moment it
 * completes, before its manifest follows.
 */
export const UNFINISHED_GRACE_MS = 24 * 3600_000;

interface RemoteView {
  complete: Map<string, RemoteEntry>;
  /** Snapshots without their manifest, and manifests without their snapshot. */
  unfinished: string[];
}

export function viewRemote(entries: RemoteEntry[]): RemoteView {
  const byName = new Map(entries.map((e) => [e.name, e]));
  const complete = new Map<string, RemoteEntry>();
  const unfinished: string[] = [];
  for (const e of entries) {
    if (!isOurName(e.name)) continue;
    if (isSnapshotFileName(e.name)) {
      if (byName.has(manifestNameFor(e.name))) complete.set(e.name, e);
      else unfinished.push(e.name);
    } else if (!byName.has(e.name.replace(/\.manifest\.json$/, '.db'))) {
      unfinished.push(e.name);
    }
  }
  return { complete, unfinished };
}

/**
 * Newest first by the time in the name; a future-dated name (a clock that was wrong) after
 * all others, as locally (catalog.ts): pull took it for "the newest", and a new machine
 * restored it instead of the newest real snapshot.
 */
export function byTimeNewestFirst(names: string[], now = Date.now()): string[] {
  return rankByTime(names, now).map((x) => x.name);
}

/** {@link byTimeNewestFirst}, with each name's time (0 for a name that holds none) and whether it is future-dated. */
export function rankByTime(names: string[], now = Date.now()): { name: string; time: number; seq: number; future: boolean }[] {
  return names
    .map((name) => {
      const t = parseSnapshotName(name) ?? { time: 0, seq: 0 };
      return { name, time: t.time, seq: t.seq, future: t.time > now + FUTURE_SKEW_MS };
    })
    .sort(compareEntries);
}

function eligible(e: SnapshotEntry): string | undefined {
  if (e.symlink) return 'a symlink';
  if (e.timeSource !== 'name') return 'not in the shared naming format';
  if (e.manifestState !== 'ok' || !e.manifest) return `manifest ${e.manifestState}`;
  if (e.sizeMatches === false) return 'its size differs from its manifest';
  if (e.manifest.integrity === 'failed') return 'it failed its integrity check';
  return undefined;
}

/** What the target keeps: the newest N (0 = all), or a retention policy (store/retention.ts). */
export type RemoteKeep = number | RetentionPolicy;

/** The names of `union` that `keep` keeps; the newest always (a future-dated name is not the newest, as locally). */
export function remoteKept(union: string[], keep: RemoteKeep, now = Date.now()): Set<string> {
  const items = rankByTime(union, now);
  const protect = new Map(items.length ? [[items[0].name, 'newest']] : []);
  const policy = typeof keep === 'number' ? policyFromKeep(keep) : keep;
  return new Set(applyRetention(items, policy, { protect }).filter((d) => d.keep).map((d) => d.item.name));
}

/** Marks an owner taken on another machine (common/machine.ts): never judged by this machine's retention. */
const ELSEWHERE = '\0taken on another machine: ';

/**
 * Whose a snapshot is, for the target's retention: its source_db, and the machine when its
 * manifest names another one — a folder synced between two machines holds the other's
 * snapshots under the same path, and this machine's push must not count them as its own
 * (that machine's retention, here and there, decides on them).
 */
function ownerOnTarget(m: Manifest | undefined): string {
  if (!m) return '';
  return takenElsewhere(m) ? `${m.source_db}${ELSEWHERE}${m.machine_id ?? m.host ?? ''}` : (m.source_db ?? '');
}

/** The target's manifest of snapshot `name`, parsed. */
async function remoteManifest(target: RemoteTarget, name: string, signal?: AbortSignal): Promise<Manifest> {
  return parseManifest(await target.readBytes(manifestNameFor(name), signal, SMALL_FILE_CAP), manifestNameFor(name));
}

/**
 * What the target's manifest of `name` says its snapshot is: its sha256 and bytes;
 * 'unreadable' when these credentials may not read it; 'damaged' when it was read but is no
 * manifest of that snapshot (cut short, edited, another file's). A target that cannot be
 * reached fails the run (tried again), rather than a snapshot being taken as there.
 */
async function remoteClaim(target: RemoteTarget, name: string, signal?: AbortSignal): Promise<{ sha256: string; bytes: number } | 'unreadable' | 'damaged'> {
  try {
    const m = await remoteManifest(target, name, signal);
    checkManifestNames(m, name, `${target.label}/${manifestNameFor(name)}`);
    return { sha256: m.sha256, bytes: m.bytes };
  } catch (e) {
    if (isBackupError(e) && (e.code === 'MANIFEST_INVALID' || e.code === 'MANIFEST_FOREIGN')) return 'damaged';
    if (isBackupError(e) && (e.code === 'CANCELLED' || e.code === 'REMOTE_UNREACHABLE' || e.code === 'REMOTE_ERROR')) throw e;
    return 'unreadable';
  }
}

/**
 * Whether the manifest the target lists beside a snapshot copied at an earlier run still has
 * the size of ours — from the LIST, no request. A manifest cut short there (a sync, a
 * provider's fault) was counted "copied" by the snapshot's size alone while pull failed on
 * it; then the manifest is read and judged as any other (copied again when the snapshot
 * there is ours). (Not the ETag: with SSE-KMS it is no MD5, and every push would then read
 * every manifest.)
 */
async function manifestThereIsOurs(e: SnapshotEntry, there: RemoteEntry | undefined): Promise<boolean> {
  if (!there) return false;
  const mine = await fsp.stat(e.manifestPath).catch(() => undefined);
  return mine?.size === there.size;
}

/** Whether the snapshot `name` on the target has these bytes: downloaded into a temp file in `localDir` and hashed (only when its manifest there is damaged). */
async function remoteBytesAre(target: RemoteTarget, name: string, localDir: string, expect: { bytes: number; sha256: string }, signal?: AbortSignal): Promise<boolean> {
  const tmp = tempPath(localDir, 'push-check');
  try {
    await (await fsp.open(tmp, 'wx', 0o600)).close();
    const got = await target.downloadTo(name, tmp, { signal, maxBytes: expect.bytes }).catch((e: unknown) => {
      if (isBackupError(e) && e.code === 'SIZE_MISMATCH') return undefined; // larger than ours: not ours
      throw e;
    });
    return got?.bytes === expect.bytes && got.sha256 === expect.sha256;
  } finally {
    await fsp.rm(tmp, { force: true }).catch(() => undefined);
  }
}

export async function syncTarget(opts: {
  localDir: string;
  target: RemoteTarget;
  keep: RemoteKeep;
  signal?: AbortSignal;
  onProgress?: (p: SyncProgress) => void;
  onMultipart?: (u: { key: string; uploadId: string } | undefined) => Promise<void>;
  /** What the last run learnt of whose each remote snapshot is (SyncReport.owners). */
  owners?: Record<string, string>;
  /** The snapshots this folder held on the target at the last run (TargetState.copied): ours, though the folder has let them go since. */
  ours?: readonly string[];
  /** What the last run's listing said of the objects it found ours and whole (SyncReport.stamps). */
  stamps?: Record<string, string>;
}): Promise<SyncReport> {
  const { localDir, target, keep } = opts;
  await target.refuseLocal?.(localDir);
  const report: SyncReport = { target: target.label, uploaded: [], present: [], deleted: [], cleaned: [], refused: [], skipped: [], remoteOnly: [], owners: {}, unreadable: [], notes: [], stamps: {} };
  const local = await listSnapshots(localDir, { archived: true });
  const good = new Map<string, SnapshotEntry>();
  for (const e of local) {
    const why = eligible(e);
    if (why) report.skipped.push({ name: e.name, reason: why });
    else good.set(e.name, e);
  }
  opts.onProgress?.({ phase: 'listing' });
  const listed = await target.list(opts.signal);
  const byName = new Map(listed.map((e) => [e.name, e]));
  const remote = viewRemote(listed);

  const union = byTimeNewestFirst([...new Set([...good.keys(), ...remote.complete.keys()])]);
  // Retention counts each database's snapshots apart, as it does locally (a folder, and so
  // its target, may hold two databases' snapshots): whose a snapshot is comes from its
  // manifest's source_db — the local one, or the target's (read once, then remembered). One
  // whose database is unknown is never deleted.
  const owner = new Map<string, string>();
  for (const [n, e] of good) owner.set(n, ownerOnTarget(e.manifest));
  for (const n of remote.complete.keys()) {
    if (owner.has(n)) continue;
    let o = opts.owners?.[n];
    if (o === undefined) {
      try {
        o = ownerOnTarget(await remoteManifest(target, n, opts.signal));
      } catch (e) {
        if (isBackupError(e) && e.code === 'CANCELLED') throw e;
        report.unreadable.push({ name: n, message: e instanceof Error ? e.message : String(e) });
        owner.set(n, ''); // unknown, so kept; asked again next time
        continue;
      }
    }
    owner.set(n, o);
    report.owners[n] = o;
  }
  const groups = new Map<string, string[]>();
  for (const n of union) {
    const o = owner.get(n) ?? '';
    const g = groups.get(o);
    if (g) g.push(n);
    else groups.set(o, [n]);
  }
  // Retention on the target takes only this folder's snapshots: those it holds, and those it
  // held there at the last run (retention here has let them go since). Another machine's
  // snapshots stay for that machine's own retention — with the same database path, they
  // count as the same database, and a union's retention deleted the other machine's newest.
  // Unknown, or named by a relative path (ai-memory writes it as given; two projects'
  // "ai-memory.db" read the same): all kept, as locally (ownership.ts `guessed`).
  const localNames = new Set(local.map((e) => e.name));
  const prevOurs = new Set(opts.ours ?? []);
  const isOurs = (n: string) => localNames.has(n) || prevOurs.has(n);
  const kept = new Set<string>();
  for (const [o, names] of groups) {
    const judged = new Set(o && !o.includes(ELSEWHERE) && (posix.isAbsolute(o) || win32.isAbsolute(o)) ? names.filter(isOurs) : []);
    const keptOfOurs = remoteKept([...judged], keep);
    for (const n of names) if (!judged.has(n) || keptOfOurs.has(n)) kept.add(n);
  }
  // Remembered for every snapshot the target will hold, ours included: once the folder no
  // longer has one, whose it is needs no read of the target (credentials may not allow it).
  for (const n of kept) if (owner.get(n)) report.owners[n] = owner.get(n) as string;

  // 1. Uploads, newest first (the newest is the one that matters most if we are interrupted).
  const toSend = [...good.values()].filter((e) => kept.has(e.name)).sort(compareNewestFirst);
  for (const e of toSend) {
    const there = remote.complete.get(e.name);
    if (there) {
      // A snapshot of this name is there. Ours (the same bytes) when it was there at the last
      // run or its manifest there names the same sha256; another machine's of the same second
      // otherwise, which is never replaced nor taken for ours. Ours but damaged there — its
      // manifest names our sha256 and bytes, the object has another size; or its manifest
      // there does not parse and the object's bytes are ours — is copied again: it was
      // taken for another machine's (never repaired) or counted as copied (pull refused it).
      // Written again there since the last run found it ours and whole (its stamp changed):
      // its bytes are checked before it counts as there, whatever its size and manifest say.
      const mine = e.manifest as Manifest;
      const mName = manifestNameFor(e.name);
      // Stamps of two kinds (an ETag recorded at upload, a listing that names none and gives
      // the time instead) say nothing of each other: not taken for a rewrite, which read
      // back every snapshot once after the push that sent it.
      const rewritten = (n: string) => {
        const was = opts.stamps?.[n];
        const now = stampOf(byName.get(n));
        return typeof was === 'string' && now !== undefined && was.split(':')[0] === now.split(':')[0] && was !== now;
      };
      const sizeSame = there.size === mine.bytes;
      let verdict: 'present' | 'replace' | 'theirs';
      if (sizeSame && prevOurs.has(e.name) && !rewritten(e.name) && !rewritten(mName) && (await manifestThereIsOurs(e, byName.get(mName)))) verdict = 'present';
      else {
        const claim = await remoteClaim(target, e.name, opts.signal);
        // Write-only credentials: what cannot be read is there by its size, unless it was ours
        // and has been written again since (then ours is sent again).
        if (claim === 'unreadable') verdict = !sizeSame ? 'theirs' : prevOurs.has(e.name) && (rewritten(e.name) || rewritten(mName)) ? 'replace' : 'present';
        else if (claim === 'damaged') verdict = sizeSame && (await remoteBytesAre(target, e.name, localDir, mine, opts.signal)) ? 'replace' : 'theirs';
        else if (claim.sha256 === mine.sha256 && claim.bytes === mine.bytes) {
          // Ours by its manifest; written again since: its bytes decide, and the manifest's own
          // (one rewritten without its signature names the same sha256, and pull refuses it where a key is set).
          const whole = !sizeSame
            ? false
            : (!rewritten(e.name) || (await remoteBytesAre(target, e.name, localDir, mine, opts.signal))) &&
              (!rewritten(mName) || (await target.readBytes(mName, opts.signal, SMALL_FILE_CAP)).equals(await fsp.readFile(e.manifestPath)));
          verdict = whole ? 'present' : 'replace';
        } else verdict = 'theirs';
      }
      if (verdict === 'present') {
        report.present.push(e.name);
        for (const n of [e.name, mName]) {
          const st = stampOf(byName.get(n));
          if (st) report.stamps[n] = st;
        }
        continue;
      }
      if (verdict === 'theirs') {
        report.skipped.push({ name: e.name, reason: `${target.label} holds another snapshot of this name (made in the same second elsewhere, or with a damaged manifest there): not replaced, and this one is not copied` });
        continue;
      }
    }
    const m = e.manifest as Manifest;
    const unpin = await pinSnapshot(localDir, e.name);
    let rebuilt: string | undefined;
    let written: Written;
    try {
      let file = e.path;
      if (e.archived) {
        opts.onProgress?.({ phase: 'checking', name: e.name, done: 0, total: m.bytes });
        rebuilt = tempPath(localDir, 'push');
        try {
          await rebuildArchived(localDir, e.name, rebuilt, { signal: opts.signal });
        } catch (err) {
          if (!isBackupError(err) || err.code === 'CANCELLED') throw err;
          report.skipped.push({ name: e.name, reason: `archived, and it does not rebuild: ${err.message}` });
          continue;
        }
        file = rebuilt;
      }
      opts.onProgress?.({ phase: 'uploading', name: e.name, done: 0, total: m.bytes });
      try {
        written = await target.uploadFile(e.name, file, { bytes: m.bytes, sha256: m.sha256 }, {
          signal: opts.signal,
          onBytes: (done, total) => opts.onProgress?.({ phase: 'uploading', name: e.name, done, total }),
          onMultipart: opts.onMultipart,
          onNote: (n) => void (report.notes.includes(n) || report.notes.push(n)),
        });
      } catch (err) {
        // A snapshot damaged here (its bytes no longer those its manifest names) is skipped,
        // named, and the others go on: one bit-rotted file stopped every copy for good. A
        // mismatch on the way (the file is fine) fails the run, to be tried again.
        if (!isBackupError(err) || err.code !== 'REMOTE_MISMATCH') throw err;
        const here = await hashFile(file, opts.signal).catch(() => undefined);
        if (!here || (here.sha256 === m.sha256 && here.bytes === m.bytes)) throw err;
        report.skipped.push({ name: e.name, reason: `damaged here: its bytes (sha256 ${here.sha256}, ${here.bytes} bytes) are no longer those its manifest names; run verify` });
        continue;
      }
      // The manifest as it is on disk, byte for byte (ai-memory's reader parses it again there).
      const text = await fsp.readFile(e.manifestPath);
      const writtenManifest = await target.uploadBytes(manifestNameFor(e.name), text, opts.signal);
      // What the target says of the two objects just written, as the listing will (their
      // stamps): without them, one rewritten before the next run was taken for ours by its
      // size there, and the rewritten one's stamp recorded as ours.
      for (const [n, w] of [[e.name, written], [manifestNameFor(e.name), writtenManifest]] as const) {
        const st = stampOf(w);
        if (st) report.stamps[n] = st;
      }
    } finally {
      if (rebuilt) await fsp.rm(rebuilt, { force: true }).catch(() => undefined);
      await unpin();
    }
    report.uploaded.push(e.name);
  }

  // 2. Retention and cleaning.
  const retire = [...remote.complete.keys()].filter((n) => !kept.has(n));
  const sent = new Set(report.uploaded);
  // An unfinished upload younger than UNFINISHED_GRACE_MS may be another machine's upload in
  // progress into the same prefix (its snapshot is there, its manifest seconds away): left
  // for a later run. One whose age the target does not say is cleaned, as before.
  const young = (n: string): boolean => {
    const t = byName.get(n)?.modifiedMs;
    return t !== undefined && Math.abs(Date.now() - t) < UNFINISHED_GRACE_MS;
  };
  const stale = remote.unfinished.filter((n) => !sent.has(n) && !(n.endsWith('.manifest.json') && sent.has(n.replace(/\.manifest\.json$/, '.db'))) && !young(n));
  if (retire.length || stale.length) {
    opts.onProgress?.({ phase: 'deleting' });
    // Manifests first: a crash between the two requests leaves an unfinished snapshot, which the next run cleans.
    const first = await target.remove([...retire.map(manifestNameFor), ...stale.filter((n) => !isSnapshotFileName(n))], opts.signal);
    const refusedManifest = new Set(first.refused.map((r) => r.name));
    const second = await target.remove([...retire.filter((n) => !refusedManifest.has(manifestNameFor(n))), ...stale.filter((n) => isSnapshotFileName(n))], opts.signal);
    const gone = new Set([...first.deleted, ...second.deleted]);
    for (const n of retire) if (gone.has(n)) report.deleted.push(n);
    for (const n of stale) if (gone.has(n)) report.cleaned.push(n);
    const refusedSeen = new Set<string>();
    for (const r of [...first.refused, ...second.refused]) {
      const snap = r.name.endsWith('.manifest.json') ? r.name.replace(/\.manifest\.json$/, '.db') : r.name;
      if (refusedSeen.has(snap)) continue;
      refusedSeen.add(snap);
      report.refused.push({ name: snap, message: r.message });
    }
  }
  for (const name of union) {
    const e = remote.complete.get(name);
    if (e && !good.has(name) && kept.has(name)) report.remoteOnly.push({ name, bytes: e.size });
  }
  return report;
}

/** A target's failure as the state keeps it. */
function errorOf(e: unknown): { code: string; message: string; hint?: string } {
  if (isBackupError(e)) return { code: e.code, message: e.message, hint: e.hint };
  return { code: 'REMOTE_ERROR', message: e instanceof Error ? e.message : String(e) };
}

export interface PushOutcome {
  target: string;
  id: string;
  status: 'copied' | 'failed';
  report?: SyncReport;
  error?: { code: string; message: string; hint?: string };
  next_retry?: string;
}

/**
 * Syncs one target and records the outcome in the state file. Never throws for a target's
 * failure (offline, credentials, bucket, quota, a server that died): it returns 'failed'
 * with the error and when it will be retried, and the local backup stays as it was.
 * A refused retention delete also makes the outcome 'failed' (said, not ignored), though
 * every snapshot was copied.
 */
export async function pushToTarget(opts: PushOptions): Promise<PushOutcome> {
  try {
    return await pushAndRecord(opts);
  } catch (e) {
    // What the target's failures do not cover: the copy state itself could not be written
    // (a folder in its place, a disk that filled). The copy is failed — never the backup:
    // `backup --remote` exited 1 without its result though the snapshot was made.
    // Cancelled stays cancelled, even when writing the state on the way out failed too.
    if (isBackupError(e) && e.code === 'CANCELLED') throw e;
    throwIfCancelled(opts.signal, 'Copy cancelled.');
    return { target: opts.target.label, id: opts.target.id, status: 'failed', error: errorOf(e) };
  }
}

type PushOptions = { localDir: string; target: RemoteTarget; keep: RemoteKeep; signal?: AbortSignal; onProgress?: (p: SyncProgress) => void; now?: () => Date };

async function pushAndRecord(opts: PushOptions): Promise<PushOutcome> {
  const { localDir, target } = opts;
  const now = opts.now ?? (() => new Date());
  const started = now().toISOString();
  const prev = await updateTargetState(localDir, target.id, (t) => ({
    ...(t ?? { copied: [], pending: [], remote_only: [], refused_deletes: [], attempts: 0 }),
    label: target.label,
    kind: target.kind,
    status: 'copying',
    pid: process.pid,
    last_attempt: started,
  }));
  if (prev.upload && target.abandon) {
    await target.abandon(prev.upload, opts.signal).then(
      () => updateTargetState(localDir, target.id, (t) => ({ ...(t as TargetState), upload: undefined })),
      () => undefined, // still unreachable: the sync below fails the same way, and the id stays for next time
    );
  }
  try {
    const report = await syncTarget({
      ...opts,
      owners: prev.owners,
      ours: prev.copied,
      stamps: prev.stamps,
      onMultipart: async (u) => {
        await updateTargetState(localDir, target.id, (t) => ({ ...(t as TargetState), upload: u }));
      },
    });
    const refused = report.refused.length > 0;
    const error = refused
      ? {
          code: 'REMOTE_DENIED',
          message: `${target.label} refused to delete ${report.refused.length} old snapshot${report.refused.length === 1 ? '' : 's'} (${report.refused[0].name}: ${report.refused[0].message}); every snapshot was copied, but the target is not following the retention.`,
          hint: 'Allow DeleteObject on the prefix for these credentials (or delete old snapshots there yourself).',
        }
      : undefined;
    const attempts = refused ? prev.attempts + 1 : 0;
    const t = await updateTargetState(localDir, target.id, (old) => ({
      ...(old as TargetState),
      status: refused ? 'failed' : 'copied',
      pid: undefined,
      last_success: now().toISOString(),
      attempts,
      next_retry: refused ? new Date(now().getTime() + backoffMs(attempts)).toISOString() : undefined,
      error,
      copied: [...report.present, ...report.uploaded],
      pending: [],
      remote_only: report.remoteOnly,
      refused_deletes: report.refused.map((r) => r.name),
      owners: report.owners,
      stamps: report.stamps,
    }));
    return { target: target.label, id: target.id, status: t.status === 'copied' ? 'copied' : 'failed', report, error, next_retry: t.next_retry };
  } catch (e) {
    const error = errorOf(e);
    const local = await listSnapshots(localDir, { archived: true }).catch(() => []);
    const t = await updateTargetState(localDir, target.id, (old) => {
      const o = old as TargetState;
      const attempts = o.attempts + 1;
      const copied = new Set(o.copied);
      return {
        ...o,
        status: 'failed',
        pid: undefined,
        attempts,
        next_retry: new Date(now().getTime() + backoffMs(attempts)).toISOString(),
        error,
        copied: local.filter((x) => copied.has(x.name)).map((x) => x.name),
        pending: local.filter((x) => !copied.has(x.name) && !eligible(x)).map((x) => x.name),
      };
    });
    if (error.code === 'CANCELLED') throw e;
    return { target: target.label, id: target.id, status: 'failed', error, next_retry: t.next_retry };
  }
}

export interface RemoteListing {
  target: string;
  snapshots: { name: string; bytes: number; complete: boolean }[];
}

/** What a target holds, newest first: complete snapshots and unfinished uploads. */
export async function listRemote(target: RemoteTarget, signal?: AbortSignal): Promise<RemoteListing> {
  const entries = await target.list(signal);
  const v = viewRemote(entries);
  const names = byTimeNewestFirst([...v.complete.keys(), ...v.unfinished.filter(isSnapshotFileName)]);
  const sizes = new Map(entries.map((e) => [e.name, e.size]));
  return { target: target.label, snapshots: names.map((n) => ({ name: n, bytes: sizes.get(n) ?? 0, complete: v.complete.has(n) })) };
}
