/**
 * What is in a backup folder: snapshots (ours and ai-memory's own), newest first, each
 * with its manifest read and checked for shape — without hashing anything, so listing a
 * folder of a thousand snapshots stays fast. Hashing is `verifySnapshot` (verify.ts).
 */
import { isInside } from '../common/fsFacts';
import { close, lstat, open, promises as fsp, read, type Stats } from 'node:fs';
import { join } from 'node:path';
import { BackupError, errnoCode, errorMessage, isBackupError } from '../common/errors';
import { acquireFolderLock } from './folderLock';
import { checkManifestNames, parseManifest, type Manifest } from './manifest';
import { deleteArchived, listArchived } from './archive';
import { compareNewestFirst, isSnapshotFileName, manifestNameFor, parseSnapshotName } from './naming';

export type ManifestState = 'ok' | 'missing' | 'invalid' | 'foreign';

export interface SnapshotEntry {
  name: string;
  path: string;
  manifestPath: string;
  /** UTC ms: from the name when it has the shared format, else the file's mtime. */
  time: number;
  timeSource: 'name' | 'mtime';
  seq: number;
  size: number;
  mtimeMs: number;
  /** The entry is a symlink; `unsafe` when it leads outside the folder (never restored). */
  symlink: boolean;
  unsafe: boolean;
  manifest?: Manifest;
  manifestState: ManifestState;
  manifestError?: string;
  /** File size equals the manifest's `bytes` (undefined without a usable manifest). */
  sizeMatches?: boolean;
  /**
   * Stored in the page-dedup archive (archive.ts), not as a plain file: `path` is where the
   * plain file would be, `manifestPath` the manifest inside the archive, `size` its bytes.
   */
  archived?: boolean;
  indexPath?: string;
}

export interface ListOptions {
  /** Read and check manifests (default true). */
  manifests?: boolean;
  /** Include snapshots of the page-dedup archive (default false: plain files only). */
  archived?: boolean;
}


/**
 * Manifests are a few hundred bytes; one read of this size gets all of one. Under half of
 * Buffer.poolSize, so each buffer is a slice of Node's shared pool, not a new allocation.
 */
const SMALL_READ_BYTES = 4000;

/**
 * Reads a small file with one open and one read, and does not wait for the close; a larger
 * file falls back to readFile. fs.promises.readFile takes five thread-pool round trips
 * (open, fstat, read, read, close) with a promise each: for a folder of 1,000 snapshots
 * that was most of the listing's time.
 */
function readSmallFile(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    open(path, 'r', (err, fd) => {
      if (err) return reject(err);
      const buf = Buffer.allocUnsafe(SMALL_READ_BYTES);
      read(fd, buf, 0, buf.length, 0, (err2, n) => {
        close(fd, () => undefined);
        if (err2) reject(err2);
        else if (n < buf.length) resolve(buf.toString('utf8', 0, n));
        else fsp.readFile(path, 'utf8').then(resolve, reject);
      });
    });
  });
}

function lstatCb(path: string): Promise<Stats> {
  return new Promise((resolve, reject) => lstat(path, (err, st) => (err ? reject(err) : resolve(st))));
}

/** Reads and checks the manifest beside a snapshot. Never throws for a bad manifest: it reports the state. */
export async function readManifestFor(snapshotName: string, manifestPath: string): Promise<Pick<SnapshotEntry, 'manifest' | 'manifestState' | 'manifestError'>> {
  return checkManifestText(snapshotName, manifestPath, readSmallFile(manifestPath));
}

async function checkManifestText(snapshotName: string, manifestPath: string, reading: Promise<string>): Promise<Pick<SnapshotEntry, 'manifest' | 'manifestState' | 'manifestError'>> {
  let text: string;
  try {
    text = await reading;
  } catch (e) {
    if (errnoCode(e) === 'ENOENT') return { manifestState: 'missing' };
    return { manifestState: 'invalid', manifestError: `cannot read ${manifestPath}: ${errorMessage(e)}` };
  }
  try {
    const manifest = parseManifest(text, manifestPath);
    checkManifestNames(manifest, snapshotName, manifestPath);
    return { manifest, manifestState: 'ok' };
  } catch (e) {
    if (isBackupError(e)) return { manifestState: e.code === 'MANIFEST_FOREIGN' ? 'foreign' : 'invalid', manifestError: e.message };
    throw e;
  }
}

