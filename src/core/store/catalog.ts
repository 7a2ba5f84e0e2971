/**
 * What is in a backup folder: snapshots (ours and ai-memory's own), newest first, each
 * with its manifest read and checked for shape — without hashing anything, so listing a
 * folder of a thousand snapshots stays fast. Hashing is `verifySnapshot` (verify.ts).
 */
import { isInside } from '../common/fsFacts';
import { close, constants as fsc, fstat, lstat, open, promises as fsp, read, type Stats } from 'node:fs';
import { join } from 'node:path';
import { BackupError, errnoCode, errorMessage, ioError, isBackupError } from '../common/errors';
import { NotRegularFileError, readSmallRegularBytes, SMALL_FILE_CAP, TooLargeFileError } from '../common/regularFile';
import { acquireFolderLock } from './folderLock';
import { checkManifestNames, parseManifest, type Manifest } from './manifest';
import { resolveOperatorPublicKey, type OperatorPublicKey } from './operatorKey';
import { assessManifest, type SignatureVerdict } from './signing';
import { deleteArchived, listArchived, refuseInsideArchive } from './archive';
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
  /**
   * The manifest file could not be read at all (not a regular file, too large, an I/O error) —
   * as opposed to read and found not to be a manifest. ai-memory 1.0's --latest passes over
   * the first ("no manifest") and refuses to choose over the second.
   */
  manifestUnreadable?: boolean;
  /**
   * ai-memory 1.0's signature verdict (store/signing.ts). When 'verified', `manifest` holds
   * the signed values; when 'refused', `manifestState` is 'invalid' and `manifestError` says why.
   */
  signature?: SignatureVerdict;
  /** File size equals the manifest's `bytes` (undefined without a usable manifest). */
  sizeMatches?: boolean;
  /**
   * Its time is later than now (+ FUTURE_SKEW_MS): a clock that was wrong, or a file copied
   * in. It never outranks a snapshot taken now: it is listed after every other snapshot
   * (and is the first to go when retention is due), and the outputs say so.
   */
  future: boolean;
  /**
   * Stored in the page-dedup archive (archive.ts), not as a plain file: `path` is where the
   * plain file would be, `manifestPath` the manifest inside the archive, `size` its bytes.
   */
  archived?: boolean;
  indexPath?: string;
}

/** How far in the future a snapshot's time may be before it counts as future-dated (clocks of two machines sharing a folder differ a little). */
export const FUTURE_SKEW_MS = 10 * 60_000;

/** Newest first; future-dated snapshots after all others (newest first among themselves). */
export function compareEntries(a: Pick<SnapshotEntry, 'future' | 'time' | 'seq' | 'name'>, b: Pick<SnapshotEntry, 'future' | 'time' | 'seq' | 'name'>): number {
  return Number(a.future) - Number(b.future) || compareNewestFirst(a, b);
}

export interface ListOptions {
  /** Read and check manifests (default true). */
  manifests?: boolean;
  /** The operator public key signatures are checked against; undefined: resolved as ai-memory does; null: none. */
  anchor?: OperatorPublicKey | null;
  /** The clock that decides what is "in the future" (default: now). */
  now?: number;
  /** Include snapshots of the page-dedup archive (default false: plain files only). */
  archived?: boolean;
}

type ManifestFacts = Pick<SnapshotEntry, 'manifest' | 'manifestState' | 'manifestError' | 'manifestUnreadable' | 'signature'>;

/** `anchor` as ListOptions takes it → the key (resolving it from the environment when undefined). */
export async function anchorFor(anchor: OperatorPublicKey | null | undefined): Promise<OperatorPublicKey | undefined> {
  if (anchor === null) return undefined;
  return anchor ?? (await resolveOperatorPublicKey()).key;
}


/**
 * Manifests are a few hundred bytes; one read of this size gets all of one. Under half of
 * Buffer.poolSize, so each buffer is a slice of Node's shared pool, not a new allocation.
 */
const SMALL_READ_BYTES = 4000;

