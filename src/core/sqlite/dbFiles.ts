/**
 * The files of one SQLite database, decided once and the same way for every operation
 * (backup, restore, the in-use check, the ownership of snapshots), the way SQLite's unix
 * VFS decides them:
 *
 *  - the path: unixFullPathname follows symbolic links — of the file itself, chains of
 *    them (up to SQLITE_MAX_SYMLINK = 100), and of every folder on the way — and SQLite
 *    then keeps `-wal`, `-shm` and `-journal` beside the RESOLVED file. A backup that read
 *    `link.db-wal` instead of `real/mem.db-wal` missed every commit still in the WAL.
 *    A dangling link resolves to its target (SQLite would create the file there).
 *  - the sidecars: one list, SIDECARS. Whatever SQLite may open beside a database is kept
 *    aside together with it by restore, looked at by the in-use check, and decided on by
 *    backup.
 *  - a hot journal (pager.c hasHotJournal): the `-journal` exists, the database file is not
 *    empty, and the journal's header is live (its magic; SQLite's test is "first byte not
 *    zero", and a journal without the magic is discarded by playback, so the magic is what
 *    decides whether anything is rolled back). SQLite rolls a hot journal back BEFORE it
 *    looks for a WAL (sqlite3PagerSharedLock: hasHotJournal → pager_playback →
 *    pagerOpenWalIfPresent), whatever other sidecars exist.
 */
import { promises as fsp } from 'node:fs';
import { basename, dirname, isAbsolute, join, resolve } from 'node:path';
import { BackupError, errnoCode, ioError } from '../common/errors';
import { openRegular, openRegularIfExists } from '../common/regularFile';
import { JOURNAL_MAGIC } from './sqliteFormat';
import { scanWal } from './wal';

/** Every file SQLite may keep beside a database, as suffixes of its resolved path. */
export const SIDECARS = ['-wal', '-shm', '-journal'] as const;
export type Sidecar = (typeof SIDECARS)[number];

/** SQLITE_MAX_SYMLINK in os_unix.c. */
const MAX_SYMLINKS = 100;

export interface DbLocation {
  /** The path as given (made absolute). */
  given: string;
  /** The file SQLite would open: symlinks of the file and its folders followed. */
  path: string;
  /** The given path was (or went through) a symbolic link. */
  viaLink: boolean;
}

/**
 * Resolves a database path the way SQLite's unix VFS does (see the file comment). A path
 * that does not exist resolves to where SQLite would create it.
 */
export async function resolveDbPath(given: string): Promise<DbLocation> {
  if (/[\\/]$/.test(given) && resolve(given) !== resolve('/')) {
    throw new BackupError('DB_IS_DIRECTORY', `${given} ends with a path separator: it names a folder, not a database file.`, { hint: 'Point the database path at the ai-memory .db file itself.' });
  }
  const abs = unnormalized(given);
  const path = await fullPath(abs, 0);
  const plain = resolve(given);
  return { given: plain, path, viaLink: path !== plain };
}

/** resolveDbPath's path, or `fallback` (the given path made absolute) where it cannot be resolved (a loop of links, an unreadable link). */
export async function resolvedDbPathOr(given: string, fallback = resolve(given)): Promise<string> {
  return (await resolveDbPath(given).catch(() => undefined))?.path ?? fallback;
}

/**
 * The path made absolute, its `..` left in place: SQLite (appendAllPathElements) and the
 * kernel take `..` after following the links before it, so `link/../db` is beside the
 * link's target, not beside the link; path.resolve would drop `link/..` as text. Windows
 * resolves `..` as text itself.
 */
function unnormalized(p: string): string {
  if (process.platform === 'win32') return resolve(p);
  return isAbsolute(p) ? p : `${process.cwd()}/${p}`;
}

async function fullPath(p: string, depth: number): Promise<string> {
  try {
    return await storedCase(await fsp.realpath(p));
  } catch (e) {
    const code = errnoCode(e);
    if (code === 'ELOOP') {
      throw new BackupError('DB_NOT_FOUND', `${p} is a loop of symbolic links.`, { hint: 'Point the database path at the real file.' });
    }
    if (code !== 'ENOENT' && code !== 'ENOTDIR') throw ioError('resolving', p, e);
  }
  if (depth > MAX_SYMLINKS) {
    throw new BackupError('DB_NOT_FOUND', `${p}: more than ${MAX_SYMLINKS} symbolic links to follow.`, { hint: 'Point the database path at the real file.' });
  }
  const st = await fsp.lstat(p).catch(() => undefined);
  if (st?.isSymbolicLink()) {
    const target = await fsp.readlink(p).catch((e: unknown) => {
      throw ioError('reading the link', p, e);
    });
    // A relative target is taken from the link's folder as SQLite does: its links and `..` too.
    return fullPath(isAbsolute(target) ? target : `${dirname(p)}/${target}`, depth + 1);
  }
  const parent = dirname(p);
  if (parent === p) return p;
  const base = await fullPath(parent, depth + 1);
  const name = basename(p);
  if (name === '..') return dirname(base);
  if (name === '.') return base;
  return join(base, name);
}

/** `name` with the case of each letter swapped; undefined when it has no letter that has a case. */
function swapCase(name: string): string | undefined {
  const swapped = [...name].map((c) => (c === c.toLowerCase() ? c.toUpperCase() : c.toLowerCase())).join('');
  return swapped === name ? undefined : swapped;
}

