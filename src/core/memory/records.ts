/**
 * Memory rows as the memory code sees them, and the two things derived from one row:
 * its content fingerprint (what a recall never changes) and the raw fields a recall does.
 *
 * Recall noise (FACTS.md): every recall rewrites `access_count`, `last_accessed_at` and
 * (short/mid) `expires_at`; at 5 accesses a `mid` memory becomes `long` with
 * `expires_at = NULL` and `updated_at` = the recall time; every 10th access raises
 * `priority` by 1 (at most 10). So the fingerprint covers exactly the fields a recall
 * never writes — id, namespace, title, content, tags, confidence, source, created_at,
 * metadata — and the rest is judged pairwise in compare.ts, where a recall can be told
 * from an edit.
 */
import { hash } from 'node:crypto';
import { JsonInteger, parseExact } from './exactJson';
import { EXPORT_FIELDS, quoteId, type MemoryField } from './schema';
import type { MemorySql, SqlValue } from './source';

export interface MemoryRecord {
  id: string;
  tier: string | null;
  namespace: string | null;
  title: string | null;
  content: string | null;
  /** JSON text as stored. */
  tags: string | null;
  priority: number | null;
  confidence: number | null;
  source: string | null;
  access_count: number | null;
  created_at: string | null;
  updated_at: string | null;
  last_accessed_at: string | null;
  expires_at: string | null;
  /** JSON text as stored. */
  metadata: string | null;
}

/** Fields a recall never writes: a change in one of them is an edit. */
export const CONTENT_FIELDS: readonly MemoryField[] = ['id', 'namespace', 'title', 'content', 'tags', 'confidence', 'source', 'created_at', 'metadata'];
/** Fields a recall always may write. */
export const RECALL_FIELDS: readonly MemoryField[] = ['access_count', 'last_accessed_at', 'expires_at'];
/** Fields a recall writes only in the ways described above (judged pairwise). */
export const CONDITIONAL_FIELDS: readonly MemoryField[] = ['tier', 'priority', 'updated_at'];

/** `SELECT` list of every export field, NULL for a column this database lacks. */
export function selectList(fields: Set<MemoryField>, alias?: string): string {
  const col = alias ? (f: MemoryField) => `${alias}.${quoteId(f)}` : quoteId;
  return EXPORT_FIELDS.map((f) => (fields.has(f) ? col(f) : 'NULL')).join(', ');
}

/** A column's value as text (a BLOB as UTF-8), or null. */
export function text(v: SqlValue | undefined): string | null {
  if (v === null || v === undefined) return null;
  if (v instanceof Uint8Array) return Buffer.from(v).toString('utf8');
  return String(v);
}

function num(v: SqlValue | undefined): number | null {
  if (v === null || v === undefined) return null;
  if (typeof v === 'number') return v;
  const n = Number(text(v));
  return Number.isFinite(n) ? n : null;
}

/** A row of {@link selectList} as a record. */
export function toRecord(r: SqlValue[]): MemoryRecord {
  return {
    id: text(r[0]) ?? '',
    tier: text(r[1]),
    namespace: text(r[2]),
    title: text(r[3]),
    content: text(r[4]),
    tags: text(r[5]),
    priority: num(r[6]),
    confidence: num(r[7]),
    source: text(r[8]),
    access_count: num(r[9]),
    created_at: text(r[10]),
    updated_at: text(r[11]),
    last_accessed_at: text(r[12]),
    expires_at: text(r[13]),
    metadata: text(r[14]),
  };
}

/** Every memory, in table order (one pass, no sort: bounded by the table's size). */
export function eachMemory(db: MemorySql, fields: Set<MemoryField>, onRecord: (m: MemoryRecord) => void): void {
  db.each(`SELECT ${selectList(fields)} FROM memories`, [], (r) => {
    onRecord(toRecord(r));
  });
}