async function describe(dir: string, realDir: string, name: string, readManifests: boolean): Promise<SnapshotEntry | undefined> {
  const path = join(dir, name);
  const manifestPath = join(dir, manifestNameFor(name));
  // The manifest is read while the snapshot is stat'ed (its result is only looked at for a file).
  const manifestText = readManifests ? readSmallFile(manifestPath) : undefined;
  manifestText?.catch(() => undefined);
  let st: Stats;
  try {
    st = await lstatCb(path);
  } catch {
    return undefined; // vanished between readdir and lstat
  }
  const symlink = st.isSymbolicLink();
  let unsafe = false;
  if (symlink) {
    try {
      const target = await fsp.realpath(path);
      unsafe = !isInside(realDir, target);
      st = await fsp.stat(path);
    } catch {
      unsafe = true; // dangling link
    }
  }
  if (!st.isFile() && !unsafe) return undefined;
  const nameTime = parseSnapshotName(name);
  const entry: SnapshotEntry = {
    name,
    path,
    manifestPath,
    time: nameTime?.time ?? st.mtimeMs,
    timeSource: nameTime ? 'name' : 'mtime',
    seq: nameTime?.seq ?? 1,
    size: st.size,
    mtimeMs: st.mtimeMs,
    symlink,
    unsafe,
    manifestState: 'missing',
  };
  if (manifestText) {
    Object.assign(entry, await checkManifestText(name, manifestPath, manifestText));
    if (entry.manifest) entry.sizeMatches = entry.manifest.bytes === entry.size;
  }
  return entry;
}

/** Lists the snapshots in `dir`, newest first. A missing folder is an empty list. */
export async function listSnapshots(dir: string, opts: ListOptions = {}): Promise<SnapshotEntry[]> {
  let names: string[];
  try {
    names = (await fsp.readdir(dir)).filter(isSnapshotFileName);
  } catch (e) {
    const code = errnoCode(e);
    if (code === 'ENOENT') return [];
    if (code === 'ENOTDIR') {
      throw new BackupError('TARGET_NOT_DIRECTORY', `${dir} is a file, not a folder.`, { hint: 'Choose a backup folder.' });
    }
    throw new BackupError('IO', `Cannot read the backup folder ${dir}: ${errorMessage(e)}`);
  }
  const realDir = await fsp.realpath(dir).catch(() => dir);
  const out: SnapshotEntry[] = [];
  // Bounded concurrency: enough to hide per-file latency, not enough to exhaust descriptors.
  let next = 0;
  const worker = async () => {
    while (next < names.length) {
      const e = await describe(dir, realDir, names[next++], opts.manifests ?? true);
      if (e) out.push(e);
    }
  };
  await Promise.all(Array.from({ length: Math.min(32, names.length) }, worker));
  if (opts.archived) {
    // A snapshot both plain and archived (a crash before its plain copy went) is listed once, as plain.
    const plain = new Set(out.map((e) => e.name));
    for (const a of await listArchived(dir)) {
      if (plain.has(a.name)) continue;
      const t = parseSnapshotName(a.name);
      if (!t) continue;
      const st = await fsp.stat(a.manifestPath).catch(() => undefined);
      out.push({
        name: a.name,
        path: join(dir, a.name),
        manifestPath: a.manifestPath,
        time: t.time,
        timeSource: 'name',
        seq: t.seq,
        size: a.manifest?.bytes ?? 0,
        mtimeMs: st?.mtimeMs ?? 0,
        symlink: false,
        unsafe: false,
        manifest: a.manifest,
        manifestState: a.manifest ? 'ok' : 'invalid',
        manifestError: a.manifestError,
        sizeMatches: a.manifest ? true : undefined,
        archived: true,
        indexPath: a.indexPath,
      });
    }
  }
  return out.sort(compareNewestFirst);
}

/**
 * Deletes one snapshot and its manifest — the snapshot first, so a crash in between leaves
 * a harmless manifest without a snapshot (cleaned by the next backup), never a snapshot
 * without its manifest. Takes the folder lock so it never races a backup's retention.
 */
export async function deleteSnapshot(dir: string, name: string): Promise<void> {
  if (!isSnapshotFileName(name) || name.includes('/') || name.includes('\\')) {
    throw new BackupError('USAGE', `${name} is not a snapshot name.`);
  }
  const lock = await acquireFolderLock(dir, { purpose: 'delete', waitMs: 10_000 });
  try {
    await fsp.unlink(join(dir, name)).catch((e: unknown) => {
      if (errnoCode(e) !== 'ENOENT') throw new BackupError('IO', `Could not delete ${name}: ${errorMessage(e)}`);
    });
    await fsp.rm(join(dir, manifestNameFor(name)), { force: true });
    if ((await listArchived(dir)).some((a) => a.name === name)) await deleteArchived(dir, name);
  } finally {
    await lock.release();
  }
}
