/**
 * Pins keep retention from deleting a snapshot while a restore reads it
 * (Litestream #1307: retention removed the snapshot a restore was using). A pin is a small
 * file in the backup folder naming the snapshot and its owner; retention honours pins of
 * live processes and clears those of dead ones.
 */
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { HOST_TAG, pidAlive, tempPath } from './atomicFs';
import { readSmallRegular } from '../common/regularFile';

const PIN_RE = /^\.ai-memory-backup-pin-([0-9a-f]{6})-(\d+)-[0-9a-f]{8}\.json$/;

/**
 * There while a retention run deletes (pinWatch), and replaced (new random content) by every
 * pin made meanwhile: retention, which must look for pins again right before each delete,
 * reads this one small file and lists the folder again only when it changed. Listing the
 * folder before each delete made a prune of a big folder quadratic (17,520 hourly
 * snapshots: 5 minutes and 870 MB, one readdir of 35,000 names per deleted snapshot).
 * Retention runs one at a time (the folder lock), and removes it when done: a restore's pin
 * outside a run leaves the folder as it was.
 */
export const PIN_STAMP_NAME = '.ai-memory-backup.pins';

/** Pins `snapshotName` in `dir`; best effort (a read-only backup folder cannot hold a pin). */
export async function pinSnapshot(dir: string, snapshotName: string): Promise<() => Promise<void>> {
  const path = join(dir, `.ai-memory-backup-pin-${HOST_TAG}-${process.pid}-${randomBytes(4).toString('hex')}.json`);
  // Written aside and renamed: a pin is never seen empty (an empty pin names no snapshot,
  // so retention running at that moment would delete the one being restored).
  const tmp = tempPath(dir, 'pin');
  try {
    await fsp.writeFile(tmp, JSON.stringify({ snapshot: snapshotName, pid: process.pid, at: new Date().toISOString() }), { flag: 'wx' });
    await fsp.rename(tmp, path);
  } catch {
    await fsp.rm(tmp, { force: true }).catch(() => undefined);
    return async () => undefined;
  }
  // After the pin: a retention run that finds the stamp unchanged listed the folder after the
  // pin was there. No stamp, no run deleting: the next one makes it before it lists the pins.
  if (await fsp.lstat(join(dir, PIN_STAMP_NAME)).then(() => true, () => false)) await writeStamp(dir);
  return async () => {
    await fsp.unlink(path).catch(() => undefined);
  };
}

interface PinFile {
  path: string;
  /** Left by a dead process or older than a day: no restore is reading through it. */
  stale: boolean;
}

async function pinFiles(dir: string): Promise<PinFile[]> {
  let names: string[];
  try {
    names = await fsp.readdir(dir);
  } catch {
    return [];
  }
  const pins: PinFile[] = [];
  for (const name of names) {
    const m = PIN_RE.exec(name);
    if (!m) continue;
    const path = join(dir, name);
    try {
      const st = await fsp.stat(path);
      const local = m[1] === HOST_TAG;
      pins.push({ path, stale: Date.now() - st.mtimeMs > 24 * 3600_000 || (local && !pidAlive(Number(m[2]))) });
    } catch {
      // gone meanwhile
    }
  }
  return pins;
}

/** Names of the snapshots pinned by live processes. Reads only: stale pins are removed by removeStalePins(). */
export async function pinnedSnapshots(dir: string): Promise<Set<string>> {
  const pinned = new Set<string>();
  for (const pin of await pinFiles(dir)) {
    if (pin.stale) continue;
    try {
      const o = JSON.parse(await readSmallRegular(pin.path, 64 * 1024)) as { snapshot?: unknown };
      if (typeof o.snapshot === 'string') pinned.add(o.snapshot);
    } catch {
      // unreadable pin: ignore it
    }
  }
  return pinned;
}

/** Replaces the stamp with new random content; that content, or undefined when it could not be written. */
async function writeStamp(dir: string): Promise<string | undefined> {
  const tmp = tempPath(dir, 'pins');
  const content = randomBytes(16).toString('hex');
  try {
    await fsp.writeFile(tmp, content, { flag: 'wx' });
    await fsp.rename(tmp, join(dir, PIN_STAMP_NAME));
    return content;
  } catch {
    await fsp.rm(tmp, { force: true }).catch(() => undefined);
    return undefined;
  }
}

/** The stamp's content; undefined when it is not there or cannot be read (then the folder is listed again). */
async function readStamp(dir: string): Promise<string | undefined> {
  return readSmallRegular(join(dir, PIN_STAMP_NAME), 1024).catch(() => undefined);
}

export interface PinWatch {
  /** The snapshots pinned by live processes now (pinnedSnapshots), listing the folder only when a pin was made since the last look. */
  pinned(): Promise<Set<string>>;
  /** Removes the stamp (the caller holds the folder lock: no other run needs it). */
  close(): Promise<void>;
}

/**
 * `pinnedSnapshots(dir)` for a retention run that asks before each delete, under the folder
 * lock: the stamp is made before the first listing, and the folder is listed again only when
 * a pin replaced it since — one small read per delete, however many files the folder holds.
 */
/** Runs `work` with a pinWatch of `dir`, closed (its stamp removed) however `work` ends. */
export async function withPinWatch<T>(dir: string, work: (pins: PinWatch) => Promise<T>): Promise<T> {
  const pins = pinWatch(dir);
  try {
    return await work(pins);
  } finally {
    await pins.close();
  }
}

export function pinWatch(dir: string): PinWatch {
  let started = false;
  let seen: { stamp: string; pinned: Set<string> } | undefined;
  return {
    async pinned() {
      if (!started) {
        started = true;
        await writeStamp(dir);
      }
      const stamp = await readStamp(dir); // before the listing: a pin made after it changes the stamp again
      if (seen && stamp !== undefined && stamp === seen.stamp) return seen.pinned;
      const pinned = await pinnedSnapshots(dir);
      seen = stamp === undefined ? undefined : { stamp, pinned };
      return pinned;
    },
    async close() {
      if (started) await fsp.rm(join(dir, PIN_STAMP_NAME), { force: true }).catch(() => undefined);
    },
  };
}

/** Removes the pins left by restores that died (killed, power cut); live pins stay. */
export async function removeStalePins(dir: string): Promise<void> {
  for (const pin of await pinFiles(dir)) if (pin.stale) await fsp.unlink(pin.path).catch(() => undefined);
}