/**
 * An existing path with each name as its folder stores it. A file system that ignores case
 * (FAT/exFAT drives, ext4 casefold folders, SMB shares; APFS and NTFS by default) opens
 * `Work/MEMORY.DB` as `work/Memory.db`, and SQLite its `-wal` too: one database, whose
 * snapshots were split by the spelling of its path (restore took an older one for the
 * newest, retention kept every spelling's). A folder is listed only where it answers to
 * another case of the name too (one lstat per name otherwise); a name it lists as given is
 * kept (a case-sensitive folder may hold both `Memory.db` and `memory.db`), else the one
 * entry that differs from it in case only (inode numbers cannot tell: FUSE drivers give
 * each spelling its own). A folder that cannot be listed keeps the name as given.
 */
async function storedCase(p: string): Promise<string> {
  if (process.platform === 'win32' || !isAbsolute(p)) return p;
  let out = '';
  for (const name of p.split('/').slice(1)) {
    const here = `${out}/${name}`;
    const other = swapCase(name);
    if (!other || !(await fsp.lstat(`${out}/${other}`).then(() => true, () => false))) {
      out = here; // nothing to fold, or a folder that tells cases apart: the name is as stored
      continue;
    }
    const entries = await fsp.readdir(out || '/').catch(() => [name]);
    const folded = entries.filter((e) => e.toLowerCase() === name.toLowerCase());
    out = `${out}/${entries.includes(name) || folded.length !== 1 ? name : folded[0]}`;
  }
  return out || '/';
}

/** The paths of a database's sidecars, beside its resolved path. */
export function sidecarPaths(dbPath: string): { suffix: Sidecar; path: string }[] {
  return SIDECARS.map((suffix) => ({ suffix, path: dbPath + suffix }));
}

/**
 * Refuses to make a folder (or any missing level of it) at the name of a database's
 * sidecar: `--to ai-memory.db-wal` made a folder where SQLite keeps that database's WAL, and
 * from then on SQLite could not open the database at all ("unable to open database file"),
 * the server included. `what` names the folder in the caller's words ("Backup folder").
 * Levels that exist already are not ours to judge.
 */
export async function refuseSidecarFolder(dir: string, what: string, hint: string): Promise<void> {
  for (let d = resolve(dir); ; d = dirname(d)) {
    const st = await fsp.lstat(d).catch((e: unknown) => (errnoCode(e) === 'ENOENT' ? undefined : null));
    if (st !== undefined) return; // there (or not ours to tell): only levels that would be made are judged
    const suffix = SIDECARS.find((x) => d.endsWith(x));
    const db = suffix ? d.slice(0, -suffix.length) : undefined;
    if (suffix && db && (await fsp.stat(db).catch(() => undefined))?.isFile()) {
      const where = d === resolve(dir) ? `${what} ${dir} is` : `${what} ${dir} would make the folder ${d},`;
      throw new BackupError('TARGET_NOT_DIRECTORY', `${where} the name of the ${suffix} file SQLite keeps beside the database ${db}: a folder there would stop SQLite (and the ai-memory server) from opening that database. Nothing was changed.`, { hint });
    }
    if (dirname(d) === d) return;
  }
}

/**
 * Refuses a file we would write (an export, a materialized snapshot) at the name of a
 * database's sidecar: SQLite takes `x.db-journal` for the journal of `x.db` (a "hot" one is
 * played back and deleted) and `x.db-wal` for its WAL (an invalid one is overwritten by the
 * next write), so the file would be lost, or worse, read into the database.
 */
export async function refuseSidecarFile(path: string, what: string, hint: string): Promise<void> {
  const p = resolve(path);
  const suffix = SIDECARS.find((x) => p.endsWith(x));
  const db = suffix ? p.slice(0, -suffix.length) : undefined;
  if (suffix && db && (await fsp.stat(db).catch(() => undefined))?.isFile()) {
    throw new BackupError('USAGE', `${what} ${path} is the name of the ${suffix} file SQLite keeps beside the database ${db}: SQLite would take the file for that database's ${suffix} and discard it, or read it into the database. Nothing was written.`, { hint });
  }
}

/** Two resolved database paths name the same database (case-insensitively where the file system usually is). */
export function sameDbPath(a: string, b: string): boolean {
  // Windows' and (by default) macOS's file systems ignore case (as discovery's pathKey).
  const fold = process.platform === 'win32' || process.platform === 'darwin';
  return fold ? a.toLowerCase() === b.toLowerCase() : a === b;
}

/**
 * A rollback journal beside `dbPath` whose header is live: SQLite rolls it back into the
 * database the next time it opens it (hot: a writer crashed mid-transaction), or a writer
 * is in a transaction right now. See the file comment.
 */
export async function journalIsLive(dbPath: string): Promise<boolean> {
  const path = `${dbPath}-journal`;
  // One that cannot be read is not taken for "not live": that would copy a database in the
  // middle of a transaction. It is an error, in words (regularFile.ts refuses a FIFO too).
  const fh = await openRegularIfExists(path).catch((e: unknown) => {
    throw e instanceof BackupError ? e : ioError('reading', path, e);
  });
  if (!fh) return false;
  try {
    const b = Buffer.alloc(JOURNAL_MAGIC.length);
    const { bytesRead } = await fh.read(b, 0, b.length, 0);
    return bytesRead === b.length && b.equals(JOURNAL_MAGIC);
  } finally {
    await fh.close();
  }
}

/**
 * Whether `<dbPath>-wal` holds committed transactions: then the file alone is an older
 * state than SQLite would show, and whatever reads it must take the WAL too (image.ts).
 */
export async function walHasCommits(dbPath: string): Promise<boolean> {
  let fh;
  try {
    fh = (await openRegular(`${dbPath}-wal`)).fh;
  } catch {
    return false;
  }
  try {
    return (await scanWal(fh)).commitFrame > 0;
  } finally {
    await fh.close();
  }
}
