/** Small file-system facts used by several rooms of the engine. */
import { promises as fsp } from 'node:fs';
import { isAbsolute, relative } from 'node:path';
import { errnoCode } from './errors';

/** True when `target` lies strictly inside `dir` (both already resolved; `dir` itself is not inside). */
export function isInside(dir: string, target: string): boolean {
  const rel = relative(dir, target);
  return rel !== '' && !rel.startsWith('..') && !isAbsolute(rel);
}

/**
 * The errors link(2) gives where the file system has no hard links (FAT/exFAT, some network
 * shares and FUSE mounts) or refuses one: callers fall back to a durable copy or rename.
 */
const NO_HARD_LINK_ERRORS = new Set(['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS', 'EXDEV', 'EMLINK']);

export function isNoHardLinkError(e: unknown): boolean {
  const code = errnoCode(e);
  return code !== undefined && NO_HARD_LINK_ERRORS.has(code);
}

/**
 * Bytes free for us in the file system holding `dir`; undefined when it does not say. A
 * file system that reports no size at all (0 blocks: fusefat, some FUSE and network mounts)
 * says nothing about its free space: taken as "0 bytes free", every backup to a FAT drive
 * mounted that way was refused as a full disk.
 */
export async function freeBytes(dir: string): Promise<number | undefined> {
  try {
    const s = await fsp.statfs(dir);
    return s.blocks > 0 ? s.bavail * s.bsize : undefined;
  } catch {
    return undefined;
  }
}

/** Whether anything (a file, a folder, even a dangling symlink) has this name. */
export async function exists(p: string): Promise<boolean> {
  try {
    await fsp.lstat(p);
    return true;
  } catch {
    return false;
  }
}
