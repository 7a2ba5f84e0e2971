/**
 * What ai-memory itself does to a database, written with native SQLite, for the memory
 * tests: a recall (`db::touch`), gc archiving an expired memory, a `forget`, an edit, and
 * `import` of the export JSON with its documented semantics (upsert on (title, namespace)).
 * FACTS.md "Recall noise" and "export/import" are the reference.
 */
import type { NativeDb } from './sqlite';

/** `db::touch`: one recall, in one transaction, exactly the writes FACTS.md lists. */
export function recall(db: NativeDb, id: string, atIso: string): void {
  db.transaction(() => {
    const m = db.prepare<{ tier: string; access_count: number; priority: number }>('SELECT tier, access_count, priority FROM memories WHERE id = ?').get(id);
    if (!m) throw new Error(`no memory ${id}`);
    const access = m.access_count + 1;
    const ttlMs = m.tier === 'short' ? 6 * 3600_000 : m.tier === 'mid' ? 7 * 86_400_000 : 0;
    let expires: string | null = ttlMs ? new Date(Date.parse(atIso) + ttlMs).toISOString() : null;
    let tier = m.tier;
    let updated: string | undefined;
    if (m.tier === 'mid' && access >= 5) {
      tier = 'long';
      expires = null;
      updated = atIso;
    }
    const priority = access % 10 === 0 ? Math.min(10, m.priority + 1) : m.priority;
    db.prepare(
      `UPDATE memories SET access_count = ?, last_accessed_at = ?, expires_at = ?, tier = ?, priority = ?${updated ? ', updated_at = ?' : ''} WHERE id = ?`,
    ).run(...[access, atIso, expires, tier, priority, ...(updated ? [updated] : []), id]);
  })();
}

const MEMORY_COLS = 'id, tier, namespace, title, content, tags, priority, confidence, source, access_count, created_at, updated_at, last_accessed_at, expires_at, metadata, embedding, embedding_dim';

/** gc: an expired memory moves to `archived_memories` (reason ttl_expired) and leaves `memories`. */
export function gcArchive(db: NativeDb, id: string, atIso: string): void {
  db.transaction(() => {
    db.prepare(
      `INSERT INTO archived_memories (${MEMORY_COLS}, archived_at, archive_reason, original_tier, original_expires_at)
       SELECT ${MEMORY_COLS}, ?, 'ttl_expired', tier, expires_at FROM memories WHERE id = ?`,
    ).run(atIso, id);
    db.prepare('DELETE FROM memories WHERE id = ?').run(id);
  })();
}

/** `forget`: the memory is deleted (its links go with it: ON DELETE CASCADE). */
export function forget(db: NativeDb, id: string): void {
  db.prepare('DELETE FROM memories WHERE id = ?').run(id);
}

/** `update`: the given fields change and `updated_at` is stamped. */
export function edit(db: NativeDb, id: string, fields: Record<string, string | number | null>, atIso: string): void {
  const keys = Object.keys(fields);
  db.prepare(`UPDATE memories SET ${keys.map((k) => `${k} = ?`).join(', ')}, updated_at = ? WHERE id = ?`).run(...keys.map((k) => fields[k]), atIso, id);
}

export interface ImportDocument {
  memories: {
    id: string; tier: string; namespace: string; title: string; content: string; tags: string[]; priority: number;
    confidence: number; source: string; access_count: number; created_at: string; updated_at: string;
    last_accessed_at?: string; expires_at?: string; metadata: Record<string, unknown>;
  }[];
  links: { source_id: string; target_id: string; relation: string; created_at: string }[];
  count: number;
  exported_at: string;
}

/**
 * `ai-memory import` as documented: each memory is upserted on (title, namespace) — an
 * existing memory with that title in that namespace is overwritten, otherwise it is
 * inserted with its id — and links are inserted when both ends exist.
 */
export function importDocument(db: NativeDb, doc: ImportDocument): { memories: number; links: number } {
  let memories = 0;
  let links = 0;
  db.transaction(() => {
    const up = db.prepare(
      `INSERT INTO memories (id, tier, namespace, title, content, tags, priority, confidence, source, access_count, created_at, updated_at, last_accessed_at, expires_at, metadata)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (title, namespace) DO UPDATE SET
         tier = excluded.tier, content = excluded.content, tags = excluded.tags, priority = excluded.priority,
         confidence = excluded.confidence, source = excluded.source, access_count = excluded.access_count,
         created_at = excluded.created_at, updated_at = excluded.updated_at, last_accessed_at = excluded.last_accessed_at,
         expires_at = excluded.expires_at, metadata = excluded.metadata`,
    );
    for (const m of doc.memories) {
      up.run(m.id, m.tier, m.namespace, m.title, m.content, JSON.stringify(m.tags), m.priority, m.confidence, m.source, m.access_count,
        m.created_at, m.updated_at, m.last_accessed_at ?? null, m.expires_at ?? null, JSON.stringify(m.metadata));
      memories++;
    }
    const exists = db.prepare('SELECT 1 FROM memories WHERE id = ?').pluck();
    const link = db.prepare('INSERT OR IGNORE INTO memory_links (source_id, target_id, relation, created_at) VALUES (?, ?, ?, ?)');
    for (const l of doc.links) {
      if (exists.get(l.source_id) && exists.get(l.target_id)) links += link.run(l.source_id, l.target_id, l.relation, l.created_at).changes;
    }
  })();
  return { memories, links };
}
