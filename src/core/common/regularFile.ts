/**
 * Opening files that come from a folder we do not control (the backup folder, the
 * database's folder): a name there can be a FIFO (open blocks until a writer appears), a
 * link to /dev/zero (endless), a socket, a device, or a file of gigabytes where a few
 * hundred bytes are expected. One rule everywhere such a file is opened:
 *   open with O_NONBLOCK (a FIFO or device never blocks the open), fstat the descriptor we
 *   got (not the name, which can change in between), refuse anything but a regular file,
 *   and read at most a cap of what is meant to be small (manifests, pins, locks, state).
 * O_NONBLOCK has no effect on reads of a regular file.
 */
import { closeSync, constants as fsc, fstatSync, openSync, promises as fsp, type Stats } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { BackupError, errnoCode } from './errors';

/** The most we read of a manifest, a pin, a lock or the state file (they are a few hundred bytes). */
export const SMALL_FILE_CAP = 1 << 20;

const NONBLOCK = fsc.O_NONBLOCK ?? 0;
const NOFOLLOW = fsc.O_NOFOLLOW ?? 0;

export class NotRegularFileError extends BackupError {
  constructor(path: string, kind: string) {
    super('NOT_A_DATABASE', `${path} is ${kind}, not a regular file; refusing to read it.`, {
      hint: 'Move that file out of the way (it is not something this tool or ai-memory writes).',
    });
  }
}

/** What a file that is not a regular one is, in words ("a FIFO (named pipe)", "a socket"). */
export function kindOf(st: { isFIFO(): boolean; isCharacterDevice(): boolean; isBlockDevice(): boolean; isSocket(): boolean; isDirectory(): boolean }): string {
  if (st.isFIFO()) return 'a FIFO (named pipe)';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isSocket()) return 'a socket';
  if (st.isDirectory()) return 'a directory';
  return 'not a regular file';
}

export interface OpenRegularOptions {
  /**
   * A symbolic link is refused too (NotRegularFileError), by the open itself (O_NOFOLLOW):
   * for files only we write, in folders of ours (the archive's indexes, a snapshot being
   * archived), never for a path the user gives (their database may be a link by design).
   */
  noFollow?: boolean;
}

/** O_NOFOLLOW's error for a link: ELOOP (Linux, macOS), EMLINK (FreeBSD). */
function linkRefused(path: string, e: unknown, o: OpenRegularOptions): unknown {
  const code = errnoCode(e);
  return o.noFollow && NOFOLLOW && (code === 'ELOOP' || code === 'EMLINK') ? new NotRegularFileError(path, 'a symbolic link') : e;
}

/**
 * Opens `path` for reading without ever blocking on the open, and only if what was opened
 * is a regular file (NotRegularFileError otherwise). Errors of open itself (ENOENT, EACCES)
 * are thrown as they are. Returns the handle and its size.
 */
export async function openRegular(path: string, o: OpenRegularOptions = {}): Promise<{ fh: FileHandle; size: number }> {
  const fh = await fsp.open(path, fsc.O_RDONLY | NONBLOCK | (o.noFollow ? NOFOLLOW : 0)).catch((e: unknown) => {
    throw linkRefused(path, e, o);
  });
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw new NotRegularFileError(path, kindOf(st));
    return { fh, size: st.size };
  } catch (e) {
    await fh.close().catch(() => undefined);
    throw e;
  }
}

/** openRegular, synchronously (for the WASM checker's page reads, which are synchronous): a file descriptor. */
export function openRegularSync(path: string, o: OpenRegularOptions = {}): { fd: number; stat: Stats } {
  let fd: number;
  try {
    fd = openSync(path, fsc.O_RDONLY | NONBLOCK | (o.noFollow ? NOFOLLOW : 0));
  } catch (e) {
    throw linkRefused(path, e, o);
  }
  try {
    const stat = fstatSync(fd);
    if (!stat.isFile()) throw new NotRegularFileError(path, kindOf(stat));
    return { fd, stat };
  } catch (e) {
    closeSync(fd);
    throw e;
  }
}

/** Opens `path` like openRegular; undefined when it does not exist. */
export async function openRegularIfExists(path: string): Promise<FileHandle | undefined> {
  try {
    return (await openRegular(path)).fh;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

export class TooLargeFileError extends BackupError {
  constructor(path: string, size: number, cap: number) {
    super('MANIFEST_INVALID', `${path} is ${size} bytes, more than the ${cap} bytes such a file can be; refusing to read it.`, {
      hint: 'It is not a file this tool or ai-memory writes; move it out of the way.',
    });
  }
}

/** Reads a small regular file as UTF-8, at most `cap` bytes (TooLargeFileError beyond). */
export async function readSmallRegular(path: string, cap = SMALL_FILE_CAP): Promise<string> {
  return (await readSmallRegularBytes(path, cap)).toString('utf8');
}

/** Reads a small regular file's bytes as they are (a signed manifest's bytes are what its signature covers), at most `cap`. */
export async function readSmallRegularBytes(path: string, cap = SMALL_FILE_CAP): Promise<Buffer> {
  const { fh, size } = await openRegular(path);
  try {
    if (size > cap) throw new TooLargeFileError(path, size, cap);
    // One byte more than the cap: a file that grew since the fstat is caught too.
    const buf = Buffer.allocUnsafe(Math.min(cap + 1, Math.max(size + 1, 4096)));
    let n = 0;
    for (;;) {
      const { bytesRead } = await fh.read(buf, n, buf.length - n, n);
      if (bytesRead === 0) break;
      n += bytesRead;
      if (n > cap) throw new TooLargeFileError(path, n, cap);
      if (n === buf.length) break;
    }
    return buf.subarray(0, n);
  } finally {
    await fh.close().catch(() => undefined);
  }
}
