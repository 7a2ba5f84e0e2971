/** Small file-system facts used by several rooms of the engine. */
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
