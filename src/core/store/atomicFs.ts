/**
 * Crash-safe file primitives: every file we create goes temp → fsync → link/rename →
 * fsync(directory), so a crash at any instant leaves either nothing or a complete file
 * under the final name.
 */
import { isNoHardLinkError } from '../common/fsFacts';
import { createHash, randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { constants as fsc, promises as fsp } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { errnoCode, ioError } from '../common/errors';
import { openRegular } from '../common/regularFile';

/** Our temporary files start with this; neither ai-memory nor we treat them as snapshots. */
export const TEMP_PREFIX = '.ai-memory-backup-';
const TEMP_RE = /^\.ai-memory-backup-([0-9a-f]{6})-(\d+)-[0-9a-f]{8}\.[a-z-]+\.tmp$/;

/** Short tag of this machine, so a folder shared between machines never mistakes a pid. */
export const HOST_TAG = createHash('sha1').update(hostname()).digest('hex').slice(0, 6);

export function tempPath(dir: string, purpose: string): string {
  return join(dir, `${TEMP_PREFIX}${HOST_TAG}-${process.pid}-${randomBytes(4).toString('hex')}.${purpose}.tmp`);
}

/** Who created a temp file of ours, or undefined for any other name. */
export function tempOwner(name: string): { host: string; pid: number } | undefined {
  const m = TEMP_RE.exec(name);
  return m ? { host: m[1], pid: Number(m[2]) } : undefined;
}

export function pidAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return errnoCode(e) === 'EPERM'; // exists, owned by someone else
  }
}

/**
 * fsync a directory so a rename/link/unlink inside it is durable. Windows cannot open
 * directories for this (and NTFS journals metadata), so it is skipped there.
 */
export async function fsyncDir(dir: string): Promise<void> {
  if (process.platform === 'win32') return;
  let fh;
  try {
    fh = await fsp.open(dir, fsc.O_RDONLY);
    await fh.sync();
  } catch (e) {
    const code = errnoCode(e);
    if (code === 'EINVAL' || code === 'EISDIR' || code === 'EPERM' || code === 'EACCES') return; // fs without directory fsync
    throw ioError('syncing folder', dir, e);
  } finally {
    await fh?.close();
  }
}

export async function writeAll(fh: fsp.FileHandle, data: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < data.length) {
    const { bytesWritten } = await fh.write(data, done, data.length - done, position + done);
    done += bytesWritten;
  }
}

/**
 * Has the disk start on a large file while we are still producing it. Linux lets written
 * pages wait in memory until a share of RAM is dirty (10 % by default: 2.4 GB on a 24 GB
 * machine), so without this the whole file goes to disk only in the final fsync, after all
 * the reading, inflating and hashing instead of during it. Every `every` bytes an
 * fdatasync runs on libuv's thread pool (at most one at a time) while we go on. Node has
 * no sync_file_range, which would only start the writing; fdatasync is the portable way.
 *
 * A failed fdatasync is kept and thrown by `settle()`: Linux reports a writeback error to
 * one fsync only, so a final fsync after a swallowed one could return success for lost
 * data. Call `settle()` before the final fsync, and before closing the handle on any path.
 */
export class EarlyWriteback {
  private inflight: Promise<void> | undefined;
  private since = 0;
  private failure: unknown;

  constructor(
    private readonly fh: fsp.FileHandle,
    private readonly every = 32 << 20,
  ) {}

  /** `bytes` more were handed to write(2) (their writes complete before the next note). */
  wrote(bytes: number): void {
    this.since += bytes;
    if (this.since < this.every || this.inflight || this.failure) return;
    this.since = 0;
    this.inflight = this.fh.datasync().then(
      () => {
        this.inflight = undefined;
      },
      (e: unknown) => {
        this.inflight = undefined;
        this.failure ??= e;
      },
    );
  }

  /** The file was truncated: what was written before is gone, and no fdatasync is owed for it. */
  truncated(): void {
    this.since = 0;
  }

  /** Waits for the fdatasync in flight; throws the first one that failed. */
  async settle(): Promise<void> {
    await this.inflight;
    if (this.failure) throw this.failure;
  }
}

/**
 * Private data stays private: every file made from the database (snapshot, manifest, the
 * temp files on the way, a restored or consolidated database) is created with a mode no
 * wider than the database's own — from the open(2) on, never chmod'ed narrower afterwards
 * (a reader could open it in between). The umask may narrow it further.
 */
export function fileModeLike(mode: number): number {
  return mode & 0o666;
}

