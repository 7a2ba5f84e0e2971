/**
 * Compares the memories of two databases ("from" = older side, usually a snapshot; "to" =
 * newer side, another snapshot or the current database).
 *
 * One pass over each side keeps, per memory, the content fingerprint and the fields a
 * recall writes; only memories whose fingerprint differs are read again (by id) to name the
 * fields that changed. Same id on both sides:
 *  - fingerprint differs → edited, with the content fields that differ;
 *  - `tier` differs and is not a recall promotion (`mid` → `long` while access_count grew to
 *    ≥ 5) → edited (tier);
 *  - `priority` differs by more than the recalls in between explain (+1 per multiple of 10
 *    that access_count passed, at most 10) → edited (priority);
 *  - `updated_at` alone changed without a promotion → edited (updated_at);
 *  - otherwise a change of access_count / last_accessed_at / expires_at (and the explained
 *    tier/priority/updated_at) is recall-only: counted, never listed as an edit.
 * A memory only on the "from" side was deleted, or archived when the "to" side has it in
 * `archived_memories` (with the reason). Different schema versions: only the columns both
 * sides have are compared, and the result says so.
 */
import { comparable, CONTENT_FIELDS, contentFingerprint, memoryById, selectList, toRecord, type MemoryRecord } from './records';
import { LINK_FIELDS, readSchema, type DatabaseSchema, type MemoryField } from './schema';
import type { MemorySql, SqlValue } from './source';
import { BackupError } from '../common/errors';

export interface MemorySummary {
  id: string;
  title: string;
  namespace: string;
  tier: string;
}

export interface RemovedMemory extends MemorySummary {
  how: 'deleted' | 'archived';
  archive_reason?: string;
  archived_at?: string;
}

export interface EditedMemory extends MemorySummary {
  fields: string[];
}

export interface LinkKey {
  source_id: string;
  target_id: string;
  relation: string;
  created_at: string | null;
}

export interface SideInfo {
  label: string;
  memories: number;
  schema_version?: number;
}

export interface Comparison {
  from: SideInfo;
  to: SideInfo;
  schema: {
    same: boolean;
    /** Memory fields compared (the ones both sides have). */
    compared_fields: string[];
    only_in_from: string[];
    only_in_to: string[];
    note?: string;
  };
  added: MemorySummary[];
  removed: RemovedMemory[];
  edited: EditedMemory[];
  /** Memories whose only changes are what recalls write. */
  recall_only: number;
  unchanged: number;
  links_added: LinkKey[];
  links_removed: LinkKey[];
}

interface Slim {
  fp: string;
  title: string;
  namespace: string;
  tier: string | null;
  priority: number | null;
  access: number | null;
  updated: string | null;
  lastAccessed: string | null;
  expires: string | null;
}

function slim(m: MemoryRecord, fields: Set<MemoryField>): Slim {
  return {
    fp: contentFingerprint(m, fields),
    title: m.title ?? '',
    namespace: m.namespace ?? '',
    tier: m.tier,
    priority: m.priority,
    access: m.access_count,
    updated: m.updated_at,
    lastAccessed: m.last_accessed_at,
    expires: m.expires_at,
  };
}

/** Memories a cursor holds at a time. */
const PAGE_ROWS = 1000;

/**
 * SQLite's order of `id` (BINARY collation: the UTF-8 bytes), which JavaScript's `<` on
 * UTF-16 code units does not always follow (characters above U+FFFF against U+E000–U+FFFF).
 */
