/**
 * Memories out of a snapshot, as ai-memory's `import` reads them: exactly the shape
 * `ai-memory export` prints (FACTS.md) — `{"memories":[…],"links":[…],"count":N,
 * "exported_at":…}` — with the links among the chosen memories and from them to memories
 * that exist now. We never write the live database; `ai-memory import` does, through the
 * server's own validation.
 */
import { BackupError } from '../common/errors';
import { parseExact, stringifyExact } from './exactJson';
import { eachMemory, memoryById, type MemoryRecord } from './records';
import { LINK_FIELDS, readSchema, type DatabaseSchema } from './schema';
import type { MemorySql, SqlValue } from './source';

export interface ExportMemory {
  id: string;
  tier: string;
  namespace: string;
  title: string;
  content: string;
  tags: string[];
  priority: number;
  confidence: number;
  source: string;
  access_count: number;
  created_at: string;
  updated_at: string;
  last_accessed_at?: string;
  expires_at?: string;
  metadata: Record<string, unknown>;
}

export interface ExportLink {
  source_id: string;
  target_id: string;
  relation: string;
  created_at: string;
}

export interface ExportDocument {
  memories: ExportMemory[];
  links: ExportLink[];
  count: number;
  exported_at: string;
}

export type Selection =
  | { ids: string[] }
  | { namespace: string }
  /** Every memory of the snapshot that the given database no longer has. */
  | { removedSince: MemorySql };

export interface ExtractOptions {
  /** Where links may point besides the chosen memories: the memories that exist now. */
  current?: MemorySql;
  now?: Date;
}

export interface ExtractResult {
  document: ExportDocument;
  /** Ids asked for that the snapshot does not have. */
  missing: string[];
  /** Memories whose `expires_at` had passed: written without it, so gc does not take them again at once. */
  expiryCleared: string[];
  /**
   * Memories written whose title and namespace another memory holds now (its id and title, and that one's id):
   * ai-memory's import matches on them, so 0.x overwrites that memory and 1.0 (its default
   * `--on-conflict version`) adds "title (2)". Also said in `warnings`.
   */
  titleClashes: { id: string; title: string; current: string }[];
  warnings: string[];
}

function s(v: SqlValue): string {
  return v instanceof Uint8Array ? Buffer.from(v).toString('utf8') : v === null ? '' : String(v);
}

/** RFC 3339 like chrono's `to_rfc3339()` (what ai-memory writes). */
function rfc3339(d: Date): string {
  return d.toISOString().replace('Z', '+00:00');
}

function memoryIds(db: MemorySql): Set<string> {
  const ids = new Set<string>();
  db.each('SELECT id FROM memories', [], (r) => {
    ids.add(s(r[0]));
  });
  return ids;
}

function requireAiMemory(db: MemorySql, schema: DatabaseSchema): void {
  if (schema.kind !== 'ai-memory') {
    throw new BackupError('NOT_AI_MEMORY', `${db.label} is not an ai-memory database (no memories table with id, tier, namespace, title, content).`);
  }
}

/**
 * `m` is read without its content (the bulk of a memory: a large extract held every one, and
 * one string of the whole document passed V8's 512 MB limit); `content` reads it when the
 * memory is written ({@link exportDocumentText}), so one memory's content is in memory at a time.
 */
function toExport(m: MemoryRecord, content: () => string, now: number, warnings: string[], cleared: string[]): ExportMemory {
  let tags: string[] = [];
  try {
    const t: unknown = parseExact(m.tags ?? '[]');
    if (Array.isArray(t)) tags = t.map((x) => (typeof x === 'string' ? x : stringifyExact(x)));
    else warnings.push(`memory ${m.id}: tags are not a JSON array; written as []`);
  } catch {
    warnings.push(`memory ${m.id}: tags are not valid JSON; written as []`);
  }
  let metadata: Record<string, unknown> = {};
  try {
    // Integers past 2^53 (serde_json keeps 64 bits) as written: write the document with stringifyExact.
    // Float literals with a whole-number value (1.0) too: serde_json reads `1` as another type.
    const o: unknown = parseExact(m.metadata ?? '{}', { floats: true });
    if (o && typeof o === 'object' && !Array.isArray(o)) metadata = o as Record<string, unknown>;
    else warnings.push(`memory ${m.id}: metadata is not a JSON object; written as {}`);
  } catch {
    warnings.push(`memory ${m.id}: metadata is not valid JSON; written as {}`);
  }
  const created = m.created_at ?? rfc3339(new Date(now));
  const out: ExportMemory = {
    id: m.id,
    tier: m.tier ?? 'mid',
    namespace: m.namespace ?? 'global',
    title: m.title ?? '',
    get content() {
      return content();
    },
    tags,
    priority: m.priority ?? 5,
    confidence: m.confidence ?? 1,
    source: m.source ?? 'api',
    access_count: m.access_count ?? 0,
    created_at: created,
    updated_at: m.updated_at ?? created,
    metadata,
  };
  if (m.last_accessed_at !== null) out.last_accessed_at = m.last_accessed_at;
  if (m.expires_at !== null) {
    const t = Date.parse(m.expires_at);
    // A memory brought back with an expiry already past would be expired again by the
    // next gc — the very loss being undone. Said in the result, never silent.
    if (Number.isFinite(t) && t <= now) cleared.push(m.id);
    else out.expires_at = m.expires_at;
  }
  return out;
}

