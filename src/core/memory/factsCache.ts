/**
 * Facts of snapshots whose manifest has none (made by ai-memory's own CLI, or by us with
 * `--verify off`): computed once from the file and kept in a hidden cache file in the
 * backup folder — never by rewriting a manifest someone else wrote. The cache is written
 * temp → fsync → rename; an entry counts only while the snapshot's name, size, mtime and
 * manifest sha256 are the same, so a replaced file is never described by old facts.
 * A folder we cannot write to still gets facts, just computed again next time.
 */
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../store/atomicFs';
import type { SnapshotEntry } from '../store/catalog';
import { computeFacts, factsFromObject, FACTS_VERSION, type MemoryFacts } from './facts';
import { openSnapshotSql, type OpenOptions } from './source';

export const FACTS_CACHE_NAME = '.ai-memory-backup.facts.json';

interface CacheEntry {
  bytes: number;
  mtime_ms: number;
  sha256?: string;
  /** Facts, or null: the file is SQLite but not an ai-memory database. */
  facts: MemoryFacts | null;
}

interface CacheFile {
  facts_version: number;
  snapshots: Record<string, CacheEntry>;
}

async function readCache(dir: string): Promise<CacheFile> {
  try {
    const o = JSON.parse(await fsp.readFile(join(dir, FACTS_CACHE_NAME), 'utf8')) as Partial<CacheFile>;
    if (o && o.facts_version === FACTS_VERSION && o.snapshots && typeof o.snapshots === 'object') return o as CacheFile;
  } catch {
    // absent or unreadable: start afresh
  }
  return { facts_version: FACTS_VERSION, snapshots: {} };
}

function matches(c: CacheEntry | undefined, e: SnapshotEntry): c is CacheEntry {
  return !!c && c.bytes === e.size && c.mtime_ms === e.mtimeMs && c.sha256 === e.manifest?.sha256;
}

export interface FactsLookup {
  facts?: MemoryFacts;
  /** Where they came from: the manifest, the cache, or computed now. */
  source: 'manifest' | 'cache' | 'computed' | 'none';
  /** Why there are none (not ai-memory, encrypted, unreadable…). */
  reason?: string;
}

/** The facts of each snapshot: from its manifest, else the cache, else computed (and cached). */
export async function factsForSnapshots(dir: string, entries: SnapshotEntry[], opts: OpenOptions & { compute?: boolean } = {}): Promise<Map<string, FactsLookup>> {
  const out = new Map<string, FactsLookup>();
  let cache: CacheFile | undefined;
  let dirty = false;
  for (const e of entries) {
    const fromManifest = factsFromObject(e.manifest as unknown as Record<string, unknown> | undefined);
    if (fromManifest) {
      out.set(e.name, { facts: fromManifest, source: 'manifest' });
      continue;
    }
    cache ??= await readCache(dir);
    const c = cache.snapshots[e.name];
    if (matches(c, e)) {
      out.set(e.name, c.facts ? { facts: factsFromObject(c.facts as unknown as Record<string, unknown>), source: 'cache' } : { source: 'none', reason: 'not an ai-memory database' });
      continue;
    }
    if (opts.compute === false || e.unsafe) {
      out.set(e.name, { source: 'none', reason: e.unsafe ? 'symlink outside the folder' : 'not computed yet' });
      continue;
    }
    let db;
    try {
      db = await openSnapshotSql(e.path, opts);
      const facts = computeFacts(db);
      cache.snapshots[e.name] = { bytes: e.size, mtime_ms: e.mtimeMs, sha256: e.manifest?.sha256, facts: facts ?? null };
      dirty = true;
      out.set(e.name, facts ? { facts, source: 'computed' } : { source: 'none', reason: 'not an ai-memory database' });
    } catch (err) {
      out.set(e.name, { source: 'none', reason: err instanceof Error ? err.message : String(err) });
    } finally {
      db?.close();
    }
  }
  if (dirty && cache) {
    // Entries of snapshots that are gone are dropped, so the cache never outgrows the folder.
    const names = new Set(await fsp.readdir(dir).catch(() => entries.map((e) => e.name)));
    const fresh = await readCache(dir); // another process may have added entries meanwhile
    for (const [k, v] of Object.entries(cache.snapshots)) fresh.snapshots[k] = v;
    for (const k of Object.keys(fresh.snapshots)) if (!names.has(k)) delete fresh.snapshots[k];
    // 0600: namespace names say something about the user's work.
    await writeFileAtomic(join(dir, FACTS_CACHE_NAME), JSON.stringify(fresh), 0o600).catch(() => undefined);
  }
  return out;
}
