/**
 * `pull`: snapshots from an off-machine target (src/core/remote) into a local folder, each
 * checked against its manifest and with quick_check before it gets its name — the first
 * half of a restore on a new machine (the second is the usual restore).
 */
import { refuseSidecarFolder } from '../sqlite/dbFiles';
import { constants as fsc, promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { BackupError, type ErrorCode } from '../common/errors';
import { rankByTime, viewRemote, type SyncProgress } from '../remote/sync';
import type { RemoteTarget } from '../remote/target';
import { cleanStaleTemps, createFileNoClobber, fsyncDir, publishNoClobber, tempPath, writeFileAtomic } from '../store/atomicFs';
import { listSnapshots } from '../store/catalog';
import { archivedProblem, archivePaths, PackStore, refuseInsideArchive } from '../store/archive';
import { checkManifestNames, parseManifest } from '../store/manifest';
import { compareNewestFirst, manifestNameFor, snapshotFileTime } from '../store/naming';
import { hashFile } from '../common/hashFile';
import { SMALL_FILE_CAP } from '../common/regularFile';
import { examineSnapshot } from './snapshotCheck';

export interface PullResult {
  name: string;
  path: string;
  manifestPath: string;
  bytes: number;
  sha256: string;
  status: 'downloaded' | 'present';
  integrity?: string;
}

/** A snapshot `pull --all` passed over, and why (its copy on the target, or a local file in its way). */
export interface PullRefused {
  name: string;
  code: ErrorCode;
  error: string;
  hint?: string;
}

/**
 * What is wrong with one snapshot, not with the target or this machine: with `--all` the
 * others are still pulled. A restore after losing the machine pulled nothing older than one
 * snapshot whose copy was damaged, foreign or refused, newest first. A failure of the
 * target, the disk or the connection (REMOTE_*, NO_SPACE, IO, …) still stops the pull.
 */
const SNAPSHOT_ERRORS: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'MANIFEST_MISSING',
  'MANIFEST_INVALID',
  'MANIFEST_FOREIGN',
  'MANIFEST_UNSIGNED',
  'SIGNATURE_REFUSED',
  'SIZE_MISMATCH',
  'SHA_MISMATCH',
  'INTEGRITY_FAILED',
  'UNVERIFIABLE',
  'NOT_A_DATABASE',
  'TOO_LARGE',
  'UNSAFE_SNAPSHOT_PATH',
  'LOCKED',
]);

/**
 * Downloads snapshots (their manifests first) into `toDir`: each into a temp file there,
 * checked against its manifest (bytes, sha256) and with quick_check (unless `integrity`
 * is 'off'), then the manifest and the snapshot get their names (manifest first, as a
 * backup writes them; the snapshot with link(2), never replacing a file). A snapshot the
 * folder already holds with the same sha256 is left alone.
 */