/**
 * The permission bits the folders above `path` let through: a group (other) that cannot
 * search one of them (x) cannot reach the file, whatever the file's own mode says. A 0644
 * database in a 0700 home folder is readable by its owner only, and so must be what we make
 * of it elsewhere (a backup folder on another disk, a mirror, an export): from the file's
 * mode alone those would be 0644 in a 0755 folder. Folders of the real path (links
 * followed), as the kernel walks them. A folder whose group is not the file's and that
 * others cannot search keeps the file's group out too (they may not be its members). 0o777
 * on Windows, where modes say nothing of this.
 */
export async function folderMask(path: string): Promise<number> {
  if (process.platform === 'win32') return 0o777;
  let real: string;
  let gid: number;
  try {
    real = await fsp.realpath(path);
    gid = (await fsp.stat(real)).gid;
  } catch {
    return 0o777; // nothing there (yet): its own mode decides
  }
  let mask = 0o777;
  for (let d = dirname(real); ; d = dirname(d)) {
    const st = await fsp.stat(d).catch(() => undefined);
    if (st) {
      if (!(st.mode & 0o001)) {
        mask &= ~0o007;
        if (st.gid !== gid) mask &= ~0o070;
      }
      if (!(st.mode & 0o010)) mask &= ~0o070;
    }
    if (dirname(d) === d) break;
  }
  return mask;
}

/**
 * The group a file made in `dir` gets: the group of a set-group-ID folder (the nearest one
 * that exists: folders made under it inherit the bit), else the process's effective group.
 * undefined on Windows.
 */
export async function newFileGid(dir: string): Promise<number | undefined> {
  if (process.platform === 'win32' || !process.getegid) return undefined;
  for (let d = resolve(dir); ; d = dirname(d)) {
    const st = await fsp.stat(d).catch(() => undefined);
    // BSD rule (macOS): a new file always takes its folder's group; Linux: only a set-group-ID folder's.
    if (st?.isDirectory()) return process.platform === 'darwin' || st.mode & 0o2000 ? st.gid : process.getegid();
    if (dirname(d) === d) return process.getegid();
  }
}

/**
 * The mode a copy of `source` made in `targetDir` may have: the source's own bits, only
 * those its folders let through (folderMask), and its group bits only when the copy gets the
 * source's group. A 0640 database of group `adm` copied into a folder whose new files are of
 * the user's own group would otherwise be readable by that group's members instead of adm's:
 * the copy is then 0600 (narrower, never wider; we do not chown).
 */
export async function reachableMode(source: string, targetDir: string): Promise<number> {
  const st = await fsp.stat(source);
  let mode = st.mode & 0o777 & (await folderMask(source));
  const gid = await newFileGid(targetDir);
  if (gid !== undefined && gid !== st.gid) mode &= ~0o070;
  return mode;
}

/** A folder for such files: the file mode plus search (x) wherever reading (r) is allowed, always rwx for the owner (0600 → 0700, 0640 → 0750, 0644 → 0755). */
export function dirModeLike(mode: number): number {
  const m = fileModeLike(mode);
  return m | ((m & 0o444) >> 2) | 0o700;
}

export interface Likeness {
  mode: number;
  uid: number;
  gid: number;
}

/** Mode (permission bits) and owner of `path`, to give a file that replaces it; undefined when it does not exist. */
export async function likenessOf(path: string): Promise<Likeness | undefined> {
  try {
    const st = await fsp.stat(path);
    return { mode: st.mode & 0o777, uid: st.uid, gid: st.gid };
  } catch {
    return undefined;
  }
}

/**
 * What chmod says where the file system keeps no Unix modes: FAT and exFAT refuse a change
 * they cannot store with EPERM (unless mounted `quiet`), FUSE file systems without modes
 * (fusefat, some shares) with ENOSYS, others with ENOTSUP/EOPNOTSUPP.
 */
const NO_MODE_ERRORS = new Set(['EPERM', 'ENOSYS', 'ENOTSUP', 'EOPNOTSUPP']);

/**
 * Gives a file we created (so ours: EPERM cannot be "not its owner") `mode`. Where its file
 * system keeps no modes (a FAT/exFAT drive, some FUSE and network mounts: chmod fails, or
 * succeeds and changes nothing) the file has the mode the mount gives every file there:
 * returned then (undefined when `mode` was given), for the caller to say so when that lets
 * more people read it. Every
 * file there has that mode, so refusing would protect nothing; it failed the copy (a
 * mirror on a FAT USB drive never got one) and the restore of a database living there.
 */
export async function giveMode(fh: fsp.FileHandle, mode: number): Promise<number | undefined> {
  try {
    await fh.chmod(mode);
  } catch (e) {
    if (!NO_MODE_ERRORS.has(errnoCode(e) ?? '')) throw e;
  }
  // Some say yes and keep nothing (exfat-fuse, FAT mounted `quiet`): what it has is what counts.
  const has = (await fh.stat()).mode & 0o777;
  return has === (mode & 0o777) ? undefined : has;
}

