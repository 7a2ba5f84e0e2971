/**
 * A mirror folder: a NAS mount, or a folder Dropbox / OneDrive / iCloud / Syncthing syncs.
 * The folder must exist: we never create it, because a missing folder usually means an
 * unmounted drive, and writing into the empty mount point would fill the local disk and
 * pretend to be off-machine. Files arrive temp → fsync → rename → fsync(folder), with the
 * source file's permissions (never more readable than the source).
 */
import { createHash } from 'node:crypto';
import { constants as fsc, promises as fsp } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { BackupError, errnoCode, ioError, isBackupError } from '../common/errors';
import { openRegular, readSmallRegularBytes } from '../common/regularFile';
import { cleanStaleTemps, fsyncDir, reachableMode, tempPath, writeAll, writeFileAtomic, giveMode, wideModeNote } from '../store/atomicFs';
import { largerThanManifest, type DownloadOptions, type RemoteEntry, type RemoteTarget, type UploadExpect, type UploadOptions, type Written } from './target';

const CHUNK = 4 << 20;

/** What to do instead of mirroring the backup folder into itself. */
export const MIRROR_ELSEWHERE = 'Choose a mirror folder outside the backup folder: a NAS mount, another disk, or a folder a sync service (Dropbox, OneDrive, iCloud, Syncthing) copies off the machine.';

export class MirrorTarget implements RemoteTarget {
  readonly kind = 'folder' as const;
  readonly id: string;
  readonly label: string;
  readonly dir: string;
  private swept = false;

  constructor(dir: string) {
    this.dir = resolve(dir);
    this.id = `folder:${this.dir}`;
    this.label = this.dir;
  }

  private async ensure(): Promise<void> {
    let st;
    try {
      st = await fsp.stat(this.dir);
    } catch (e) {
      if (errnoCode(e) === 'ENOENT') {
        throw new BackupError('REMOTE_UNAVAILABLE', `The mirror folder ${this.dir} is not there (an unmounted drive or a removed folder?).`, {
          hint: 'Mount the drive or create the folder; the copy stays pending and is retried. It is never created for you, so an unmounted drive is not mistaken for an empty one.',
        });
      }
      throw ioError('opening the mirror folder', this.dir, e);
    }
    if (!st.isDirectory()) throw new BackupError('REMOTE_UNAVAILABLE', `The mirror ${this.dir} is a file, not a folder.`, { hint: 'Choose a folder.' });
  }

  /**
   * The backup folder itself as its own mirror (the folder again through a symbolic link, a
   * bind mount, or typed twice) or a folder inside it on the same disk is refused: such a
   * "copy" is on the same disk, an archived snapshot would be rebuilt into a plain file
   * beside its archive, and the target's retention (`push --keep N`) deleted the folder's
   * own snapshots — ones its own retention keeps. Compared by device and inode, every folder
   * from the mirror up to the root.
   */
  async refuseLocal(localDir: string): Promise<void> {
    const overlap = await this.overlapWith(localDir);
    if (!overlap) return;
    throw new BackupError(
      'REMOTE_UNAVAILABLE',
      overlap === 'same'
        ? `The mirror folder ${this.dir} is the backup folder ${localDir} itself: a copy there is no copy off this machine, and the mirror's retention would delete the backup folder's own snapshots. Nothing was copied or deleted.`
        : `The mirror folder ${this.dir} is inside the backup folder ${localDir}, on the same disk: a copy there is no copy off this machine. Nothing was copied or deleted.`,
      { hint: MIRROR_ELSEWHERE },
    );
  }

  /** 'same' when the mirror is the folder `localDir` (by any path), 'inside' when it is a folder within it on the same disk. */
  async overlapWith(localDir: string): Promise<'same' | 'inside' | undefined> {
    const local = await fsp.stat(localDir).catch(() => undefined);
    if (!local?.isDirectory()) return undefined; // no folder (yet): nothing of it to overwrite
    const real = await fsp.realpath(this.dir).catch(() => undefined);
    if (!real) return undefined; // a missing mirror is reported by ensure()
    const mirrorDev = (await fsp.stat(real)).dev;
    for (let p = real, first = true; ; first = false) {
      const st = await fsp.stat(p).catch(() => undefined);
      if (st && st.dev === local.dev && st.ino === local.ino) {
        if (first) return 'same';
        if (mirrorDev === local.dev) return 'inside'; // a disk mounted inside the backup folder is another disk
      }
      const up = dirname(p);
      if (up === p) return undefined;
      p = up;
    }
  }

  private path(name: string): string {
    if (name.includes('/') || name.includes('\\') || name === '..' || name === '.') throw new BackupError('USAGE', `${name} is not a file name.`);
    return join(this.dir, name);
  }

  async list(): Promise<RemoteEntry[]> {
    await this.ensure();
    const out: RemoteEntry[] = [];
    for (const d of await fsp.readdir(this.dir, { withFileTypes: true }).catch((e: unknown) => Promise.reject(ioError('listing', this.dir, e)))) {
      if (!d.isFile()) continue;
      const st = await fsp.stat(join(this.dir, d.name)).catch(() => undefined);
      if (st) out.push({ name: d.name, size: st.size, modifiedMs: st.mtimeMs });
    }
    return out;
  }

