/**
 * A cross-process lock on a backup folder: one backup (or retention pass) at a time per
 * folder, whatever started it — the CLI, a systemd timer, or any number of VS Code windows.
 *
 * The lock is a file created with O_EXCL holding who owns it. It is recovered when its
 * owner is gone: a dead pid on this machine, or (for another machine's lock on a shared
 * folder) a heartbeat — the owner touches the file every few seconds — that stopped.
 */
import { isNoHardLinkError } from '../common/fsFacts';
import { constants as fsc, promises as fsp } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { HOST_TAG, pidAlive, tempPath } from './atomicFs';
import { BackupError, errnoCode, ioError } from '../common/errors';
import { crashPoint } from '../common/testHooks';

export const LOCK_NAME = '.ai-memory-backup.lock';
const HEARTBEAT_MS = 5_000;
const FOREIGN_STALE_MS = 60_000;
/** `<lock path>\n<body>` of the locks this process holds right now (a lock naming our pid but not listed here is a dead predecessor's). */
const heldHere = new Set<string>();

interface LockOwner {
  pid: number;
  host: string;
  hostname: string;
  purpose: string;
  started: string;
}

export interface FolderLock {
  path: string;
  release(): Promise<void>;
}

export interface LockOptions {
  purpose: string;
  /** How long to wait for another holder (default 30 s; 0 = fail at once). */
  waitMs?: number;
  signal?: AbortSignal;
}

function parseOwner(text: string): LockOwner | undefined {
  try {
    const o = JSON.parse(text) as Partial<LockOwner>;
    if (typeof o.pid === 'number' && typeof o.host === 'string') return o as LockOwner;
  } catch {
    // a lock caught mid-write, or garbage: judged by age below
  }
  return undefined;
}

async function staleReason(path: string, text: string): Promise<string | undefined> {
  const owner = parseOwner(text);
  let age = 0;
  try {
    age = Date.now() - (await fsp.stat(path)).mtimeMs;
  } catch {
    return 'gone';
  }
  if (!owner) return age > 10_000 ? 'unreadable and old' : undefined;
  if (owner.host === HOST_TAG) {
    // Our own pid, but not a lock we hold: a dead process whose pid the system gave to us.
    if (owner.pid === process.pid && !heldHere.has(`${path}\n${text}`)) return `its owner (pid ${owner.pid}) is gone; this process now has that pid`;
    return pidAlive(owner.pid) ? undefined : `its owner (pid ${owner.pid}) is no longer running`;
  }
  return age > FOREIGN_STALE_MS ? `its owner on ${owner.hostname} stopped updating it` : undefined;
}

export function describeOwner(text: string): string {
  const o = parseOwner(text);
  if (!o) return 'another process';
  const where = o.host === HOST_TAG ? 'on this machine' : `on ${o.hostname}`;
  return `${o.purpose} by pid ${o.pid} ${where}, started ${o.started}`;
}

/**
 * Creates the lock file with its content in one step: the owner goes to a temp file first,
 * which is then linked to the lock name (link(2) fails with EEXIST while the lock is held).
 * So a lock is never seen empty: an empty lock, left by a crash between create and write,
 * can only be judged by its age and blocked every backup of the folder for 10 s.
 * Without hard links (FAT, some network shares): O_EXCL create, then write.
 * Returns false when the lock exists.
 */
async function createLockFile(dir: string, path: string, body: string): Promise<boolean> {
  const tmp = tempPath(dir, 'lock');
  try {
    await fsp.writeFile(tmp, body, { flag: 'wx', mode: 0o644 });
    try {
      await fsp.link(tmp, path);
      crashPoint('lock:after-create');
      return true;
    } catch (e) {
      const code = errnoCode(e);
      if (code === 'EEXIST') return false;
      if (!isNoHardLinkError(e)) throw e;
    }
  } finally {
    await fsp.rm(tmp, { force: true }).catch(() => undefined);
  }
  let fh;
  try {
    fh = await fsp.open(path, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL, 0o644);
  } catch (e) {
    if (errnoCode(e) === 'EEXIST') return false;
    throw e;
  }
  try {
    await fh.writeFile(body);
  } finally {
    await fh.close();
  }
  return true;
}

export async function acquireFolderLock(dir: string, opts: LockOptions): Promise<FolderLock> {
  const path = join(dir, LOCK_NAME);
  const me: LockOwner = { pid: process.pid, host: HOST_TAG, hostname: hostname(), purpose: opts.purpose, started: new Date().toISOString() };
  const body = JSON.stringify(me);
  const deadline = Date.now() + (opts.waitMs ?? 30_000);
  let lastHolder = '';
  for (;;) {
    if (opts.signal?.aborted) throw new BackupError('CANCELLED', 'Cancelled while waiting for the backup folder.');
    try {
      if (await createLockFile(dir, path, body)) break;
    } catch (e) {
      throw ioError('locking', dir, e);
    }
    let text = '';
    try {
      text = await fsp.readFile(path, 'utf8');
    } catch {
      continue; // released between our open and read: try again at once
    }
    const stale = await staleReason(path, text);
    if (stale) {
      // Remove it only if it is still the lock we judged (another waiter may have replaced it).
      const again = await fsp.readFile(path, 'utf8').catch(() => undefined);
      if (again === text) await fsp.unlink(path).catch(() => undefined);
      continue;
    }
    lastHolder = describeOwner(text);
    if (Date.now() >= deadline) {
      throw new BackupError('LOCKED', `Another backup is running in ${dir} (${lastHolder}).`, {
        hint: 'Wait for it to finish and try again.',
      });
    }
    await new Promise((r) => setTimeout(r, 150));
  }
  heldHere.add(`${path}\n${body}`);
  const beat = setInterval(() => {
    const now = new Date();
    fsp.utimes(path, now, now).catch(() => undefined);
  }, HEARTBEAT_MS);
  beat.unref();
  let released = false;
  return {
    path,
    async release() {
      if (released) return;
      released = true;
      clearInterval(beat);
      // Only remove our own lock (if it was judged stale and replaced, it is not ours).
      const text = await fsp.readFile(path, 'utf8').catch(() => undefined);
      if (text === body) await fsp.unlink(path).catch(() => undefined);
      heldHere.delete(`${path}\n${body}`);
    },
  };
}
