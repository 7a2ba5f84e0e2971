/**
 * A cross-process lock on a backup folder: one backup (or retention pass) at a time per
 * folder, whatever started it — the CLI, a systemd timer, or any number of VS Code windows.
 *
 * The lock is a file created with O_EXCL holding who owns it. It is recovered when its
 * owner is gone: a dead pid on this machine, or (for another machine's lock on a shared
 * folder) a heartbeat — the owner touches the file every few seconds — that stopped.
 *
 * A heartbeat is judged by this process's own steady clock, never by comparing the lock's
 * mtime with our wall clock: the mtime is the holder's clock, and two machines' clocks may
 * differ by minutes or years. Compared with ours, a waiter whose clock was two minutes ahead
 * took a live holder's lock at once (two backups archiving and pruning one folder at the
 * same time), and one whose clock was behind never took a dead holder's. A lock is dead
 * when its mtime has not moved for FOREIGN_STALE_MS while we watched it.
 */
import { isNoHardLinkError } from '../common/fsFacts';
import { constants as fsc, promises as fsp, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { hostname } from 'node:os';
import { performance } from 'node:perf_hooks';
import { dirname, join } from 'node:path';
import { HOST_TAG, pidAlive, tempOwner, tempPath } from './atomicFs';
import { BackupError, errnoCode, ioError } from '../common/errors';
import { readSmallRegular } from '../common/regularFile';
import { crashPoint } from '../common/testHooks';

export const LOCK_NAME = '.ai-memory-backup.lock';
const HEARTBEAT_MS = 5_000;
/** A lock judged by its heartbeat is dead once its mtime has stood still this long on our own clock. */
const FOREIGN_STALE_MS = 60_000;
/** A lock that cannot be read (garbage, not a file) is dead once it has stood still this long. */
const UNREADABLE_STALE_MS = 10_000;
/** `<lock path>\n<body>` of the locks this process holds right now (a lock naming our pid but not listed here is a dead predecessor's). */
const heldHere = new Set<string>();

interface LockOwner {
  pid: number;
  host: string;
  hostname: string;
  purpose: string;
  started: string;
  /** processIdentity of the holder, where the system tells it (Linux): its pid may be reused, this is not. */
  proc?: string;
  /** The holder's pid namespace (Linux): its pid means something only to a process of the same one. */
  pidns?: string;
}

export interface FolderLock {
  path: string;
  release(): Promise<void>;
}

export interface LockOptions {
  purpose: string;
  /** The lock file's name in the folder (default LOCK_NAME: the backup folder's lock). */
  name?: string;
  /** The refusal when the wait is over, given who holds the lock (default: another backup is running in the folder). */
  busy?: (holder: string) => { message: string; hint: string };
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

/**
 * Process `pid` as no other process on this machine is: the boot's id and the process's start
 * time in clock ticks since boot (Linux /proc), or undefined (another system, or it is gone).
 * A pid is reused: a restore killed with its window left a lock naming pid N, and once the
 * system gave N to any other process (a shell, a language server), that lock read as held
 * for as long as the other process ran: every restore of the database was refused ("Another
 * restore … is running"), and every backup of a folder waited and was refused.
 */
function processIdentity(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // `pid (comm) state …`: comm may hold spaces and parentheses; starttime is field 22.
    const start = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
    const boot = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
    return start && /^\d+$/.test(start) ? `${boot}:${start}` : undefined;
  } catch {
    return undefined;
  }
}

/**
 * This process's pid namespace (`pid:[4026531836]`, Linux), or undefined. A process in a
 * sandbox or container (Flatpak's VS Code, a dev container) on this machine has pids of its
 * own: pid 2 there is not pid 2 here.
 */
const PID_NS = ((): string | undefined => {
  try {
    return readlinkSync('/proc/self/ns/pid');
  } catch {
    return undefined;
  }
})();

/** The lock's pid is one of another pid namespace: it says nothing here by itself. */
function otherNamespace(owner: { pidns?: unknown }): boolean {
  return typeof owner.pidns === 'string' && PID_NS !== undefined && owner.pidns !== PID_NS;
}

/**
 * Whether the holder of a lock taken in another pid namespace runs, seen from here: a
 * process of that namespace whose pid there (the last of its NSpid) is the lock's, and whose
 * identity is the recorded one. False when none is seen (gone, or a namespace whose processes
 * this one cannot see: its heartbeat is then all there is to go by).
 */
function seenInNamespace(owner: { pid: number; pidns?: unknown; proc?: unknown }): boolean {
  let pids: string[];
  try {
    pids = readdirSync('/proc').filter((n) => /^\d+$/.test(n));
  } catch {
    return false;
  }
  for (const p of pids) {
    try {
      if (readlinkSync(`/proc/${p}/ns/pid`) !== owner.pidns) continue;
      const nspid = /^NSpid:\s*(.*)$/m.exec(readFileSync(`/proc/${p}/status`, 'utf8'))?.[1].trim().split(/\s+/).pop();
      if (Number(nspid) !== owner.pid) continue;
      if (typeof owner.proc === 'string' && processIdentity(Number(p)) !== owner.proc) continue;
      return true;
    } catch {
      // gone meanwhile, or not ours to look at
    }
  }
  return false;
}

/** Why the holder of a lock of this machine (and of our pid namespace) is gone, or undefined while it runs (see processIdentity). */
function localHolderGone(owner: { pid: number; proc?: unknown }): string | undefined {
  if (!pidAlive(owner.pid)) return `its owner (pid ${owner.pid}) is no longer running`;
  if (typeof owner.proc === 'string') {
    const now = processIdentity(owner.pid);
    if (now !== undefined && now !== owner.proc) return `its owner (pid ${owner.pid}) is gone; that pid is now another process's`;
  }
  return undefined;
}

/** Temp files that are links of a full disk's empty lock (see createLockFile). */
const EMPTY_LOCK_PURPOSE = 'lock';

/**
 * Who holds an empty lock (a full disk's, see createLockFile): the temp file its holder keeps
 * as a second name of the same inode, whose name says the host and pid. Undefined when there
 * is none (a holder without hard links, or one that died and whose temp file was cleaned).
 */
async function emptyLockOwner(path: string, st: { dev: number; ino: number }): Promise<{ host: string; pid: number } | undefined> {
  let names: string[];
  try {
    names = await fsp.readdir(dirname(path));
  } catch {
    return undefined;
  }
  for (const name of names) {
    const owner = tempOwner(name);
    if (!owner || !name.endsWith(`.${EMPTY_LOCK_PURPOSE}.tmp`)) continue;
    const t = await fsp.lstat(join(dirname(path), name)).catch(() => undefined);
    if (t && t.dev === st.dev && t.ino === st.ino) return owner;
  }
  return undefined;
}

/**
 * Whether the lock at `path` (holding `text`) is dead, and why. `stillFor`: how long, by our
 * steady clock, we have watched its mtime stand still (0 when it just moved or we just saw
 * it). A lock judged by its heartbeat (another machine's, or one that does not say whose it
 * is) that is not dead yet says how long it must stand still to be (`needs`).
 */
async function staleReason(path: string, text: string, stillFor: number): Promise<{ stale?: string; needs?: number }> {
  let st;
  try {
    st = await fsp.stat(path);
  } catch {
    return { stale: 'gone' };
  }
  const heartbeat = (limit: number, why: string) => (stillFor >= limit ? { stale: why } : { needs: limit });
  // A full disk's lock has no text to say whose it is, but its holder keeps a second name that does.
  const empty = text === '';
  const owner: Pick<LockOwner, 'host' | 'pid'> & { hostname?: string; proc?: string; pidns?: string } | undefined = empty ? await emptyLockOwner(path, st) : parseOwner(text);
  if (!owner) {
    // An empty lock without a second name (a holder without hard links, or a dead one's cleaned):
    // only a heartbeat stopped for a minute says it is dead.
    if (empty) return heartbeat(FOREIGN_STALE_MS, 'empty, and not updated for a minute');
    return heartbeat(UNREADABLE_STALE_MS, 'unreadable, and not updated for 10 s');
  }
  if (owner.host === HOST_TAG && otherNamespace(owner)) {
    if (seenInNamespace(owner)) return {};
    return heartbeat(FOREIGN_STALE_MS, `its owner (pid ${owner.pid} in a sandbox or container of this machine) stopped updating it`);
  }
  if (owner.host === HOST_TAG) {
    // Our own pid, but not a lock we hold: a dead process whose pid the system gave to us.
    if (owner.pid === process.pid && !heldHere.has(empty ? emptyKey(path, st) : `${path}\n${text}`)) return { stale: `its owner (pid ${owner.pid}) is gone; this process now has that pid` };
    const gone = localHolderGone(owner);
    return gone ? { stale: gone } : {};
  }
  return heartbeat(FOREIGN_STALE_MS, `its owner on ${owner.hostname ?? `host ${owner.host}`} stopped updating it`);
}

/**
 * The lock's text; undefined when it is gone. Opened the safe way (regularFile.ts): a FIFO
 * or a huge file under the lock's name never blocks us — it reads as an unreadable lock,
 * judged by its age like one caught mid-write.
 */
async function readLock(path: string): Promise<string | undefined> {
  try {
    return await readSmallRegular(path, 64 * 1024);
  } catch (e) {
    if (errnoCode(e) === 'ENOENT') return undefined;
    return '\0(not a readable lock file)';
  }
}

/** heldHere's key for an empty lock: its inode (the text is '' for every one of them). */
function emptyKey(path: string, st: { dev: number; ino: number }): string {
  return `${path}\n\0${st.dev}:${st.ino}`;
}

export function describeOwner(text: string): string {
  const o = parseOwner(text);
  if (!o) return 'another process';
  const where = o.host === HOST_TAG ? 'on this machine' : `on ${o.hostname}`;
  return `${o.purpose} by pid ${o.pid} ${where}, started ${o.started}`;
}

/**
 * Who holds the lock at `path` right now, in words (describeOwner); undefined when there is
 * none or its holder is gone: a pid on this machine that no longer runs, or a lock of another
 * machine (or one that does not say whose it is) not touched for FOREIGN_STALE_MS. Judged
 * once, without waiting and without taking the lock (for a lock in a folder we need not be
 * able to write to).
 */
export async function liveLockHolder(path: string): Promise<string | undefined> {
  const text = await readLock(path);
  if (text === undefined) return undefined;
  const st = await fsp.stat(path).catch(() => undefined);
  if (!st) return undefined;
  const owner = parseOwner(text);
  if (owner && owner.host === HOST_TAG && otherNamespace(owner) && seenInNamespace(owner)) return describeOwner(text);
  if (owner && owner.host === HOST_TAG && !otherNamespace(owner)) {
    const alive = owner.pid === process.pid ? heldHere.has(`${path}\n${text}`) : localHolderGone(owner) === undefined;
    return alive ? describeOwner(text) : undefined;
  }
  return Date.now() - st.mtimeMs < FOREIGN_STALE_MS ? describeOwner(text) : undefined;
}

/** No room for a byte (ENOSPC), or the user's quota is used up (EDQUOT). */
function isNoSpace(e: unknown): boolean {
  const code = errnoCode(e);
  return code === 'ENOSPC' || code === 'EDQUOT';
}

/**
 * Creates the lock file with its content in one step: the owner goes to a temp file first,
 * which is then linked to the lock name (link(2) fails with EEXIST while the lock is held).
 * So a lock is never seen empty: an empty lock, left by a crash between create and write,
 * can only be judged by its age and blocked every backup of the folder for 10 s.
 * Without hard links (FAT, some network shares): O_EXCL create, then write.
 *
 * A full disk has no block for the owner's line, but an empty file needs none: the lock is
 * then taken empty. That is what lets `prune` and Delete free a full backup folder (refused
 * "No space left while locking", the only way out was deleting snapshots by hand). Every
 * empty lock reads the same, so its holder keeps the temp file as a second name of the lock
 * (`keep`): that name says whose it is (host and pid: judged like a lock with text), and
 * while it exists the inode cannot be reused, so the holder knows its own lock by inode.
 * Returns the text the lock holds (the owner, or '' on a full disk), or undefined when it exists.
 */
async function createLockFile(dir: string, path: string, body: string): Promise<{ text: string; keep?: string } | undefined> {
  const tmp = tempPath(dir, EMPTY_LOCK_PURPOSE);
  let keep: string | undefined;
  try {
    let text = body;
    try {
      await fsp.writeFile(tmp, body, { flag: 'wx', mode: 0o644 });
    } catch (e) {
      if (!isNoSpace(e)) throw e;
      await fsp.rm(tmp, { force: true });
      await fsp.writeFile(tmp, '', { flag: 'wx', mode: 0o644 });
      text = '';
    }
    try {
      await fsp.link(tmp, path);
      crashPoint('lock:after-create');
      if (text === '') keep = tmp;
      return { text, keep };
    } catch (e) {
      const code = errnoCode(e);
      if (code === 'EEXIST') return undefined;
      if (!isNoHardLinkError(e)) throw e;
    }
  } finally {
    if (keep === undefined) await fsp.rm(tmp, { force: true }).catch(() => undefined);
  }
  let fh;
  try {
    fh = await fsp.open(path, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL, 0o644);
  } catch (e) {
    if (errnoCode(e) === 'EEXIST') return undefined;
    throw e;
  }
  try {
    await fh.writeFile(body);
    return { text: body };
  } catch (e) {
    if (!isNoSpace(e)) throw e;
    await fh.truncate(0).catch(() => undefined);
    return { text: '' };
  } finally {
    await fh.close();
  }
}

export async function acquireFolderLock(dir: string, opts: LockOptions): Promise<FolderLock> {
  const path = join(dir, opts.name ?? LOCK_NAME);
  const me: LockOwner = { pid: process.pid, host: HOST_TAG, hostname: hostname(), purpose: opts.purpose, started: new Date().toISOString(), proc: processIdentity(process.pid), pidns: PID_NS };
  const body = JSON.stringify(me);
  // Our steady clock, for the wait and the heartbeat: a wall clock set back or forward
  // meanwhile (NTP, the user) neither stretches the wait nor cuts it short.
  const deadline = performance.now() + (opts.waitMs ?? 30_000);
  let lastHolder = '';
  let held: { text: string; keep?: string } | undefined; // what our lock file holds: the owner, or '' (a full disk)
  // The lock we watch: its identity, its mtime, since when (steady clock) the mtime stood still, and whether we saw it move.
  let watched: { id: string; mtimeMs: number; since: number; moved: boolean } | undefined;
  for (;;) {
    if (opts.signal?.aborted) throw new BackupError('CANCELLED', 'Cancelled while waiting for the backup folder.');
    try {
      held = await createLockFile(dir, path, body);
      if (held !== undefined) break;
    } catch (e) {
      throw ioError('locking', dir, e);
    }
    const text = await readLock(path);
    if (text === undefined) continue; // released between our open and read: try again at once
    const judged = await fsp.stat(path).catch(() => undefined);
    const id = `${text}\n${judged?.dev}:${judged?.ino}`;
    const mtimeMs = judged?.mtimeMs ?? 0;
    const t = performance.now();
    if (watched?.id !== id) watched = { id, mtimeMs, since: t, moved: false };
    else if (watched.mtimeMs !== mtimeMs) watched = { id, mtimeMs, since: t, moved: true };
    const verdict = await staleReason(path, text, t - watched.since);
    if (verdict.stale) {
      // Remove it only if it is still the lock we judged (another waiter may have replaced it):
      // the same text, and for an empty lock (all alike) the same inode, judged stale again.
      const again = await readLock(path);
      const now = text === '' ? await fsp.stat(path).catch(() => undefined) : undefined;
      const same = again === text && (text !== '' || (!!judged && !!now && now.ino === judged.ino && now.dev === judged.dev && now.mtimeMs === mtimeMs && (await staleReason(path, '', performance.now() - watched.since)).stale !== undefined));
      if (same) await fsp.unlink(path).catch(() => undefined);
      watched = undefined;
      continue;
    }
    lastHolder = describeOwner(text);
    // A lock whose heartbeat has not moved since we first saw it may be dead: we watch it
    // for as long as that takes to tell, even past the wait we were given (else a dead
    // holder's lock would stop every waiter for good). One we saw move is alive: the wait applies.
    const until = verdict.needs !== undefined && !watched.moved ? Math.max(deadline, watched.since + verdict.needs + 250) : deadline;
    if (performance.now() >= until) {
      const busy = opts.busy?.(lastHolder) ?? { message: `Another backup is running in ${dir} (${lastHolder}).`, hint: 'Wait for it to finish and try again.' };
      throw new BackupError('LOCKED', busy.message, { hint: busy.hint });
    }
    await new Promise((r) => setTimeout(r, 150));
  }
  const { text, keep } = held;
  // An empty lock is known by its inode, which `keep` (a second name of it) keeps from reuse;
  // without hard links there is no second name, and its inode is all there is to go by.
  const mine = keep ? await fsp.stat(keep).catch(() => undefined) : text === '' ? await fsp.stat(path).catch(() => undefined) : undefined;
  const key = mine ? emptyKey(path, mine) : `${path}\n${text}`;
  heldHere.add(key);
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
      if (text === '') {
        const now = await fsp.stat(path).catch(() => undefined);
        if (mine && now && now.ino === mine.ino && now.dev === mine.dev) await fsp.unlink(path).catch(() => undefined);
        if (keep) await fsp.rm(keep, { force: true }).catch(() => undefined);
      } else if ((await readLock(path)) === text) {
        await fsp.unlink(path).catch(() => undefined);
      }
      heldHere.delete(key);
    },
  };
}