  async uploadFile(name: string, path: string, expect: UploadExpect, opts: UploadOptions = {}): Promise<Written> {
    await this.ensure();
    if (!this.swept) {
      // A push killed mid-copy left its temp (a partial snapshot) in the mirror; another
      // machine's only when a day old (cleanStaleTemps), as the folder may be shared.
      this.swept = true;
      await cleanStaleTemps(this.dir);
    }
    const dest = this.path(name);
    const tmp = tempPath(this.dir, 'mirror');
    const { fh: src } = await openRegular(path).catch((e: unknown) => Promise.reject(ioError('opening', path, e)));
    let out: fsp.FileHandle | undefined;
    try {
      // The source's mode as its folders let others use it (a snapshot in a folder only its owner can enter is not world-readable in the mirror), group bits only for its own group.
      const mode = await reachableMode(path, this.dir);
      out = await fsp.open(tmp, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL, mode);
      // umask must not make the copy more (or less) readable than the source; a drive that
      // keeps no modes (FAT/exFAT) gives every file the mount's: the copy is made, and that is said.
      const has = await giveMode(out, mode);
      const note = has === undefined ? undefined : wideModeNote(this.dir, has, mode);
      if (note) opts.onNote?.(note);
      const hash = createHash('sha256');
      const buf = Buffer.allocUnsafe(CHUNK);
      let pos = 0;
      for (;;) {
        if (opts.signal?.aborted) throw new BackupError('CANCELLED', 'Copy cancelled.');
        const { bytesRead } = await src.read(buf, 0, buf.length, pos);
        if (bytesRead === 0) break;
        hash.update(buf.subarray(0, bytesRead));
        await writeAll(out, buf.subarray(0, bytesRead), pos);
        pos += bytesRead;
        opts.onBytes?.(pos, expect.bytes);
      }
      const sha = hash.digest('hex');
      if (pos !== expect.bytes || sha !== expect.sha256) {
        throw new BackupError('REMOTE_MISMATCH', `${name} changed while it was copied (sent ${pos} bytes, sha256 ${sha}; its manifest says ${expect.bytes} bytes, ${expect.sha256}); nothing was kept in the mirror.`, {
          hint: 'Verify the local snapshot; the copy is tried again next time.',
        });
      }
      await out.sync();
      await out.close();
      out = undefined;
      await fsp.rename(tmp, dest);
      await fsyncDir(this.dir);
      const st = await fsp.stat(dest);
      if (st.size !== expect.bytes) throw new BackupError('REMOTE_MISMATCH', `${dest} is ${st.size} bytes after the copy, not ${expect.bytes}.`);
      return { modifiedMs: st.mtimeMs };
    } catch (e) {
      await out?.close().catch(() => undefined);
      await fsp.rm(tmp, { force: true }).catch(() => undefined);
      throw e instanceof BackupError ? e : ioError('copying to', dest, e);
    } finally {
      await src.close().catch(() => undefined);
    }
  }

  async uploadBytes(name: string, data: Uint8Array): Promise<Written> {
    await this.ensure();
    // A manifest (uploaded after its snapshot) is as readable as that snapshot there, never more; anything else private.
    const snapshot = name.endsWith('.manifest.json') ? this.path(`${name.slice(0, -'.manifest.json'.length)}.db`) : undefined;
    const mode = snapshot ? ((await fsp.stat(snapshot).catch(() => undefined))?.mode ?? 0o600) & 0o666 : 0o600;
    await writeFileAtomic(this.path(name), data, mode);
    const st = await fsp.stat(this.path(name)).catch(() => undefined);
    return st ? { modifiedMs: st.mtimeMs } : undefined;
  }

  /** A regular file of at most `maxBytes` (a manifest: SMALL_FILE_CAP), opened without blocking, as in the backup folder: a 1 GB file of a manifest's name was read whole. */
  async readBytes(name: string, _signal?: AbortSignal, maxBytes = Number.MAX_SAFE_INTEGER): Promise<Buffer> {
    await this.ensure();
    return readSmallRegularBytes(this.path(name), maxBytes).catch((e: unknown) => Promise.reject(isBackupError(e) ? e : ioError('reading', this.path(name), e)));
  }

  async downloadTo(name: string, destPath: string, opts: DownloadOptions = {}): Promise<{ bytes: number; sha256: string }> {
    await this.ensure();
    const { fh: src } = await openRegular(this.path(name)).catch((e: unknown) => Promise.reject(ioError('opening', this.path(name), e)));
    const max = opts.maxBytes ?? Infinity;
    const total = (await src.stat().catch(() => undefined))?.size ?? 0;
    if (total > max) {
      await src.close().catch(() => undefined);
      throw largerThanManifest(this.path(name), total, false, max);
    }
    const out = await fsp.open(destPath, 'r+');
    try {
      const hash = createHash('sha256');
      const buf = Buffer.allocUnsafe(CHUNK);
      let pos = 0;
      for (;;) {
        if (opts.signal?.aborted) throw new BackupError('CANCELLED', 'Download cancelled.');
        const { bytesRead } = await src.read(buf, 0, buf.length, pos);
        if (bytesRead === 0) break;
        if (pos + bytesRead > max) throw largerThanManifest(this.path(name), pos + bytesRead, true, max); // it grew after the stat
        hash.update(buf.subarray(0, bytesRead));
        await writeAll(out, buf.subarray(0, bytesRead), pos);
        pos += bytesRead;
        opts.onBytes?.(pos, total);
      }
      await out.sync();
      return { bytes: pos, sha256: hash.digest('hex') };
    } finally {
      await src.close().catch(() => undefined);
      await out.close().catch(() => undefined);
    }
  }

  async remove(names: string[]): Promise<{ deleted: string[]; refused: { name: string; message: string }[] }> {
    await this.ensure();
    const deleted: string[] = [];
    const refused: { name: string; message: string }[] = [];
    for (const n of names) {
      try {
        await fsp.unlink(this.path(n));
        deleted.push(n);
      } catch (e) {
        if (errnoCode(e) === 'ENOENT') deleted.push(n);
        else refused.push({ name: n, message: e instanceof Error ? e.message : String(e) });
      }
    }
    if (deleted.length) await fsyncDir(this.dir);
    return { deleted, refused };
  }
}