/** One memory by id (an index lookup on ai-memory's primary key); `schema`: an attached database's name. */
export function memoryById(db: MemorySql, fields: Set<MemoryField>, id: string, schema = 'main'): MemoryRecord | undefined {
  let found: MemoryRecord | undefined;
  db.each(`SELECT ${selectList(fields)} FROM ${schema}.memories WHERE id = ? LIMIT 1`, [id], (r) => {
    found = toRecord(r);
    return false;
  });
  return found;
}

function stable(v: unknown): string {
  if (v instanceof JsonInteger) return v.digits; // beyond 2^53: as written, never rounded
  if (Array.isArray(v)) {
    // Tags: an array of strings, whose JSON text is already canonical (the common case, fast).
    if (v.every((x) => typeof x !== 'object' || x === null)) return JSON.stringify(v);
    return `[${v.map(stable).join(',')}]`;
  }
  if (v && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    return `{${Object.keys(o).sort().map((k) => `${JSON.stringify(k)}:${stable(o[k])}`).join(',')}}`;
  }
  return JSON.stringify(v) ?? 'null';
}

/**
 * A compact JSON array of plain strings (no escapes, no control characters, no lone
 * surrogates): JSON.stringify(JSON.parse(raw)) gives `raw` back, so it is already
 * canonical. ai-memory's tags are such arrays; testing costs no allocation, where parsing
 * them for every memory was a third of the time the facts of a large database took.
 * (A memo of texts seen was tried: its entries outlive scavenges, and V8 then grows the
 * young generation to its maximum, +20 MB of peak RSS.)
 */
// Control characters are exactly what must be excluded: JSON escapes them.
// eslint-disable-next-line no-control-regex
const CANONICAL_STRING_ARRAY = /^\[(?:"[^"\\\u0000-\u001f\ud800-\udfff]*"(?:,"[^"\\\u0000-\u001f\ud800-\udfff]*")*)?\]$/;

/** One `"key":value` pair of a flat object: a plain string (as above), true, false or null. */
// eslint-disable-next-line no-control-regex
const FLAT_PAIR = /"([^"\\\u0000-\u001f\ud800-\udfff]*)":(?:"[^"\\\u0000-\u001f\ud800-\udfff]*"|true|false|null)/y;

/**
 * A compact flat JSON object of such pairs whose keys strictly ascend in UTF-16 order (the
 * order `stable` sorts them into): already canonical. serde_json writes ai-memory's
 * metadata with its keys sorted, so this is the common case there.
 */
function isCanonicalFlatObject(raw: string): boolean {
  if (raw.length < 2 || raw[0] !== '{' || raw[raw.length - 1] !== '}') return false;
  let at = 1;
  let prev: string | undefined;
  for (;;) {
    FLAT_PAIR.lastIndex = at;
    const m = FLAT_PAIR.exec(raw);
    if (!m) return false;
    if (prev !== undefined && !(prev < m[1])) return false;
    prev = m[1];
    at = FLAT_PAIR.lastIndex;
    if (raw[at] === '}') return at === raw.length - 1;
    if (raw[at] !== ',') return false;
    at++;
  }
}

/**
 * JSON text in a canonical form (keys sorted, no spaces), so that a metadata object whose
 * keys came back in another order (an export → import round trip) is the same metadata.
 * Text that is not JSON stays as it is, marked so it never equals a JSON value.
 */
export function canonicalJson(raw: string | null): string | null {
  if (raw === null) return null;
  if (raw === '{}' || CANONICAL_STRING_ARRAY.test(raw) || isCanonicalFlatObject(raw)) return raw;
  try {
    return stable(parseExact(raw));
  } catch {
    return `\u0000${raw}`; // not JSON (or nested deeper than the stack): compared as text
  }
}

/** The value of a field as compared: JSON fields canonical, everything else as is. */
export function comparable(m: MemoryRecord, f: MemoryField): string | number | null {
  if (f === 'tags' || f === 'metadata') return canonicalJson(m[f]);
  return m[f];
}

