/**
 * Reading one database for a person: its header (facts, or for another kind of SQLite
 * file its tables and row counts), a page of its memories (searched and filtered in SQL,
 * never all of them at once), and one memory with every field and its links.
 */
import { computeFacts, type MemoryFacts } from './facts';
import { memoryById, type MemoryRecord } from './records';
import { readSchema, tableCounts, type DatabaseSchema } from './schema';
import type { MemorySql, SqlValue } from './source';
import { UNICODE_LOWER } from '../sqlite/sqlEngine';

export interface DatabaseOverview {
  kind: 'ai-memory' | 'sqlite';
  schema_version?: number;
  facts?: MemoryFacts;
  /** For a database that is not ai-memory's: its tables and their rows. */
  tables?: { table: string; rows: number }[];
}

export function overview(db: MemorySql, schema: DatabaseSchema = readSchema(db)): DatabaseOverview {
  if (schema.kind !== 'ai-memory') return { kind: 'sqlite', schema_version: schema.schemaVersion, tables: tableCounts(db, schema) };
  return { kind: 'ai-memory', schema_version: schema.schemaVersion, facts: computeFacts(db, schema) };
}

export interface MemoryQuery {
  /** Words looked for in title, content and tags (case-insensitive, all must occur). */
  text?: string;
  /** A namespace and everything under it. */
  namespace?: string;
  tier?: string;
  offset?: number;
  /** At most 500 rows a page. */
  limit?: number;
}

export interface MemoryRow {
  id: string;
  title: string;
  namespace: string;
  tier: string;
  updated_at: string;
}

export interface MemoryPage {
  total: number;
  offset: number;
  rows: MemoryRow[];
}

const MAX_PAGE = 500;

export function listMemories(db: MemorySql, q: MemoryQuery, schema: DatabaseSchema = readSchema(db)): MemoryPage {
  if (schema.kind !== 'ai-memory') return { total: 0, offset: 0, rows: [] };
  const f = schema.memoryFields;
  const where: string[] = [];
  const params: SqlValue[] = [];
  for (const word of (q.text ?? '').toLowerCase().split(/\s+/).filter(Boolean).slice(0, 8)) {
    // SQLite's lower() folds ASCII only: a word with another letter (Über) would never match.
    const lower = /^[\x20-\x7e]*$/.test(word) ? 'lower' : UNICODE_LOWER;
    const parts = (['title', 'content', 'tags'] as const).filter((c) => f.has(c)).map((c) => `instr(${lower}(${c}), ?) > 0`);
    if (!parts.length) continue;
    where.push(`(${parts.join(' OR ')})`);
    for (let i = 0; i < parts.length; i++) params.push(word);
  }
  if (q.namespace) {
    // substr counts characters, not UTF-16 units (length() of the parameter, not JavaScript's: 🧠 is one, not two).
    where.push('(namespace = ? OR substr(namespace, 1, length(?)) = ?)');
    params.push(q.namespace, `${q.namespace}/`, `${q.namespace}/`);
  }
  if (q.tier && f.has('tier')) {
    where.push('tier = ?');
    params.push(q.tier);
  }
  const w = where.length ? `WHERE ${where.join(' AND ')}` : '';
  const total = Number(db.all(`SELECT count(*) FROM memories ${w}`, params)[0]?.[0] ?? 0);
  const limit = Math.max(1, Math.min(MAX_PAGE, Math.floor(q.limit ?? 100)));
  const offset = Math.max(0, Math.floor(q.offset ?? 0));
  const order = f.has('updated_at') ? 'updated_at DESC, id' : 'id';
  const rows: MemoryRow[] = [];
  const col = (c: 'title' | 'namespace' | 'tier' | 'updated_at'): string => (f.has(c) ? c : "''");
  db.each(`SELECT id, ${col('title')}, ${col('namespace')}, ${col('tier')}, ${col('updated_at')} FROM memories ${w} ORDER BY ${order} LIMIT ? OFFSET ?`, [...params, limit, offset], (r) => {
    rows.push({ id: String(r[0]), title: String(r[1] ?? ''), namespace: String(r[2] ?? ''), tier: String(r[3] ?? ''), updated_at: String(r[4] ?? '') });
  });
  return { total, offset, rows };
}

export interface MemoryLink {
  direction: 'out' | 'in';
  other_id: string;
  other_title?: string;
  relation: string;
  created_at: string | null;
}

export interface MemoryDetail {
  memory: MemoryRecord;
  links: MemoryLink[];
}

const MAX_LINKS = 1000;

export function memoryDetail(db: MemorySql, id: string, schema: DatabaseSchema = readSchema(db)): MemoryDetail | undefined {
  if (schema.kind !== 'ai-memory') return undefined;
  const memory = memoryById(db, schema.memoryFields, id);
  if (!memory) return undefined;
  const links: MemoryLink[] = [];
  if (schema.hasLinks) {
    const title = (other: string): string | undefined => memoryById(db, schema.memoryFields, other)?.title ?? undefined;
    for (const [dir, mine, other] of [['out', 'source_id', 'target_id'], ['in', 'target_id', 'source_id']] as const) {
      db.each(`SELECT ${other}, relation, created_at FROM memory_links WHERE ${mine} = ? LIMIT ${MAX_LINKS}`, [id], (r) => {
        links.push({ direction: dir, other_id: String(r[0]), relation: String(r[1] ?? ''), created_at: r[2] === null ? null : String(r[2]) });
      });
    }
    for (const l of links) l.other_title = title(l.other_id);
  }
  return { memory, links };
}

/** Exposed for the memory-as-text rendering of a diff. */
export function recordById(db: MemorySql, id: string, schema: DatabaseSchema = readSchema(db)): MemoryRecord | undefined {
  return schema.kind === 'ai-memory' ? memoryById(db, schema.memoryFields, id) : undefined;
}