/**
 * A namespace selection that can match no memory by its form (empty, or spaces only: ai-memory
 * stores `global` for a memory without one) is refused instead of writing an empty export.
 */
export function checkNamespaceSelection(ns: string): void {
  if (ns.trim() === '') {
    throw new BackupError('USAGE', `--namespace ${JSON.stringify(ns)} selects no memory: every memory has a namespace (ai-memory stores "global" for one given none). Nothing was written.`, {
      hint: 'Pass a namespace as it is stored: --namespace proj takes proj and proj/…, --namespace global the memories saved without one (`inspect --from SNAPSHOT` counts them by namespace).',
    });
  }
}

export function extractMemories(snapshot: MemorySql, selection: Selection, opts: ExtractOptions = {}): ExtractResult {
  if ('namespace' in selection) checkNamespaceSelection(selection.namespace);
  const schema = readSchema(snapshot);
  requireAiMemory(snapshot, schema);
  const now = (opts.now ?? new Date()).getTime();
  const warnings: string[] = [];
  const expiryCleared: string[] = [];
  const missing: string[] = [];
  const chosen: MemoryRecord[] = [];
  // Every field but the content (read as each memory is written: see toExport).
  const fields = new Set([...schema.memoryFields].filter((f) => f !== 'content'));
  const contentOf = (id: string): string => {
    let c = '';
    if (schema.memoryFields.has('content')) {
      snapshot.each('SELECT content FROM memories WHERE id = ? LIMIT 1', [id], (r) => {
        c = s(r[0]);
        return false;
      });
    }
    return c;
  };
  let current: Set<string> | undefined;
  if (opts.current) {
    requireAiMemory(opts.current, readSchema(opts.current));
    current = memoryIds(opts.current);
  }
  if ('ids' in selection) {
    for (const id of new Set(selection.ids)) {
      const m = memoryById(snapshot, fields, id);
      if (m) chosen.push(m);
      else missing.push(id);
    }
  } else if ('namespace' in selection) {
    const ns = selection.namespace;
    eachMemory(snapshot, fields, (m) => {
      if (m.namespace === ns || (m.namespace ?? '').startsWith(`${ns}/`)) chosen.push(m);
    });
  } else {
    const db = selection.removedSince;
    requireAiMemory(db, readSchema(db));
    const present = db === opts.current && current ? current : memoryIds(db);
    eachMemory(snapshot, fields, (m) => {
      if (!present.has(m.id)) chosen.push(m);
    });
  }
  chosen.sort((x, y) => (x.created_at ?? '').localeCompare(y.created_at ?? '') || x.id.localeCompare(y.id));
  const ids = new Set(chosen.map((m) => m.id));
  const links: ExportLink[] = [];
  let droppedLinks = 0;
  if (schema.hasLinks && ids.size) {
    snapshot.each(`SELECT ${LINK_FIELDS.join(', ')} FROM memory_links`, [], (r) => {
      const l: ExportLink = { source_id: s(r[0]), target_id: s(r[1]), relation: s(r[2]) || 'related_to', created_at: s(r[3]) };
      const src = ids.has(l.source_id);
      const dst = ids.has(l.target_id);
      if (!src && !dst) return;
      const ok = (src || current?.has(l.source_id)) && (dst || current?.has(l.target_id));
      if (ok) links.push(l);
      else droppedLinks++;
    });
  }
  if (droppedLinks) {
    warnings.push(
      current
        ? `${droppedLinks} link${droppedLinks === 1 ? '' : 's'} to memories that exist neither in the selection nor now were left out`
        : `${droppedLinks} link${droppedLinks === 1 ? '' : 's'} to memories outside the selection were left out (give the current database to keep links to memories that exist now)`,
    );
  }
  // ai-memory 1.0's import skips ids it has archived (FACTS.md): such a memory is in the file,
  // but `ai-memory import` will not bring it back. Said, never silent.
  const archivedIn = 'removedSince' in selection ? selection.removedSince : opts.current;
  if (archivedIn && ids.size) {
    const s2 = readSchema(archivedIn);
    if (s2.hasArchived) {
      const archived: string[] = [];
      archivedIn.each('SELECT id FROM archived_memories', [], (r) => {
        if (ids.has(s(r[0]))) archived.push(s(r[0]));
      });
      if (archived.length) {
        warnings.push(
          `${archived.length} of these memories ${archived.length === 1 ? 'is' : 'are'} archived in the current database (archived_memories: ${archived.slice(0, 5).join(', ')}${archived.length > 5 ? ', …' : ''}); ai-memory's import skips archived ids, so it will not bring ${archived.length === 1 ? 'it' : 'them'} back — restore ${archived.length === 1 ? 'it' : 'them'} from ai-memory's archive instead`,
        );
      }
    }
  }
  // ai-memory's import matches a memory on (title, namespace), not on its id (FACTS.md,
  // test/support's stand-in): one whose title another memory holds now in that namespace (a
  // memory deleted, then written again under the same title) would overwrite that current
  // memory (0.x: upsert) or come back as "title (N)" (1.0's default). Said, naming both.
  const titleClashes: { id: string; title: string; current: string }[] = [];
  if (archivedIn && ids.size) {
    // And the same memory (its id) under another title or namespace now: the import finds no
    // memory of the old title there and adds one, with an id that exists — which fails.
    const moved: string[] = [];
    for (const m of chosen) {
      archivedIn.each('SELECT id FROM memories WHERE title = ? AND namespace = ? AND id <> ? LIMIT 1', [m.title ?? '', m.namespace ?? 'global', m.id], (r) => {
        titleClashes.push({ id: m.id, title: m.title ?? '', current: s(r[0]) });
        return false;
      });
      archivedIn.each('SELECT title, namespace FROM memories WHERE id = ? LIMIT 1', [m.id], (r) => {
        const [title, ns] = [s(r[0]), r[1] === null ? 'global' : s(r[1])];
        if (title !== (m.title ?? '') || ns !== (m.namespace ?? 'global')) moved.push(`${m.id}: now "${title}" in ${ns}`);
        return false;
      });
    }
    if (moved.length) {
      const one = moved.length === 1;
      warnings.push(
        `${moved.length} of these memories ${one ? 'exists' : 'exist'} now under another title or namespace (${moved.slice(0, 5).join('; ')}${moved.length > 5 ? '; …' : ''}); ai-memory's import matches memories on title and namespace, so it would add ${one ? 'it' : 'them'} as new memor${one ? 'y' : 'ies'} with an id that exists, which fails — give ${one ? 'it its' : 'them their'} old title and namespace back first, or copy what you need by hand`,
      );
    }
    if (titleClashes.length) {
      const one = titleClashes.length === 1;
      const named = titleClashes.slice(0, 5).map((c) => `${c.id} → ${c.current}`);
      warnings.push(
        `${titleClashes.length} of these memories ${one ? 'has' : 'have'} the title and namespace of another memory in the current database (${named.join(', ')}${titleClashes.length > 5 ? ', …' : ''}); ai-memory's import matches memories on title and namespace, so it would overwrite ${one ? 'that memory' : 'those memories'} (or, with ai-memory 1.0's default, import ${one ? 'it' : 'them'} as "title (2)") — rename or move one of each pair first`,
      );
    }
  }
  const memories = chosen.map((m) => toExport(m, () => contentOf(m.id), now, warnings, expiryCleared));
  return {
    document: { memories, links, count: memories.length, exported_at: rfc3339(new Date(now)) },
    missing,
    expiryCleared,
    titleClashes,
    warnings,
  };
}