/**
 * Copies `src` to the new file `dest` (a temp name of ours; never replaces one). libuv's
 * copyfile gives the copy the source's mode and fails when that cannot be given: EPERM
 * on a FAT/exFAT drive for any mode but the mount's, ENOSYS on FUSE file systems without
 * modes — a restore beside a database on a USB drive, `materialize --out` to one. There the
 * bytes are copied by hand and the mode given where it is kept (giveMode). Not fsynced.
 */
export async function copyFileExcl(src: string, dest: string): Promise<void> {
  try {
    await fsp.copyFile(src, dest, fsc.COPYFILE_EXCL);
    return;
  } catch (e) {
    if (!NO_MODE_ERRORS.has(errnoCode(e) ?? '')) throw e;
  }
  await fsp.rm(dest, { force: true }); // what the failed copyfile may have left under our temp name
  const { fh: from, size } = await openRegular(src);
  let to: fsp.FileHandle | undefined;
  try {
    const mode = (await from.stat()).mode & 0o777;
    to = await fsp.open(dest, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL, mode);
    const buf = Buffer.allocUnsafe(1 << 20);
    for (let pos = 0; pos < size; ) {
      const { bytesRead } = await from.read(buf, 0, buf.length, pos);
      if (bytesRead === 0) break;
      await writeAll(to, buf.subarray(0, bytesRead), pos);
      pos += bytesRead;
    }
    await giveMode(to, mode);
  } catch (e) {
    await to?.close().catch(() => undefined);
    to = undefined;
    await fsp.rm(dest, { force: true }).catch(() => undefined);
    throw e;
  } finally {
    await to?.close();
    await from.close().catch(() => undefined);
  }
}

/** Said when a file's file system keeps no modes and its mount lets others read what `wanted` would not have. */
export function wideModeNote(where: string, has: number, wanted: number): string | undefined {
  if (!(has & ~wanted & 0o044)) return undefined; // more may read it (writing is guarded by sha256 and signatures)
  const o = (m: number) => `0${(m & 0o777).toString(8)}`;
  return `${where} is on a file system that keeps no permissions (FAT or exFAT, or a share without them): its files there have the mode the drive is mounted with (${o(has)}), not ${o(wanted)}: anyone who can reach that folder can read them. Keep that drive (or its mount point) private`;
}

/**
 * Gives an open file the exact mode and, where permitted (root; or our own uid and one of
 * our groups), the owner and group of the file it will replace. A restore run as root
 * must not leave the agent's database owned by root (the agent could no longer write it).
 * Owner first, mode second: the group bits are given only to the group they were meant for
 * (a group we may not give the file keeps its own group out: 0640 → 0600).
 */
export async function applyLikeness(fh: fsp.FileHandle, like: Likeness): Promise<void> {
  let st = await fh.stat();
  const notPermitted = (e: unknown): void => {
    const code = errnoCode(e);
    if (code !== 'EPERM' && code !== 'EINVAL' && code !== 'ENOSYS' && code !== 'ENOTSUP') throw e;
  };
  if (st.uid !== like.uid || st.gid !== like.gid) {
    // Not root: the file stays ours, and gets the group when we are one of its members.
    await fh.chown(like.uid, like.gid).catch(async (e: unknown) => {
      notPermitted(e);
      if (st.gid !== like.gid) await fh.chown(st.uid, like.gid).catch(notPermitted);
    });
    st = await fh.stat();
  }
  // On a file system without modes the file gets the mount's, which the file it replaces had too.
  await giveMode(fh, st.gid === like.gid ? like.mode & 0o777 : like.mode & 0o707);
}

/**
 * Writes `data` to `path` atomically: temp in the same folder (created with `mode`) → fsync →
 * rename → fsync folder. `purpose` names the temp file; `syncDir: false` leaves the folder's
 * fsync to a caller that renames several files into it and syncs it once.
 */
export async function writeFileAtomic(path: string, data: Uint8Array | string, mode: number, opts: { purpose?: string; syncDir?: boolean } = {}): Promise<void> {
  const dir = dirname(path);
  const tmp = tempPath(dir, opts.purpose ?? 'write');
  const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  let fh;
  try {
    fh = await fsp.open(tmp, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL, mode);
    await writeAll(fh, bytes, 0);
    await fh.sync();
    await fh.close();
    fh = undefined;
    await fsp.rename(tmp, path);
  } catch (e) {
    await fh?.close().catch(() => undefined);
    await fsp.rm(tmp, { force: true }).catch(() => undefined);
    throw ioError('writing', path, e);
  }
  if (opts.syncDir !== false) await fsyncDir(dir);
}

/**
 * Gives the complete file `src` the name `dest` without ever replacing an existing
 * `dest` (link(2) fails with EEXIST, unlike rename). Returns false when `dest` exists.
 * On file systems without hard links (FAT, some network shares) it falls back to an
 * exists-check + rename, which is safe under our folder lock.
 */