/**
 * Values written one after another without ambiguity (a type byte, then a 4-byte length and
 * the UTF-8 bytes, or 8 bytes of a number) into one buffer that is reused from row to row:
 * the input of one SHA-256 per memory. Before, each memory was turned into a JSON text and
 * hashed twice; at 92,000 memories that took 3 s of the 4 s the facts took.
 */
class FieldEncoder {
  private buf = Buffer.allocUnsafe(1 << 14);
  private at = 0;

  reset(): this {
    this.at = 0;
    return this;
  }

  private room(n: number): void {
    if (this.buf.length - this.at >= n) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.at + n));
    this.buf.copy(next, 0, 0, this.at);
    this.buf = next;
  }

  value(v: string | number | null): this {
    if (v === null) {
      this.room(1);
      this.buf[this.at++] = 0;
    } else if (typeof v === 'number') {
      this.room(9);
      this.buf[this.at] = 1;
      this.buf.writeDoubleBE(v, this.at + 1);
      this.at += 9;
    } else {
      this.room(5 + v.length * 3); // UTF-8 takes at most 3 bytes per UTF-16 code unit
      this.buf[this.at] = 2;
      const n = this.buf.write(v, this.at + 5, 'utf8');
      this.buf.writeUInt32BE(n, this.at + 1);
      this.at += 5 + n;
    }
    return this;
  }

  /** A view of what was written since the last reset (valid until the next write). */
  view(): Buffer {
    return this.buf.subarray(0, this.at);
  }
}

const encoder = new FieldEncoder();

/** Encodes the fields a recall never writes (restricted to `fields`), then `extra`; a view valid until the next call. */
export function contentEncoding(m: MemoryRecord, fields: Set<MemoryField>, extra?: string): Buffer {
  encoder.reset();
  for (const f of CONTENT_FIELDS) encoder.value(fields.has(f) ? comparable(m, f) : null);
  if (extra !== undefined) encoder.value(extra);
  return encoder.view();
}

/** `SELECT` list of the content fields (CONTENT_FIELDS order), then `tier`: all the facts read of a memory. */
export function contentSelectList(fields: Set<MemoryField>): string {
  return [...CONTENT_FIELDS, 'tier' as const].map((f) => (fields.has(f) ? quoteId(f) : 'NULL')).join(', ');
}

/** A field's value as {@link comparable} gives it, straight from a row's value (no record built). */
function comparableValue(f: MemoryField, v: SqlValue): string | number | null {
  if (f === 'id') return text(v) ?? '';
  if (f === 'confidence') return num(v);
  if (f === 'tags' || f === 'metadata') return canonicalJson(text(v));
  return text(v);
}

/**
 * {@link contentEncoding} of a row of {@link contentSelectList}, then its tier class: the
 * same bytes as through a record, without making one (the facts of a large database read
 * every memory, and half their time went to building records).
 */
export function contentEncodingOfRow(r: SqlValue[], fields: Set<MemoryField>): Buffer {
  encoder.reset();
  for (let j = 0; j < CONTENT_FIELDS.length; j++) {
    const f = CONTENT_FIELDS[j];
    encoder.value(fields.has(f) ? comparableValue(f, r[j]) : null);
  }
  encoder.value(tierClass(text(r[CONTENT_FIELDS.length])));
  return encoder.view();
}

/** SHA-256 (base64) of the fields a recall never writes (restricted to `fields`, for a comparison across schema versions). */
export function contentFingerprint(m: MemoryRecord, fields: Set<MemoryField>): string {
  return hash('sha256', contentEncoding(m, fields), 'base64');
}

/** `short` stays itself; `mid` and `long` are one class, since a recall promotes one to the other. */
export function tierClass(tier: string | null): string {
  return tier === 'mid' || tier === 'long' ? 'mid|long' : String(tier);
}

/** The top-level part of a namespace (`proj/a/b` → `proj`). */
export function topNamespace(ns: string | null): string {
  const s = ns ?? '';
  const i = s.indexOf('/');
  return i === -1 ? s : s.slice(0, i);
}