/**
 * The document as `stringifyExact(doc, space)` writes it, byte for byte, in pieces: one per
 * memory and link (each memory's content read as it is written), so no string holds the
 * whole export. `space`: 2 for the file, none for stdout.
 */
export function* exportDocumentText(doc: ExportDocument, space?: number): Generator<string> {
  const ind = space ? ' '.repeat(space) : '';
  const nl = space ? '\n' : '';
  const colon = space ? ': ' : ':';
  // An element two levels deep: JSON strings hold no raw newline, so every newline is a line of its layout.
  const element = (v: unknown): string => (space ? stringifyExact(v, space).replace(/\n/g, `\n${ind}${ind}`) : stringifyExact(v));
  function* array(items: readonly unknown[]): Generator<string> {
    if (!items.length) {
      yield '[]';
      return;
    }
    yield `[${nl}`;
    for (let i = 0; i < items.length; i++) yield `${ind}${ind}${element(items[i])}${i < items.length - 1 ? ',' : ''}${nl}`;
    yield `${ind}]`;
  }
  yield `{${nl}${ind}"memories"${colon}`;
  yield* array(doc.memories);
  yield `,${nl}${ind}"links"${colon}`;
  yield* array(doc.links);
  yield `,${nl}${ind}"count"${colon}${JSON.stringify(doc.count)},${nl}${ind}"exported_at"${colon}${JSON.stringify(doc.exported_at)}${nl}}`;
}