export async function publishNoClobber(src: string, dest: string): Promise<boolean> {
  try {
    await fsp.link(src, dest);
  } catch (e) {
    const code = errnoCode(e);
    if (code === 'EEXIST') return false;
    if (!isNoHardLinkError(e)) throw ioError('naming', dest, e);
    try {
      await fsp.lstat(dest);
      return false;
    } catch (e2) {
      if (errnoCode(e2) !== 'ENOENT') throw ioError('checking', dest, e2);
    }
    await fsp.rename(src, dest).catch((e3: unknown) => {
      throw ioError('naming', dest, e3);
    });
    return true;
  }
  await fsp.unlink(src).catch(() => undefined); // the temp name; the file lives on under `dest`
  return true;
}

/**
 * Creates the new file `dest` with `data` (bytes, text, or a function writing the temp file
 * from offset 0): temp in the same folder (created with `mode`) → fsync → link, which never
 * replaces a file (publishNoClobber) → fsync of the folder. The name is durable when this
 * returns, so a second name given next (a snapshot after its manifest) cannot outlive this one
 * in a power loss. Returns false, leaving nothing behind, when `dest` exists; a failure removes
 * the temp. `beforeName` runs between the complete temp and its naming (a crash point).
 */
export async function createFileNoClobber(
  dest: string,
  data: Uint8Array | string | ((fh: fsp.FileHandle) => Promise<void>),
  mode: number,
  opts: { purpose?: string; beforeName?: () => void } = {},
): Promise<boolean> {
  const dir = dirname(dest);
  const tmp = tempPath(dir, opts.purpose ?? 'write');
  let fh: fsp.FileHandle | undefined;
  let placed: boolean;
  try {
    try {
      fh = await fsp.open(tmp, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL, mode);
      if (typeof data === 'function') await data(fh);
      else await writeAll(fh, typeof data === 'string' ? Buffer.from(data, 'utf8') : data, 0);
      await fh.sync();
      await fh.close();
      fh = undefined;
    } catch (e) {
      throw ioError('writing', dest, e); // a BackupError (a cancel in `data`) passes as it is
    }
    opts.beforeName?.();
    placed = await publishNoClobber(tmp, dest);
  } catch (e) {
    await fh?.close().catch(() => undefined);
    await fsp.rm(tmp, { force: true }).catch(() => undefined);
    throw e;
  }
  if (!placed) {
    await fsp.rm(tmp, { force: true }).catch(() => undefined);
    return false;
  }
  await fsyncDir(dir);
  return true;
}

/** The newest mtime of a folder and the entries directly in it. */
async function newestMtime(dir: string, own: number): Promise<number> {
  let newest = own;
  for (const n of await fsp.readdir(dir).catch(() => [] as string[])) {
    const st = await fsp.lstat(join(dir, n)).catch(() => undefined);
    if (st && st.mtimeMs > newest) newest = st.mtimeMs;
  }
  return newest;
}

/**
 * Removes our temp files (and temp folders) in `dir` left by processes that no longer run (on this machine),
 * or a day old (another machine's, or a reused pid). Returns the names removed.
 * `deadOnly`: only those of this machine's processes that no longer run (a shared folder
 * such as the system's temp folder, where a day-old file may be a live process's).
 */
export async function cleanStaleTemps(dir: string, opts: { deadOnly?: boolean } = {}): Promise<string[]> {
  let names: string[];
  try {
    names = await fsp.readdir(dir);
  } catch {
    return [];
  }
  const removed: string[] = [];
  const now = Date.now();
  for (const name of names) {
    const owner = tempOwner(name);
    if (owner === undefined) continue;
    const path = join(dir, name);
    try {
      const st = await fsp.lstat(path);
      // A folder's mtime changes only when an entry is added or removed: pull's work folder
      // keeps the time its snapshot file was created while the download writes into it for
      // hours. Its age is that of the newest thing in it, or a live pull's would go at a day.
      const age = now - (st.isDirectory() ? await newestMtime(path, st.mtimeMs) : st.mtimeMs);
      const local = owner.host === HOST_TAG;
      if (local && owner.pid === process.pid) continue;
      const stale = (!opts.deadOnly && age >= 24 * 3600_000) || (local && !pidAlive(owner.pid));
      if (!stale) continue;
      // pull's work folder (a temp folder holding the snapshot being downloaded) too: unlink
      // refused it, and a pull killed mid-download left its partial snapshot there for good.
      if (st.isDirectory()) await fsp.rm(path, { recursive: true });
      else await fsp.unlink(path);
      removed.push(basename(path));
    } catch {
      // vanished or not ours to remove: leave it
    }
  }
  return removed;
}
