/**
 * What kind of database a file is, read from its schema without trusting it: only real
 * tables count (`sqlite_master.type = 'table'` — a hostile file may define `memories` as a
 * view whose query never ends), and only ordinary stored columns are read
 * (`pragma_table_xinfo.hidden = 0`: a generated column runs an expression the file chose).
 */
import type { MemorySql } from './source';

/** The fields of a memory in ai-memory's export JSON, in its order (FACTS.md "export"). */
export const EXPORT_FIELDS = [
  'id', 'tier', 'namespace', 'title', 'content', 'tags', 'priority', 'confidence', 'source',
  'access_count', 'created_at', 'updated_at', 'last_accessed_at', 'expires_at', 'metadata',
] as const;
export type MemoryField = (typeof EXPORT_FIELDS)[number];

/** The columns without which a table is not ai-memory's `memories`. */
const REQUIRED_MEMORY_COLUMNS: MemoryField[] = ['id', 'tier', 'namespace', 'title', 'content'];

export const LINK_FIELDS = ['source_id', 'target_id', 'relation', 'created_at'] as const;

export interface TableInfo {
  name: string;
  /** Ordinary stored columns (generated and hidden columns left out). */
  columns: string[];
}

export interface DatabaseSchema {
  /** 'ai-memory' when a real `memories` table with ai-memory's key columns exists. */
  kind: 'ai-memory' | 'sqlite';
  tables: TableInfo[];
  schemaVersion?: number;
  /** The export fields `memories` has as stored columns. */
  memoryFields: Set<MemoryField>;
  /** `memory_links` with the four export fields. */
  hasLinks: boolean;
  /** `archived_memories` with an `id` column. */
  hasArchived: boolean;
  archivedColumns: Set<string>;
}

/** SQL identifier quoting ("x" with inner quotes doubled). */
export function quoteId(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

export function readSchema(db: MemorySql): DatabaseSchema {
  const names = db
    .all("SELECT name FROM sqlite_master WHERE type = 'table' AND coalesce(sql, '') NOT LIKE 'CREATE VIRTUAL TABLE%' ORDER BY name")
    .map((r) => String(r[0]));
  const tables: TableInfo[] = names.map((name) => ({
    name,
    columns: db.all('SELECT name FROM pragma_table_xinfo(?) WHERE hidden = 0', [name]).map((r) => String(r[0])),
  }));
  const table = (n: string): TableInfo | undefined => tables.find((t) => t.name === n);
  const mem = table('memories');
  const memCols = new Set(mem?.columns ?? []);
  const memoryFields = new Set(EXPORT_FIELDS.filter((f) => memCols.has(f)));
  const isAiMemory = !!mem && REQUIRED_MEMORY_COLUMNS.every((c) => memCols.has(c));
  const links = table('memory_links');
  const archived = table('archived_memories');
  let schemaVersion: number | undefined;
  if (table('schema_version')?.columns.includes('version')) {
    const v = db.all('SELECT max(version) FROM schema_version')[0]?.[0];
    if (typeof v === 'number') schemaVersion = v;
  }
  return {
    kind: isAiMemory ? 'ai-memory' : 'sqlite',
    tables,
    schemaVersion,
    memoryFields,
    hasLinks: !!links && LINK_FIELDS.every((c) => links.columns.includes(c)),
    hasArchived: !!archived && archived.columns.includes('id'),
    archivedColumns: new Set(archived?.columns ?? []),
  };
}

/** Row counts of every real table (for a database that is not ai-memory's). */
export function tableCounts(db: MemorySql, schema: DatabaseSchema): { table: string; rows: number }[] {
  return schema.tables.map((t) => {
    const n = db.all(`SELECT count(*) FROM ${quoteId(t.name)}`)[0]?.[0];
    return { table: t.name, rows: typeof n === 'number' ? n : 0 };
  });
}
