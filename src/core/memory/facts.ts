/**
 * The facts of one database: what the Snapshots view and `inspect` show without opening
 * the file again, and the digest that tells whether two databases hold the same memories.
 *
 * The digest is SHA-256 over the sum (HashSum) of the per-memory hashes of (the content
 * fields, tier class; records.contentEncoding), then the sum of the per-link hashes of (source_id, target_id,
 * relation, created_at). It leaves out everything a recall writes (records.ts): access_count,
 * last_accessed_at, expires_at, updated_at, priority, and the difference between `mid`
 * and `long`. So a database that was only read (recalls, promotions included) keeps its
 * digest, while a new, removed or archived memory, an edit of its namespace, title,
 * content, tags, confidence, source, created_at or metadata, a `short` memory made
 * `mid`/`long` (or back), and a link added or removed all change it. Embeddings are left
 * out too: they are derived from the content (and absent from ai-memory's export). Edits of
 * only priority, only `mid`↔`long` or only expiry keep the digest; the comparison (compare.ts)
 * still reports them, because it sees both sides.
 */
import { createHash, hash, type BinaryToTextEncoding } from 'node:crypto';
import { contentEncodingOfRow, contentSelectList, text, topNamespace } from './records';
import { LINK_FIELDS, quoteId, readSchema, type DatabaseSchema } from './schema';
import { openSnapshotSql, type MemorySql } from './source';
import { FACTS_VERSION } from '../store/manifest';

export { FACTS_VERSION };

/**
 * Digests as 32-character latin1 strings: Node's crypto.hash takes any string encoding for
 * its output (its types list only hex/base64), and a string is collected with the young
 * generation, where a Buffer per memory (a backing store each) raised peak RSS by ~20 MB.
 */
const LATIN1 = 'latin1' as BinaryToTextEncoding;

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

function bump(o: Map<string, number>, k: string, n = 1): void {
  o.set(k, (o.get(k) ?? 0) + n);
}

/**
 * A multiset hash: the sum, modulo 2^256, of 32-byte hashes (big-endian). The same for any
 * order and O(1) in memory whatever the number of memories (sorting the per-memory hashes
 * instead held them all: ~250 MB of peak RSS at 350,000 memories). It detects any change
 * of the multiset that is not crafted; the digest only tells "same memories" apart, it
 * guards nothing against an attacker (the manifest's sha256 does that for the file).
 */
class HashSum {
  private readonly lanes = new Uint32Array(8);
  count = 0;

  /** `h`: 32 bytes as a latin1 string (what crypto.hash returns with 'latin1': no Buffer per memory). */
  add(h: string): void {
    let carry = 0;
    for (let i = 7; i >= 0; i--) {
      const j = i * 4;
      const word = ((h.charCodeAt(j) << 24) | (h.charCodeAt(j + 1) << 16) | (h.charCodeAt(j + 2) << 8) | h.charCodeAt(j + 3)) >>> 0;
      const s = this.lanes[i] + word + carry;
      this.lanes[i] = s >>> 0;
      carry = s > 0xffffffff ? 1 : 0;
    }
    this.count++;
  }

  bytes(): Buffer {
    const out = Buffer.alloc(32);
    for (let i = 0; i < 8; i++) out.writeUInt32BE(this.lanes[i], i * 4);
    return out;
  }
}

/** The facts of an ai-memory database; undefined for another kind of SQLite file. */
export function computeFacts(db: MemorySql, schema: DatabaseSchema = readSchema(db)): MemoryFacts | undefined {
  if (schema.kind !== 'ai-memory') return undefined;
  const tiers = new Map<string, number>();
  const namespaces = new Map<string, number>();
  const entries = new HashSum();
  db.each(`SELECT ${contentSelectList(schema.memoryFields)} FROM memories`, [], (r) => {
    entries.add(hash('sha256', contentEncodingOfRow(r, schema.memoryFields), LATIN1));
  });
  // Counts in SQL (over ai-memory's tier and namespace indexes), not per memory in JavaScript.
  const col = (f: 'tier' | 'namespace'): string => (schema.memoryFields.has(f) ? quoteId(f) : 'NULL');
  db.each(`SELECT ${col('tier')} AS g, count(*) FROM memories GROUP BY g`, [], (r) => {
    bump(tiers, text(r[0]) ?? '', Number(r[1]));
  });
  db.each(`SELECT ${col('namespace')} AS g, count(*) FROM memories GROUP BY g`, [], (r) => {
    bump(namespaces, topNamespace(text(r[0])), Number(r[1]));
  });
  const links = new HashSum();
  if (schema.hasLinks) {
    db.each(`SELECT ${LINK_FIELDS.join(', ')} FROM memory_links`, [], (r) => {
      links.add(hash('sha256', JSON.stringify(r.map((v) => (v instanceof Uint8Array ? Buffer.from(v).toString('utf8') : v))), LATIN1));
    });
  }
  let archived = 0;
  if (schema.hasArchived) {
    const n = db.all('SELECT count(*) FROM archived_memories')[0]?.[0];
    archived = typeof n === 'number' ? n : 0;
  }
  const digest = createHash('sha256');
  digest.update(`ai-memory-facts/${FACTS_VERSION}\nmemories ${entries.count}\n`);
  digest.update(entries.bytes());
  digest.update(`\nlinks ${links.count}\n`);
  digest.update(links.bytes());

  const byNs = [...namespaces.entries()].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
  const memories_by_namespace: Record<string, number> = {};
  for (const [k, v] of byNs.slice(0, MAX_NAMESPACES)) memories_by_namespace[k] = v;
  const rest = byNs.slice(MAX_NAMESPACES).reduce((s, [, v]) => s + v, 0);
  if (rest) memories_by_namespace[OTHER_NAMESPACES] = (memories_by_namespace[OTHER_NAMESPACES] ?? 0) + rest;
  const memories_by_tier: Record<string, number> = {};
  for (const [k, v] of [...tiers.entries()].sort((a, b) => a[0].localeCompare(b[0]))) memories_by_tier[k] = v;
  return {
    facts_version: FACTS_VERSION,
    memories: entries.count,
    memories_by_tier,
    memories_by_namespace,
    links: links.count,
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
