/**
 * Where a backup's image goes: a temporary file in the backup folder, hashed while it is
 * written. Two shapes:
 *  - streaming: a small pool of chunk buffers, so memory stays flat whatever the size;
 *  - in memory: the whole image in one buffer, written out as it arrives and then handed
 *    to the sql.js check — the bytes are read from disk once, not twice.
 * At most two writes are in flight, overlapping with the next read and the hashing.
 */
import { createHash, type Hash } from 'node:crypto';
import { constants as fsc, promises as fsp } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { EarlyWriteback, writeAll } from './atomicFs';
import { BackupError, ioError } from '../common/errors';
import { formatBytes } from '../common/format';
import { freeBytes } from '../common/fsFacts';
import { dirname } from 'node:path';
import { hashFile } from '../common/hashFile';
import { readConsistentImage, type ImageInfo, type ImageSink } from '../sqlite/image';
import { tmpdir } from 'node:os';
import { cleanStaleTemps, tempPath } from './atomicFs';

const MAX_INFLIGHT = 2;

export class TempFileSink implements ImageSink {
  readonly path: string;
  /** Images up to this many bytes are held in memory while read (0: never). */
  private readonly holdUpTo: number;
  private readonly chunkBytes: number;
  private readonly onBytes?: (done: number, total: number) => void;
  private readonly mode: number;
  private fh: FileHandle | undefined;
  private hash: Hash = createHash('sha256');
  private inflight = new Set<Promise<void>>();
  private failure: unknown;
  private free: ArrayBuffer[] = [];
  /** Pool buffers we handed out; chunks from anywhere else (a whole image) are never recycled. */
  private readonly pooled = new WeakSet<ArrayBuffer>();
  private done = 0;
  /** A catch-up replaced pages after they were hashed: the hash is taken again from the file. */
  private patched = false;
  private finishing: Promise<string> | undefined;
  private writeback: EarlyWriteback | undefined;
  info: ImageInfo | undefined;
  image: Uint8Array | undefined;

  private readonly earlyWriteback: boolean;

  /**
   * `mode`: the temp file is created with it (never wider than the source database's; atomicFs.fileModeLike).
   * `earlyWriteback: false` for a throwaway file that is never fsynced (consistentTempCopy).
   */
  constructor(path: string, opts: { holdUpTo: number; chunkBytes: number; onBytes?: (done: number, total: number) => void; mode?: number; earlyWriteback?: boolean }) {
    this.path = path;
    this.earlyWriteback = opts.earlyWriteback ?? true;
    this.mode = opts.mode ?? 0o600;
    this.holdUpTo = opts.holdUpTo;
    this.chunkBytes = opts.chunkBytes;
    this.onBytes = opts.onBytes;
  }

  async begin(info: ImageInfo): Promise<void> {
    this.info = info;
    this.done = 0;
    this.patched = false;
    this.hash = createHash('sha256');
    try {
      if (!this.fh) {
        this.fh = await fsp.open(this.path, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL, this.mode);
        if (this.earlyWriteback) this.writeback = new EarlyWriteback(this.fh);
      } else {
        // A read that raced a writer is read again from the start: the bytes of the last one
        // are dropped, not flushed (a busy database's retries wrote up to 25 images in a row).
        await this.fh.truncate(0);
        this.writeback?.truncated();
      }
    } catch (e) {
      throw ioError('creating', this.path, e);
    }
    // The image's size is known only now: the main file's size (checked before) says nothing
    // of a database that grew in its -wal (393 KB with a 60 MB WAL is a 60 MB image), and
    // writing until the disk was full also left the ai-memory server beside it no room.
    const free = await freeBytes(dirname(this.path));
    if (free !== undefined && free < info.bytes) {
      throw new BackupError('NO_SPACE', `No space left for ${this.path}: ${formatBytes(free)} free in its folder, and the database with what its -wal holds is ${formatBytes(info.bytes)} (${info.bytes} bytes). Nothing was written.`, {
        hint: 'Free some disk space (or choose another folder) and try again.',
      });
    }
    // Decided by the image's own size, known only now (the WAL's last commit, not the main
    // file's size: a 12 KB file with a 600 MB WAL is a 600 MB image, and held it took 1.2 GB).
    if (info.bytes > this.holdUpTo) this.image = undefined;
    else if (!this.image || this.image.length !== info.bytes) {
      this.image = undefined; // let the old one go before allocating the new one
      this.image = new Uint8Array(info.bytes);
    }
  }

  get holdsImage(): boolean {
    return this.image !== undefined;
  }

