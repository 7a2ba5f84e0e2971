/**
 * Compares the memories of two databases ("from" = older side, usually a snapshot; "to" =
 * newer side, another snapshot or the current database).
 *
 * The two files are joined inside SQLite (the "to" side attached to the "from" side's
 * connection, both read lazily from disk): a memory whose compared fields are all equal
 * never leaves SQLite, so memory stays flat and time goes to reading pages, not to
 * JavaScript objects (a 500 MB pair: 18 s and 141 MB with a merge of both sides in
 * JavaScript). The rows that differ in any field come out and are judged here, with the
 * content fingerprint (canonical JSON: a metadata key-order change is no edit). Same id on
 * both sides:
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
import { comparable, CONTENT_FIELDS, contentFingerprint, memoryById, selectList, text, toRecord, type MemoryRecord } from './records';
import { EXPORT_FIELDS, LINK_FIELDS, quoteId, readSchema, type MemoryField } from './schema';
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

/** The schema name the "to" side is attached as. */
const TO = 'cmp_to';

function linkOf(r: SqlValue[]): LinkKey {
  return { source_id: text(r[0]) ?? '', target_id: text(r[1]) ?? '', relation: text(r[2]) ?? '', created_at: text(r[3]) };
}

/**
 * Links of `side` that the other side lacks with the same (source_id, target_id, relation)
 * AND created_at; all of them when it has no links table. A link made again (same ends and
 * relation, another time) is one removed and one added: the facts digest covers the time
 * too, and "no change" here must mean the same digest.
 */
function linksOnlyIn(db: MemorySql, side: string, other: string, otherHasLinks: boolean): LinkKey[] {
  const out: LinkKey[] = [];
  const cols = LINK_FIELDS.map((f) => `l.${f}`).join(', ');
  const missing = otherHasLinks
    ? ` WHERE NOT EXISTS (SELECT 1 FROM ${other}.memory_links k WHERE k.source_id = l.source_id AND k.target_id = l.target_id AND k.relation = l.relation AND k.created_at IS l.created_at COLLATE BINARY)`
    : '';
  db.each(`SELECT ${cols} FROM ${side}.memory_links l${missing}`, [], (r) => {
    out.push(linkOf(r));
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

function contentFieldsThatDiffer(a: MemoryRecord, b: MemoryRecord, fields: Set<MemoryField>): string[] {
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
  const fieldList = [...fields];
  return from.withAttached(to, TO, () => {
    const count = (schema: string): number => {
      const n = from.all(`SELECT count(*) FROM ${schema}.memories`)[0]?.[0];
      return typeof n === 'number' ? n : 0;
    };
    // Ids on one side only: a scan of one side's primary-key index, a lookup in the other's.
    const onlyIn = (side: string, other: string): string[] => {
      const ids: string[] = [];
      from.each(`SELECT a.id FROM ${side}.memories a WHERE NOT EXISTS (SELECT 1 FROM ${other}.memories b WHERE b.id = a.id)`, [], (r) => {
        ids.push(text(r[0]) ?? '');
      });
      return ids;
    };
    for (const id of onlyIn('main', TO)) {
      const x = memoryById(from, fields, id);
      if (!x) continue;
      const r: RemovedMemory = { ...summary(id, slim(x, fields)), how: 'deleted' };
      if (sb.hasArchived) {
        const cols = ['archive_reason', 'archived_at'].map((c) => (sb.archivedColumns.has(c) ? c : 'NULL')).join(', ');
        from.each(`SELECT ${cols} FROM ${TO}.archived_memories WHERE id = ? LIMIT 1`, [id], (row) => {
          r.how = 'archived';
          if (row[0] !== null) r.archive_reason = String(row[0]);
          if (row[1] !== null) r.archived_at = String(row[1]);
          return false;
        });
      }
      result.removed.push(r);
    }
    for (const id of onlyIn(TO, 'main')) {
      const y = memoryById(from, fields, id, TO);
      if (y) result.added.push(summary(id, slim(y, fields)));
    }
    // Same id, any compared field different (BINARY: byte for byte, whatever a column's
    // declared collation); equal rows are unchanged and never leave SQLite.
    const differs = fieldList.map((f) => `a.${quoteId(f)} IS NOT b.${quoteId(f)} COLLATE BINARY`).join(' OR ');
    let pairs = 0;
    let judgedUnchanged = 0;
    const n = EXPORT_FIELDS.length;
    from.each(
      `SELECT ${selectList(fields, 'a')}, ${selectList(fields, 'b')} FROM main.memories a JOIN ${TO}.memories b ON b.id = a.id WHERE ${differs || '0'}`,
      [],
      (r) => {
        pairs++;
        const x = toRecord(r.slice(0, n));
        const y = toRecord(r.slice(n));
        const sx = slim(x, fields);
        const sy = slim(y, fields);
        const j = judge(sx, sy, fields);
        const edited = sx.fp === sy.fp ? [] : contentFieldsThatDiffer(x, y, fields);
        for (const f of j.edited) if (f !== 'updated_at' || edited.length === 0) edited.push(f);
        if (edited.length) result.edited.push({ ...summary(x.id, sy), fields: edited });
        else if (j.noise) result.recall_only++;
        else judgedUnchanged++;
      },
    );
    result.from.memories = count('main');
    result.to.memories = count(TO);
    result.unchanged = result.from.memories - result.removed.length - pairs + judgedUnchanged;
    result.added.sort(byPlace);
    result.removed.sort(byPlace);
    result.edited.sort(byPlace);
    if (sb.hasLinks) result.links_added = linksOnlyIn(from, TO, 'main', sa.hasLinks);
    if (sa.hasLinks) result.links_removed = linksOnlyIn(from, 'main', TO, sb.hasLinks);
    return result;
  });
}

/** `+3 −1 ~2` — what the Snapshots view shows next to the count. */
export function changeSummary(c: Pick<Comparison, 'added' | 'removed' | 'edited'>): string {
  return `+${c.added.length} −${c.removed.length} ~${c.edited.length}`;
}