/**
 * Reads a small file with one open, one fstat and one read, and does not wait for the
 * close; a larger file falls back to readSmallRegular. fs.promises.readFile takes five
 * thread-pool round trips (open, fstat, read, read, close) with a promise each: for a
 * folder of 1,000 snapshots that was most of the listing's time. The file is opened the
 * safe way (regularFile.ts): O_NONBLOCK, fstat of the descriptor, regular files only, at
 * most SMALL_FILE_CAP bytes — a FIFO named like a manifest once hung every listing.
 */
function readSmallFile(path: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    open(path, fsc.O_RDONLY | (fsc.O_NONBLOCK ?? 0), (err, fd) => {
      if (err) return reject(err);
      fstat(fd, (errS, st) => {
        if (errS || !st.isFile() || st.size > SMALL_FILE_CAP) {
          close(fd, () => undefined);
          if (errS) return reject(errS);
          return reject(st.isFile() ? new TooLargeFileError(path, st.size, SMALL_FILE_CAP) : new NotRegularFileError(path, 'not a regular file'));
        }
        const buf = Buffer.allocUnsafe(SMALL_READ_BYTES);
        read(fd, buf, 0, buf.length, 0, (err2, n) => {
          close(fd, () => undefined);
          if (err2) reject(err2);
          else if (n < buf.length) resolve(buf.subarray(0, n));
          else readSmallRegularBytes(path).then(resolve, reject);
        });
      });
    });
  });
}

function lstatCb(path: string): Promise<Stats> {
  return new Promise((resolve, reject) => lstat(path, (err, st) => (err ? reject(err) : resolve(st))));
}

/** Reads and checks the manifest beside a snapshot. Never throws for a bad manifest: it reports the state. */
export async function readManifestFor(snapshotName: string, manifestPath: string, anchor?: OperatorPublicKey | null): Promise<ManifestFacts> {
  // The key first, then the read: a read started before an await could reject unobserved
  // (a missing manifest then crashed the process with an unhandled rejection).
  const key = await anchorFor(anchor);
  return checkManifestText(snapshotName, manifestPath, readSmallFile(manifestPath), key);
}

async function checkManifestText(snapshotName: string, manifestPath: string, reading: Promise<Buffer>, anchor: OperatorPublicKey | undefined): Promise<ManifestFacts> {
  let text: Buffer;
  try {
    text = await reading;
  } catch (e) {
    if (errnoCode(e) === 'ENOENT') return { manifestState: 'missing' };
    if (isBackupError(e)) return { manifestState: 'invalid', manifestError: e.message, manifestUnreadable: true };
    return { manifestState: 'invalid', manifestError: `cannot read ${manifestPath}: ${errorMessage(e)}`, manifestUnreadable: true };
  }
  try {
    const plain = parseManifest(text, manifestPath);
    let assessed;
    try {
      assessed = assessManifest(plain, snapshotName, manifestPath, anchor);
    } catch (e) {
      if (isBackupError(e) && e.code === 'SIGNATURE_REFUSED') return { manifestState: 'invalid', manifestError: e.message, signature: { state: 'refused', reason: e.message } };
      throw e;
    }
    checkManifestNames(assessed.manifest, snapshotName, manifestPath);
    return { manifest: assessed.manifest, manifestState: 'ok', signature: assessed.verdict };
  } catch (e) {
    if (isBackupError(e)) return { manifestState: e.code === 'MANIFEST_FOREIGN' ? 'foreign' : 'invalid', manifestError: e.message };
    throw e;
  }
}

async function describe(dir: string, realDir: string, name: string, readManifests: boolean, anchor: OperatorPublicKey | undefined, now: number): Promise<SnapshotEntry | undefined> {
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
  const time = nameTime?.time ?? st.mtimeMs;
  const entry: SnapshotEntry = {
    name,
    path,
    manifestPath,
    time,
    timeSource: nameTime ? 'name' : 'mtime',
    seq: nameTime?.seq ?? 1,
    size: st.size,
    mtimeMs: st.mtimeMs,
    symlink,
    unsafe,
    manifestState: 'missing',
    future: time > now + FUTURE_SKEW_MS,
  };
  if (manifestText) {
    Object.assign(entry, await checkManifestText(name, manifestPath, manifestText, anchor));
    if (entry.manifest) entry.sizeMatches = entry.manifest.bytes === entry.size;
  }
  return entry;
}