  buffer(position: number, length: number): Uint8Array {
    if (this.image) return this.image.subarray(position, position + length);
    let ab = this.free.pop();
    if (!ab) {
      ab = new ArrayBuffer(this.chunkBytes);
      this.pooled.add(ab);
    }
    return new Uint8Array(ab, 0, length);
  }

  async chunk(data: Uint8Array, position: number): Promise<void> {
    if (this.failure) throw this.failure;
    this.hash.update(data);
    const fh = this.fh as FileHandle;
    const p: Promise<void> = writeAll(fh, data, position).then(
      () => {
        this.inflight.delete(p);
        if (this.pooled.has(data.buffer as ArrayBuffer)) this.free.push(data.buffer as ArrayBuffer);
        this.done += data.length;
        this.writeback?.wrote(data.length);
        this.onBytes?.(this.done, this.info?.bytes ?? 0);
      },
      (e: unknown) => {
        this.inflight.delete(p);
        this.failure ??= ioError('writing', this.path, e);
      },
    );
    this.inflight.add(p);
    if (this.inflight.size >= MAX_INFLIGHT) await Promise.race(this.inflight);
    if (this.failure) throw this.failure;
  }

  async resize(info: ImageInfo): Promise<void> {
    await this.drain();
    this.info = info;
    this.patched = true;
    try {
      await (this.fh as FileHandle).truncate(info.bytes);
    } catch (e) {
      throw ioError('writing', this.path, e);
    }
  }

  async patch(data: Uint8Array, position: number): Promise<void> {
    await this.drain();
    this.patched = true;
    try {
      await writeAll(this.fh as FileHandle, data, position);
    } catch (e) {
      throw ioError('writing', this.path, e);
    }
  }

  async reset(): Promise<void> {
    await Promise.allSettled([...this.inflight]);
    this.inflight.clear();
    this.failure = undefined;
  }

  /** Waits for the writes in flight; throws the first one that failed. */
  async drain(): Promise<void> {
    await Promise.allSettled([...this.inflight]);
    if (this.failure) throw this.failure;
  }

  /**
   * Waits for the writes, makes the file durable, and returns its SHA-256 (hex). After
   * drain(), the fsync is issued before this returns, so the caller can do other work (the
   * integrity check) while the disk flushes.
   */
  finish(): Promise<string> {
    this.finishing ??= this.sync();
    return this.finishing;
  }

  private async sync(): Promise<string> {
    if (this.inflight.size) await Promise.allSettled([...this.inflight]);
    if (this.failure) throw this.failure;
    const fh = this.fh as FileHandle;
    try {
      await this.writeback?.settle();
      await fh.sync();
      await fh.close();
    } catch (e) {
      await fh.close().catch(() => undefined);
      throw ioError('saving', this.path, e);
    } finally {
      this.fh = undefined;
    }
    // A catch-up replaced pages after they were hashed: the hash is of the file as written.
    return this.patched ? (await hashFile(this.path)).sha256 : this.hash.digest('hex');
  }

  /** Drops the temporary file (after a failure or when the snapshot is not needed). */
  async discard(): Promise<void> {
    await Promise.allSettled([...this.inflight]);
    await this.finishing?.catch(() => undefined); // never close under a pending fsync
    await this.writeback?.settle().catch(() => undefined);
    await this.fh?.close().catch(() => undefined);
    this.fh = undefined;
    this.image = undefined;
    await fsp.rm(this.path, { force: true }).catch(() => undefined);
  }
}

/**
 * A consistent image of a live database (main file + committed WAL: image.ts; no lock
 * taken, nothing written beside it) in a private temp file (0600) in the system's temp
 * folder, all its writes done, for sql.js to read lazily. Not fsynced: the caller reads it
 * at once and removes it with `discard()`. Fails with nothing left behind.
 */
export async function consistentTempCopy(dbPath: string, purpose: string, opts: { signal?: AbortSignal; maxAttempts?: number } = {}): Promise<TempFileSink> {
  // Copies left by processes that died (killed mid-check) are whole copies of a database: gone at the next one.
  await cleanStaleTemps(tmpdir(), { deadOnly: true });
  const sink = new TempFileSink(tempPath(tmpdir(), purpose), { holdUpTo: 0, chunkBytes: 1 << 20, mode: 0o600, earlyWriteback: false });
  try {
    await readConsistentImage(dbPath, sink, opts);
    await sink.drain();
    return sink;
  } catch (e) {
    await sink.discard().catch(() => undefined);
    throw e;
  }
}