export async function pullFromTarget(opts: {
  target: RemoteTarget;
  toDir: string;
  /** Snapshot names; undefined = the newest complete one. */
  names?: string[] | 'all';
  integrity?: 'quick' | 'full' | 'off';
  signal?: AbortSignal;
  onProgress?: (p: SyncProgress) => void;
  /** With `names: 'all'`: a snapshot whose own copy fails (SNAPSHOT_ERRORS) is reported here and the rest are pulled; without it, the pull stops there. */
  onRefused?: (r: PullRefused) => void;
  /**
   * Without `names`: the snapshots newer than the one taken that were passed over as dated
   * in the future by this computer's clock, newest first. Either their machine's clock was
   * ahead, or this one's is behind (a machine set up offline): the user decides, told.
   */
  onPassedOver?: (names: string[]) => void;
  /** This computer's time (tests). */
  now?: number;
}): Promise<PullResult[]> {
  const { target, toDir } = opts;
  opts.onProgress?.({ phase: 'listing' });
  const v = viewRemote(await target.list(opts.signal));
  const ranked = rankByTime([...v.complete.keys()], opts.now);
  const available = ranked.map((x) => x.name);
  let want: string[];
  if (opts.names === 'all') want = available;
  else if (opts.names?.length) {
    for (const n of opts.names) {
      if (!v.complete.has(n)) {
        throw new BackupError('SNAPSHOT_NOT_FOUND', `${target.label} holds no complete snapshot ${n}${v.unfinished.includes(n) ? ' (its upload is unfinished: no manifest)' : ''}.`, { hint: 'Run `list --remote …` to see what it holds.' });
      }
    }
    want = opts.names;
  } else {
    want = available.slice(0, 1);
    // Ranked last as future-dated, yet newer than the one taken.
    const newer = ranked.length ? ranked.filter((x) => compareNewestFirst(x, ranked[0]) < 0).map((x) => x.name) : [];
    if (newer.length) opts.onPassedOver?.(newer);
  }
  if (!want.length) throw new BackupError('NO_SNAPSHOTS', `${target.label} holds no complete snapshots.`, { hint: 'Push from the machine that has them first (`push --remote …`).' });
  await refuseInsideArchive(toDir);
  await refuseSidecarFolder(toDir, 'Folder', 'Pull into another folder with --to.');
  await fsp.mkdir(toDir, { recursive: true, mode: 0o700 }).catch((e: unknown) => Promise.reject(new BackupError('TARGET_NOT_WRITABLE', `Cannot create ${toDir}: ${e instanceof Error ? e.message : String(e)}`)));
  await cleanStaleTemps(toDir); // what a pull killed mid-download left (its work folder with a partial snapshot)
  // Archived snapshots count as present: restore takes them by the path their plain file would have.
  const local = new Map((await listSnapshots(toDir, { archived: true })).map((e) => [e.name, e]));
  const out: PullResult[] = [];
  let store: PackStore | undefined;
  for (const name of want) {
    try {
      out.push(await pullOne(name));
    } catch (e) {
      if (opts.names !== 'all' || !opts.onRefused || !(e instanceof BackupError) || !SNAPSHOT_ERRORS.has(e.code)) throw e;
      opts.onRefused({ name, code: e.code, error: e.message, hint: e.hint });
    }
  }
  return out;

  async function pullOne(name: string): Promise<PullResult> {
    const mName = manifestNameFor(name);
    const mBytes = await target.readBytes(mName, opts.signal, SMALL_FILE_CAP); // a manifest's size at most, as in the backup folder
    const manifest = parseManifest(mBytes, `${target.label}/${mName}`);
    checkManifestNames(manifest, name, `${target.label}/${mName}`);
    let have = local.get(name);
    // An archived copy that would not rebuild (a damaged pack) is not "present": the copy is
    // pulled as its plain file beside it, which backup and prune then keep (prune.ts).
    if (have?.archived && have.manifest?.sha256 === manifest.sha256 && (await archivedProblem(toDir, name, have.manifest, (store ??= await PackStore.load(archivePaths(toDir), { readOnly: true }))))) have = undefined;
    if (have?.manifest?.sha256 === manifest.sha256 && have.sizeMatches) {
      // "Present" is said of bytes that are the snapshot: a plain file here is hashed (an
      // archived one is proven by its rebuild when it is read). A damaged one is not replaced.
      const here = have.archived ? undefined : await hashFile(have.path, opts.signal);
      if (here && here.sha256 !== manifest.sha256) {
        throw new BackupError('SHA_MISMATCH', `${have.path} is here but damaged (sha256 ${here.sha256}; its manifest and the copy on ${target.label} say ${manifest.sha256}); not replaced.`, {
          hint: 'Move the damaged file (and its manifest) away, then pull again.',
        });
      }
      return { name, path: have.path, manifestPath: have.manifestPath, bytes: manifest.bytes, sha256: manifest.sha256, status: 'present' };
    }
    if (have) throw new BackupError('LOCKED', `${join(toDir, name)} already exists and differs from the copy on ${target.label}; not replaced.`, { hint: 'Pull into an empty folder (--to), or move the local file away.' });
    // The temp keeps the snapshot's name inside a private folder, so the check sees its manifest beside it.
    const work = tempPath(toDir, 'pull');
    await fsp.mkdir(work, { mode: 0o700 });
    try {
      const tmpSnap = join(work, name);
      const fh = await fsp.open(tmpSnap, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL, 0o600);
      await fh.close();
      opts.onProgress?.({ phase: 'downloading', name, done: 0, total: manifest.bytes });
      const got = await target.downloadTo(name, tmpSnap, { signal: opts.signal, maxBytes: manifest.bytes, onBytes: (done, total) => opts.onProgress?.({ phase: 'downloading', name, done, total }) });
      if (got.bytes !== manifest.bytes || got.sha256 !== manifest.sha256) {
        throw new BackupError('SHA_MISMATCH', `The copy of ${name} on ${target.label} does not match its manifest (got ${got.bytes} bytes, sha256 ${got.sha256}; manifest: ${manifest.bytes} bytes, ${manifest.sha256}); nothing was kept.`, {
          hint: 'Pull another snapshot (`list --remote …`).',
        });
      }
      await writeFileAtomic(join(work, mName), mBytes, 0o600);
      let integrity: string | undefined;
      // Checked against its manifest and, with an operator key, that manifest's signature — also
      // with --verify off, which only leaves out quick_check: an edited manifest naming edited
      // bytes was taken as the snapshot.
      const check = opts.integrity ?? 'quick';
      opts.onProgress?.({ phase: 'checking', name });
      const { report } = await examineSnapshot(tmpSnap, { useManifest: true, integrity: check, stopAtFirst: true, encryptedIsProblem: false, signal: opts.signal, hashed: got.sha256 });
      if (report.problems.length) {
        const p = report.problems[0];
        throw new BackupError(p.code, `The copy of ${name} on ${target.label}: ${p.message}; nothing was kept.`, { hint: p.hint });
      }
      if (check !== 'off') integrity = report.integrity?.result ?? report.notes.join('; ');
      // Manifest first (as a backup publishes), then the snapshot, neither replacing anything:
      // a backup (or another pull) that named a snapshot so meanwhile keeps its manifest — a
      // rename put this one over it, and that snapshot no longer matched its manifest.
      const mPath = join(toDir, mName);
      const ownManifest = await createFileNoClobber(mPath, mBytes, 0o600, { purpose: 'manifest' }); // as private as the snapshot it names
      if (!ownManifest) {
        // The same manifest (another pull of this snapshot) may stay; any other is not ours to replace.
        const there = await fsp.readFile(mPath).catch(() => undefined);
        if (!there?.equals(mBytes)) throw new BackupError('LOCKED', `${mPath} appeared while ${name} was downloaded and differs from the copy on ${target.label}; nothing was replaced.`, { hint: 'Pull into another folder (--to), or move the local snapshot and its manifest away first.' });
      }
      // Dated as the snapshot, not as the download (naming.ts snapshotFileTime: ai-memory orders by file time).
      const when = snapshotFileTime(name, manifest.created_at);
      if (when) await fsp.utimes(tmpSnap, when, when).catch(() => undefined); // best effort: a file system that keeps no times (some network mounts) fails nothing
      if (!(await publishNoClobber(tmpSnap, join(toDir, name)))) {
        if (ownManifest) await fsp.rm(mPath, { force: true }); // ours, placed a moment ago, for a file that is not ours
        throw new BackupError('LOCKED', `${join(toDir, name)} appeared while it was downloaded; not replaced.`, { hint: 'Pull into another folder (--to), or move the local snapshot away first.' });
      }
      await fsyncDir(toDir);
      return { name, path: join(toDir, name), manifestPath: join(toDir, mName), bytes: got.bytes, sha256: got.sha256, status: 'downloaded', integrity };
    } finally {
      await fsp.rm(work, { recursive: true, force: true }).catch(() => undefined);
    }
  }
}