/** Lists the snapshots in `dir`, newest first. A missing folder is an empty list. */
export async function listSnapshots(dir: string, opts: ListOptions = {}): Promise<SnapshotEntry[]> {
  await refuseInsideArchive(dir); // every command that reads a backup folder comes here
  let names: string[];
  try {
    names = (await fsp.readdir(dir)).filter(isSnapshotFileName);
  } catch (e) {
    const code = errnoCode(e);
    if (code === 'ENOENT') return [];
    if (code === 'ENOTDIR') {
      throw new BackupError('TARGET_NOT_DIRECTORY', `${dir} is a file, not a folder.`, { hint: 'Choose a backup folder.' });
    }
    throw ioError('listing the backup folder', dir, e);
  }
  const realDir = await fsp.realpath(dir).catch(() => dir);
  const readManifests = opts.manifests ?? true;
  const anchor = readManifests && names.length ? await anchorFor(opts.anchor) : undefined;
  const now = opts.now ?? Date.now();
  const out: SnapshotEntry[] = [];
  // Bounded concurrency: enough to hide per-file latency, not enough to exhaust descriptors.
  let next = 0;
  const worker = async () => {
    while (next < names.length) {
      const e = await describe(dir, realDir, names[next++], readManifests, anchor, now);
      if (e) out.push(e);
    }
  };
  await Promise.all(Array.from({ length: Math.min(32, names.length) }, worker));
  if (opts.archived) {
    // A snapshot both plain and archived (a crash before its plain copy went) is listed once, as plain.
    const plain = new Set(out.map((e) => e.name));
    const archived = (await listArchived(dir)).filter((a) => !plain.has(a.name) && parseSnapshotName(a.name));
    const archAnchor = readManifests && archived.length && !names.length ? await anchorFor(opts.anchor) : anchor;
    for (const a of archived) {
      const t = parseSnapshotName(a.name);
      if (!t) continue;
      const st = await fsp.stat(a.manifestPath).catch(() => undefined);
      const entry: SnapshotEntry = {
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
        future: t.time > now + FUTURE_SKEW_MS,
        archived: true,
        indexPath: a.indexPath,
      };
      // The manifest moved into the archive byte for byte: a signed one is checked like a plain snapshot's.
      if (readManifests) Object.assign(entry, { manifest: undefined, manifestError: undefined, manifestUnreadable: undefined }, await readManifestFor(a.name, a.manifestPath, archAnchor ?? null));
      // Its size is the manifest's: the archive rebuilds exactly those bytes, or says it is damaged.
      if (entry.manifest) entry.sizeMatches = true;
      out.push(entry);
    }
  }
  return out.sort(compareEntries);
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
    // The plain file shows the snapshot of this name; an archived one of the same name goes
    // with it only when it is the same snapshot (a file copied in, or written before archived
    // names were kept apart, may be another one, which the listing does not show).
    const plain = await readManifestFor(name, join(dir, manifestNameFor(name)), null).catch(() => undefined);
    const hasPlain = await fsp.lstat(join(dir, name)).then(() => true, () => false);
    const archived = (await listArchived(dir)).find((a) => a.name === name);
    await fsp.unlink(join(dir, name)).catch((e: unknown) => {
      if (errnoCode(e) !== 'ENOENT') throw new BackupError('IO', `Could not delete ${name}: ${errorMessage(e)}`);
    });
    await fsp.rm(join(dir, manifestNameFor(name)), { force: true });
    if (archived && (!hasPlain || (plain?.manifest && archived.manifest && plain.manifest.sha256 === archived.manifest.sha256))) await deleteArchived(dir, name);
  } finally {
    await lock.release();
  }
}