function compareIds(a: string, b: string): number {
  if (a === b) return 0;
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

/**
 * One side's memories in id order, a page at a time (keyset pagination on ai-memory's
 * primary key), so a comparison holds a page of each side, not both sides whole: memory
 * stays flat whatever the number of memories.
 */
class MemoryCursor {
  private page: [string, Slim][] = [];
  private at = 0;
  private last: string | undefined;
  private exhausted = false;
  count = 0;

  constructor(
    private readonly db: MemorySql,
    private readonly fields: Set<MemoryField>,
  ) {}

  peek(): [string, Slim] | undefined {
    if (this.at >= this.page.length && !this.exhausted) this.fill();
    return this.page[this.at];
  }

  advance(): void {
    this.at++;
    this.count++;
  }

  private fill(): void {
    this.page = [];
    this.at = 0;
    const where = this.last === undefined ? '' : 'WHERE id > ? ';
    this.db.each(`SELECT ${selectList(this.fields)} FROM memories ${where}ORDER BY id LIMIT ${PAGE_ROWS}`, this.last === undefined ? [] : [this.last], (r) => {
      const m = toRecord(r);
      this.page.push([m.id, slim(m, this.fields)]);
    });
    if (this.page.length < PAGE_ROWS) this.exhausted = true;
    if (this.page.length) this.last = this.page[this.page.length - 1][0];
  }
}

function linkMap(db: MemorySql, schema: DatabaseSchema): Map<string, LinkKey> {
  const out = new Map<string, LinkKey>();
  if (!schema.hasLinks) return out;
  const s = (v: SqlValue): string | null => (v === null ? null : v instanceof Uint8Array ? Buffer.from(v).toString('utf8') : String(v));
  db.each(`SELECT ${LINK_FIELDS.join(', ')} FROM memory_links`, [], (r) => {
    const l: LinkKey = { source_id: s(r[0]) ?? '', target_id: s(r[1]) ?? '', relation: s(r[2]) ?? '', created_at: s(r[3]) };
    out.set(`${l.source_id}\u0000${l.target_id}\u0000${l.relation}`, l);
  });
  return out;
}

/** Recalls between the two sides can explain this tier/priority/updated_at change. */
function judge(a: Slim, b: Slim, fields: Set<MemoryField>): { edited: string[]; noise: boolean } {
  const edited: string[] = [];
  const acA = a.access ?? 0;
  const acB = b.access ?? 0;
  const promoted = fields.has('tier') && a.tier === 'mid' && b.tier === 'long' && acB > acA && acB >= 5;
  if (fields.has('tier') && a.tier !== b.tier && !promoted) edited.push('tier');
  if (fields.has('priority') && a.priority !== b.priority) {
    const tens = Math.max(0, Math.floor(acB / 10) - Math.floor(acA / 10));
    const pa = a.priority ?? 0;
    const pb = b.priority ?? 0;
    const explained = pb > pa && pb <= 10 && (pb - pa <= tens);
    if (!explained) edited.push('priority');
  }
  const updatedChanged = fields.has('updated_at') && a.updated !== b.updated;
  const noise = a.access !== b.access || a.lastAccessed !== b.lastAccessed || a.expires !== b.expires || promoted || a.priority !== b.priority;
  if (updatedChanged && !promoted && edited.length === 0) edited.push('updated_at');
  return { edited, noise: noise || (updatedChanged && promoted) };
}

function contentFieldsThatDiffer(a: MemoryRecord | undefined, b: MemoryRecord | undefined, fields: Set<MemoryField>): string[] {
  if (!a || !b) return ['content'];
  return CONTENT_FIELDS.filter((f) => fields.has(f) && comparable(a, f) !== comparable(b, f));
}

function summary(id: string, s: Slim): MemorySummary {
  return { id, title: s.title, namespace: s.namespace, tier: s.tier ?? '' };
}

const byPlace = (x: MemorySummary, y: MemorySummary): number => x.namespace.localeCompare(y.namespace) || x.title.localeCompare(y.title) || x.id.localeCompare(y.id);

export function compareDatabases(from: MemorySql, to: MemorySql): Comparison {
  const sa = readSchema(from);
  const sb = readSchema(to);
  for (const [s, db] of [[sa, from], [sb, to]] as const) {
    if (s.kind !== 'ai-memory') {
      throw new BackupError('NOT_AI_MEMORY', `${db.label} is not an ai-memory database (no memories table with id, tier, namespace, title, content).`, {
        hint: 'Compare two ai-memory snapshots, or a snapshot with the current database.',
      });
    }
  }
  const fields = new Set([...sa.memoryFields].filter((f) => sb.memoryFields.has(f)));
  const onlyFrom = [...sa.memoryFields].filter((f) => !sb.memoryFields.has(f));
  const onlyTo = [...sb.memoryFields].filter((f) => !sa.memoryFields.has(f));
  const same = sa.schemaVersion === sb.schemaVersion && onlyFrom.length === 0 && onlyTo.length === 0;
  const result: Comparison = {
    from: { label: from.label, memories: 0, schema_version: sa.schemaVersion },
    to: { label: to.label, memories: 0, schema_version: sb.schemaVersion },
    schema: {
      same,
      compared_fields: [...fields],
      only_in_from: onlyFrom,
      only_in_to: onlyTo,
      note: same ? undefined : `schema versions differ (${sa.schemaVersion ?? '?'} → ${sb.schemaVersion ?? '?'}): only the columns both sides have were compared`,
    },
    added: [],
    removed: [],
    edited: [],
    recall_only: 0,
    unchanged: 0,
    links_added: [],
    links_removed: [],
  };
  const removed = (id: string, x: Slim): void => {
    const r: RemovedMemory = { ...summary(id, x), how: 'deleted' };
    if (sb.hasArchived) {
      const cols = ['archive_reason', 'archived_at'].map((c) => (sb.archivedColumns.has(c) ? c : 'NULL')).join(', ');
      to.each(`SELECT ${cols} FROM archived_memories WHERE id = ? LIMIT 1`, [id], (row) => {
        r.how = 'archived';
        if (row[0] !== null) r.archive_reason = String(row[0]);
        if (row[1] !== null) r.archived_at = String(row[1]);
        return false;
      });
    }
    result.removed.push(r);
  };
  const both = (id: string, x: Slim, y: Slim): void => {
    const j = judge(x, y, fields);
    const edited = x.fp === y.fp ? [] : contentFieldsThatDiffer(memoryById(from, fields, id), memoryById(to, fields, id), fields);
    for (const f of j.edited) if (f !== 'updated_at' || edited.length === 0) edited.push(f);
    if (edited.length) result.edited.push({ ...summary(id, y), fields: edited });
    else if (j.noise) result.recall_only++;
    else result.unchanged++;
  };
  // A merge of the two sides in id order (see MemoryCursor).
  const ca = new MemoryCursor(from, fields);
  const cb = new MemoryCursor(to, fields);
  for (;;) {
    const x = ca.peek();
    const y = cb.peek();
    if (!x && !y) break;
    const c = !x ? 1 : !y ? -1 : compareIds(x[0], y[0]);
    if (c < 0 && x) {
      removed(x[0], x[1]);
      ca.advance();
    } else if (c > 0 && y) {
      result.added.push(summary(y[0], y[1]));
      cb.advance();
    } else if (x && y) {
      both(x[0], x[1], y[1]);
      ca.advance();
      cb.advance();
    }
  }
  result.from.memories = ca.count;
  result.to.memories = cb.count;
  result.added.sort(byPlace);
  result.removed.sort(byPlace);
  result.edited.sort(byPlace);
  const la = linkMap(from, sa);
  const lb = linkMap(to, sb);
  for (const [k, l] of lb) if (!la.has(k)) result.links_added.push(l);
  for (const [k, l] of la) if (!lb.has(k)) result.links_removed.push(l);
  return result;
}

/** `+3 −1 ~2` — what the Snapshots view shows next to the count. */
export function changeSummary(c: Pick<Comparison, 'added' | 'removed' | 'edited'>): string {
  return `+${c.added.length} −${c.removed.length} ~${c.edited.length}`;
}
