/**
 * Whose snapshot is it? A backup folder can hold snapshots of several databases: a
 * user-level folder, or two databases in one directory sharing the default `backups/`.
 * A snapshot belongs to the database its manifest's `source_db` names — compared as
 * resolved paths (resolveDbPath: symlinks followed, as SQLite opens it), so a database
 * backed up once through a link and once directly is one database.
 *
 *  - 'this':    source_db resolves to this database;
 *  - 'other':   source_db names another database that exists here;
 *  - 'gone':    source_db names a path that does not exist here (the database was moved,
 *               renamed, or the snapshots came from another machine), or the manifest says
 *               it was taken on another machine (`host`, `machine_id`: common/machine.ts);
 *  - 'unknown': no usable manifest, so no owner can be told.
 *
 * The rules built on it (retention, "newest", the views) are in backup.ts, restore.ts,
 * the CLI's list and the extension's catalog: only 'this' counts for retention and
 * "unchanged"; "newest" for a restore prefers 'this' and otherwise names whose it is.
 * A relative source_db (ai-memory writes the path as it was given) is read relative to
 * the backup folder's parent, where ai-memory's defaults (./ai-memory.db, ./backups) put them.
 */
import { promises as fsp } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { takenElsewhere } from '../common/machine';
import { resolvedDbPathOr, sameDbPath } from '../sqlite/dbFiles';
import type { SnapshotEntry } from './catalog';

export type Owner = 'this' | 'other' | 'gone' | 'unknown';

export interface OwnerInfo {
  owner: Owner;
  /** The source database as its manifest names it (resolved), when there is a manifest. */
  source?: string;
  /**
   * The manifest names its database by a relative path (ai-memory writes the path as it was
   * given, relative to wherever its CLI ran): read against the backup folder's parent, which
   * is a guess — another project's `ai-memory.db` backed up into this folder reads the same.
   * Restore may take such a snapshot as this database's (and says so); retention never deletes
   * on a guess (prune.ts retentionCandidates; the remote's retention keeps them too).
   */
  guessed?: boolean;
  /**
   * Its manifest says it was taken on another machine (common/machine.ts): the host named
   * there. The owner is then 'gone' — the database it was taken of is not on this machine,
   * though a database here has the same path (a backup folder synced between two machines).
   */
  host?: string;
}

/** Decides the owner of each entry of `dir` relative to the database `dbPath` (already resolved). */
export function ownerResolver(dir: string, dbPath: string | undefined): (e: Pick<SnapshotEntry, 'manifest' | 'manifestState'>) => Promise<OwnerInfo> {
  const cache = new Map<string, Promise<OwnerInfo>>();
  return (e) => {
    const src = e.manifestState === 'ok' ? e.manifest?.source_db : undefined;
    if (!src) return Promise.resolve({ owner: 'unknown' });
    // Another machine's (its manifest says so): the database it names is not this one, nor
    // any here, whatever its path (a folder synced between machines with the same layout).
    const elsewhere = e.manifest ? takenElsewhere(e.manifest) : false;
    const key = elsewhere ? `${src}\0${e.manifest?.machine_id ?? ''}\0${e.manifest?.host ?? ''}` : src;
    let p = cache.get(key);
    if (!p) {
      p = (async (): Promise<OwnerInfo> => {
        const guessed = !isAbsolute(src);
        const abs = guessed ? resolve(dirname(dir), src) : src;
        const source = await resolvedDbPathOr(abs, abs);
        if (elsewhere) return { owner: 'gone', source, ...(guessed ? { guessed } : {}), host: e.manifest?.host ?? 'another machine' };
        const owner: Owner = dbPath && sameDbPath(source, dbPath) ? 'this' : (await fsp.stat(source).then(() => true, () => false)) ? 'other' : 'gone';
        return guessed ? { owner, source, guessed } : { owner, source };
      })();
      cache.set(key, p);
    }
    return p;
  };
}

/** One database, for grouping: its resolved path, and the machine when the manifest names another one. */
export function ownerKey(o: Pick<OwnerInfo, 'source' | 'host'>): string {
  return o.host ? `${o.source ?? ''}\0${o.host}` : (o.source ?? '');
}

/** The database a snapshot was taken of, in words: its path, and the host when it is another machine's. */
export function ownerName(o: Pick<OwnerInfo, 'source' | 'host'>): string {
  return o.host ? `${o.source ?? ''} on ${o.host}` : (o.source ?? '');
}

/** Annotates entries with their owner (in place) and returns them. */
export async function withOwners<T extends Pick<SnapshotEntry, 'manifest' | 'manifestState'>>(dir: string, dbPath: string | undefined, entries: T[]): Promise<(T & OwnerInfo)[]> {
  const of = ownerResolver(dir, dbPath);
  const infos = await Promise.all(entries.map(of));
  return entries.map((e, i) => Object.assign(e, infos[i]));
}

/**
 * A folder's snapshots in the order a restore considers them for "the newest" (listed newest
 * first): those that can be restored, properly named first; the list as it is when none can.
 * The extension's Restore Latest uses it too, so both pick the same snapshot.
 */
export function restoreOrder<T extends Pick<SnapshotEntry, 'unsafe' | 'timeSource'>>(listed: T[]): T[] {
  const safe = listed.filter((e) => !e.unsafe);
  return safe.length ? [...safe.filter((e) => e.timeSource === 'name'), ...safe.filter((e) => e.timeSource !== 'name')] : listed;
}

/** This database's newest in `ordered` (restoreOrder): known first; with `guesses`, else one told from a relative source_db. */
export function newestOfThis<T extends Pick<OwnerInfo, 'owner' | 'guessed'>>(ordered: T[], guesses = true): T | undefined {
  return ordered.find((e) => e.owner === 'this' && !e.guessed) ?? (guesses ? ordered.find((e) => e.owner === 'this') : undefined);
}
