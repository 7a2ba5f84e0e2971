/**
 * The facts of one database: what the Snapshots view and `inspect` show without opening
 * the file again, and the digest that tells whether two databases hold the same memories.
 *
 * The digest is SHA-256 over the sorted per-memory hashes of (content fingerprint, tier
 * class) followed by the sorted per-link hashes of (source_id, target_id, relation,
 * created_at). It leaves out everything a recall writes (records.ts): access_count,
 * last_accessed_at, expires_at, updated_at, priority, and the difference between `mid`
 * and `long`. So a database that was only read (recalls, promotions included) keeps its
 * digest, while a new, removed or archived memory, an edit of its namespace, title,
 * content, tags, confidence, source, created_at or metadata, a `short` memory made
 * `mid`/`long` (or back), and a link added or removed all change it. Embeddings are left
 * out too: they are derived from the content (and absent from ai-memory's export). Edits of
 * only priority, only `mid`↔`long` or only expiry keep the digest; the comparison (compare.ts)
 * still reports them, because it sees both sides.
 */
import { createHash, hash } from 'node:crypto';
import { contentFingerprint, eachMemory, tierClass, topNamespace } from './records';
import { LINK_FIELDS, readSchema, type DatabaseSchema } from './schema';
import { openSnapshotSql, type MemorySql } from './source';

export const FACTS_VERSION = 1;
/** At most this many top-level namespaces are listed; the rest are summed under {@link OTHER_NAMESPACES}. */
export const MAX_NAMESPACES = 100;
export const OTHER_NAMESPACES = '(other)';

export interface MemoryFacts {
  facts_version: number;
  memories: number;
  memories_by_tier: Record<string, number>;
  memories_by_namespace: Record<string, number>;
  links: number;
  archived: number;
  schema_version?: number;
  /** Hex SHA-256; see the file comment for what it covers. */
  memories_digest: string;
}

function bump(o: Map<string, number>, k: string): void {
  o.set(k, (o.get(k) ?? 0) + 1);
}

/**
 * The hashes (hex) in byte order, as one buffer to feed the digest. Hex strings sort in the
 * same order as their bytes, and V8 sorts strings far faster than Buffer.compare (92,000
 * memories: one of the largest costs of a backup's facts).
 */
function sortedHashes(list: string[]): Buffer {
  return Buffer.from(list.sort().join(''), 'hex');
}

/** The facts of an ai-memory database; undefined for another kind of SQLite file. */
export function computeFacts(db: MemorySql, schema: DatabaseSchema = readSchema(db)): MemoryFacts | undefined {
  if (schema.kind !== 'ai-memory') return undefined;
  const tiers = new Map<string, number>();
  const namespaces = new Map<string, number>();
  const entries: string[] = [];
  eachMemory(db, schema.memoryFields, (m) => {
    bump(tiers, m.tier ?? '');
    bump(namespaces, topNamespace(m.namespace));
    entries.push(hash('sha256', Buffer.concat([contentFingerprint(m, schema.memoryFields), Buffer.from(tierClass(m.tier))]), 'hex'));
  });
  const links: string[] = [];
  if (schema.hasLinks) {
    db.each(`SELECT ${LINK_FIELDS.join(', ')} FROM memory_links`, [], (r) => {
      links.push(hash('sha256', JSON.stringify(r.map((v) => (v instanceof Uint8Array ? Buffer.from(v).toString('utf8') : v))), 'hex'));
    });
  }
  let archived = 0;
  if (schema.hasArchived) {
    const n = db.all('SELECT count(*) FROM archived_memories')[0]?.[0];
    archived = typeof n === 'number' ? n : 0;
  }
  const digest = createHash('sha256');
  digest.update(`ai-memory-facts/${FACTS_VERSION}\nmemories ${entries.length}\n`);
  digest.update(sortedHashes(entries));
  digest.update(`\nlinks ${links.length}\n`);
  digest.update(sortedHashes(links));

  const byNs = [...namespaces.entries()].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
  const memories_by_namespace: Record<string, number> = {};
  for (const [k, v] of byNs.slice(0, MAX_NAMESPACES)) memories_by_namespace[k] = v;
  const rest = byNs.slice(MAX_NAMESPACES).reduce((s, [, v]) => s + v, 0);
  if (rest) memories_by_namespace[OTHER_NAMESPACES] = (memories_by_namespace[OTHER_NAMESPACES] ?? 0) + rest;
  const memories_by_tier: Record<string, number> = {};
  for (const [k, v] of [...tiers.entries()].sort((a, b) => a[0].localeCompare(b[0]))) memories_by_tier[k] = v;
  return {
    facts_version: FACTS_VERSION,
    memories: entries.length,
    memories_by_tier,
    memories_by_namespace,
    links: links.length,
    archived,
    schema_version: schema.schemaVersion,
    memories_digest: digest.digest('hex'),
  };
}

/** Reads the facts fields back from a parsed manifest (or cache entry); undefined unless complete and of this version. */
export function factsFromObject(o: Record<string, unknown> | undefined): MemoryFacts | undefined {
  if (!o || o.facts_version !== FACTS_VERSION) return undefined;
  const counts = (v: unknown): v is Record<string, number> =>
    !!v && typeof v === 'object' && !Array.isArray(v) && Object.values(v).every((n) => typeof n === 'number' && Number.isFinite(n));
  if (typeof o.memories !== 'number' || typeof o.links !== 'number' || typeof o.archived !== 'number') return undefined;
  if (!counts(o.memories_by_tier) || !counts(o.memories_by_namespace)) return undefined;
  if (typeof o.memories_digest !== 'string' || !/^[0-9a-f]{64}$/.test(o.memories_digest)) return undefined;
  if (o.schema_version !== undefined && typeof o.schema_version !== 'number') return undefined;
  return {
    facts_version: FACTS_VERSION,
    memories: o.memories,
    memories_by_tier: o.memories_by_tier,
    memories_by_namespace: o.memories_by_namespace,
    links: o.links,
    archived: o.archived,
    schema_version: o.schema_version as number | undefined,
    memories_digest: o.memories_digest,
  };
}

/** Facts of a database file (the backup's temp file, after its check); undefined when it is not ai-memory's. */
export async function factsOfFile(path: string): Promise<MemoryFacts | undefined> {
  const db = await openSnapshotSql(path);
  try {
    return computeFacts(db);
  } finally {
    db.close();
  }
}

/** The manifest fields of ours that carry the facts (`memories` and `schema_version` are shared with the check). */
export function factsManifestFields(f: MemoryFacts): Pick<MemoryFacts, 'facts_version' | 'memories_by_tier' | 'memories_by_namespace' | 'links' | 'archived' | 'memories_digest' | 'memories'> {
  return {
    memories: f.memories,
    facts_version: f.facts_version,
    memories_by_tier: f.memories_by_tier,
    memories_by_namespace: f.memories_by_namespace,
    links: f.links,
    archived: f.archived,
    memories_digest: f.memories_digest,
  };
}
