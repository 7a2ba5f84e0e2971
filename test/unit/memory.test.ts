/**
 * What a snapshot holds, compared and extracted (src/core/memory), on ai-memory-shaped
 * databases written by native SQLite. The "current database" side is always read through
 * our WAL-consistent image reader while a native connection holds uncheckpointed frames.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { compareDatabases, type Comparison } from '../../src/core/memory/compare';
import { extractMemories } from '../../src/core/memory/extract';
import { canonicalJson, contentEncoding, contentEncodingOfRow, contentSelectList, selectList, tierClass, toRecord } from '../../src/core/memory/records';
import { readSchema } from '../../src/core/memory/schema';
import { computeFacts, FACTS_VERSION } from '../../src/core/memory/facts';
import { factsForSnapshots, FACTS_CACHE_NAME } from '../../src/core/memory/factsCache';
import { listMemories, memoryDetail, overview } from '../../src/core/memory/browse';
import { openLiveSql, openSnapshotSql, type MemorySql } from '../../src/core/memory/source';
import { runBackup } from '../../src/core/ops/backup';
import { listSnapshots } from '../../src/core/store/catalog';
import { checkFile } from '../../src/core/sqlite/sqlEngine';
import { createAiMemoryDb, openLikeServer, type MemoryRow } from '../support/aiMemoryDb';
import { edit, forget, gcArchive, importDocument, recall, type ImportDocument } from '../support/aiMemoryOps';
import { openNative, type NativeDb } from '../support/sqlite';
import { useTempDir } from '../support/tmp';

const T = '2026-11-29T12:00:00+00:00';

describe('memory: facts, compare, extract', function () {
  this.timeout(60_000);
  const tmp = useTempDir();
  const opened: MemorySql[] = [];
  const natives: NativeDb[] = [];
  afterEach(() => {
    for (const d of opened.splice(0)) d.close();
    for (const n of natives.splice(0)) if (n.open) n.close();
  });

  /** A database with 40 memories and links, its snapshot copy, and a native connection that keeps WAL frames (no checkpoint). */
  function setup(): { db: string; snap: string; native: NativeDb; ids: (where?: string) => string[] } {
    const db = tmp.join('ai-memory.db');
    createAiMemoryDb(db, { memories: 40, embeddingDim: 0, seed: 7, linksPerMemory: 0.5 });
    const snap = tmp.join('snap.db');
    fs.copyFileSync(db, snap);
    const native = openLikeServer(db);
    native.pragma('wal_autocheckpoint = 0');
    natives.push(native);
    const ids = (where = '1'): string[] => native.prepare(`SELECT id FROM memories WHERE ${where} ORDER BY id`).pluck().all().map(String);
    return { db, snap, native, ids };
  }

  async function snapshot(p: string): Promise<MemorySql> {
    const d = await openSnapshotSql(p);
    opened.push(d);
    return d;
  }
  async function live(p: string): Promise<MemorySql> {
    const d = await openLiveSql(p);
    opened.push(d);
    return d;
  }
  async function compare(snap: string, db: string): Promise<Comparison> {
    return compareDatabases(await snapshot(snap), await live(db));
  }

  it('pure recalls — a mid→long promotion and a priority raise included — are no change: same digest, one count', async () => {
    const { db, snap, native, ids } = setup();
    // Prepare, in the snapshot too, a mid memory one recall short of promotion and one a recall short of a priority raise.
    const [mid, nine, other] = ids();
    for (const [id, tier, ac, prio] of [[mid, 'mid', 4, 5], [nine, 'long', 9, 6]] as const) {
      native.prepare('UPDATE memories SET tier = ?, access_count = ?, priority = ? WHERE id = ?').run(tier, ac, prio, id);
    }
    native.pragma('wal_checkpoint(TRUNCATE)');
    fs.copyFileSync(db, snap);
    recall(native, mid, T);
    recall(native, nine, T);
    recall(native, other, T);
    recall(native, other, '2026-11-29T13:00:00+00:00');
    const after = native.prepare<{ tier: string; priority: number; updated_at: string }>('SELECT tier, priority, updated_at FROM memories WHERE id = ?');
    assert.equal(after.get(mid)?.tier, 'long', 'the fixture promoted');
    assert.equal(after.get(mid)?.updated_at, T);
    assert.equal(after.get(nine)?.priority, 7, 'the fixture raised priority');
    assert.ok(fs.statSync(`${db}-wal`).size > 0, 'the recalls are still only in the WAL');

    const c = await compare(snap, db);
    assert.deepEqual([c.added.length, c.removed.length, c.edited.length], [0, 0, 0], JSON.stringify(c.edited));
    assert.equal(c.recall_only, 3);
    assert.equal(c.unchanged, 37);
    assert.equal(computeFacts(await snapshot(snap))?.memories_digest, computeFacts(await live(db))?.memories_digest);
  });

  it('compares across its page boundaries (1,000 memories a page, in SQLite\'s id order — non-ASCII ids included) exactly like memory by memory', async () => {
    const db = tmp.join('big.db');
    createAiMemoryDb(db, { memories: 2600, embeddingDim: 0, seed: 5 });
    const native = openLikeServer(db);
    natives.push(native);
    const insert = native.prepare("INSERT INTO memories (id, tier, namespace, title, content, tags, priority, confidence, source, access_count, created_at, updated_at, metadata) VALUES (?, 'mid', 'paging', ?, 'new', '[]', 5, 1.0, 'test', 0, ?, ?, '{}')");
    // On both sides: an id above U+FFFF. Added later: one in U+E000–U+FFFF, which SQLite (UTF-8)
    // sorts before it and JavaScript's < (UTF-16) after it — a merge in the wrong order would
    // call the shared one removed and added.
    insert.run('\u{1F600}-both', 'on both sides', T, T);
    const all = native.prepare("SELECT id FROM memories WHERE namespace != 'paging' ORDER BY id").pluck().all().map(String);
    native.pragma('wal_checkpoint(TRUNCATE)');
    const snap = tmp.join('big-snap.db');
    fs.copyFileSync(db, snap);
    // Removed right at the page edges and at the end, edited in the middle, added with ids
    // that sort in UTF-8 (SQLite) but not in UTF-16 (JavaScript) order: U+FF46 < U+1F600.
    const gone = [all[999], all[1000], all[1999], all[2599]];
    for (const id of gone) forget(native, id);
    edit(native, all[1500], { content: 'edited across a page' }, T);
    const added = ['0000-first', '\uff46-fullwidth', 'zzzz-last'];
    for (const id of added) insert.run(id, `added ${id}`, T, T);
    const c = await compare(snap, db);
    assert.deepEqual(c.removed.map((r) => r.id).sort(), [...gone].sort());
    assert.deepEqual(c.added.map((r) => r.id).sort(), [...added].sort());
    assert.deepEqual(c.edited.map((r) => [r.id, r.fields]), [[all[1500], ['content']]]);
    assert.equal(c.from.memories, 2601);
    assert.equal(c.to.memories, 2601 - gone.length + added.length);
    assert.equal(c.unchanged + c.recall_only, 2601 - gone.length - 1);
  });

  it('deletes and gc archives are removed memories, told apart, with the archive reason', async () => {
    const { db, snap, native, ids } = setup();
    const [a, b] = ids();
    forget(native, a);
    gcArchive(native, b, T);
    const c = await compare(snap, db);
    assert.equal(c.added.length, 0);
    assert.deepEqual(
      c.removed.map((r) => [r.id, r.how, r.archive_reason ?? null]).sort(),
      [[a, 'deleted', null], [b, 'archived', 'ttl_expired']].sort(),
    );
    assert.equal(c.removed.find((r) => r.id === b)?.archived_at, T);
    assert.notEqual(computeFacts(await snapshot(snap))?.memories_digest, computeFacts(await live(db))?.memories_digest);
    assert.equal(computeFacts(await live(db))?.archived, (computeFacts(await snapshot(snap))?.archived ?? NaN) + 1);
  });

  it('edits of content, tags and metadata are named; a metadata key order change is not an edit', async () => {
    const { db, snap, native, ids } = setup();
    const [x, y, z, w] = ids();
    edit(native, x, { content: 'rewritten by a bad update' }, T);
    edit(native, y, { tags: '["changed"]' }, T);
    const meta = JSON.parse(String(native.prepare('SELECT metadata FROM memories WHERE id = ?').pluck().get(z))) as Record<string, unknown>;
    edit(native, z, { metadata: JSON.stringify({ ...meta, reviewed: true }) }, T);
    // Same metadata, keys in reverse order (what a re-serialisation does): not an edit of metadata.
    const meta2 = JSON.parse(String(native.prepare('SELECT metadata FROM memories WHERE id = ?').pluck().get(w))) as Record<string, unknown>;
    native.prepare('UPDATE memories SET metadata = ? WHERE id = ?').run(JSON.stringify(Object.fromEntries(Object.entries(meta2).reverse())), w);
    const c = await compare(snap, db);
    const fields = Object.fromEntries(c.edited.map((e) => [e.id, e.fields]));
    assert.deepEqual(fields, { [x]: ['content'], [y]: ['tags'], [z]: ['metadata'] });
    assert.equal(c.unchanged, 37);
    assert.notEqual(computeFacts(await snapshot(snap))?.memories_digest, computeFacts(await live(db))?.memories_digest);
  });

  it('canonical JSON: the no-parse fast paths (plain string arrays, flat sorted objects) agree with parse-and-sort on 200,000 random texts', () => {
    // The reference: parse, sort keys at every level, print compactly; not JSON → marked text.
    const stableRef = (v: unknown): string => {
      if (Array.isArray(v)) return `[${v.map(stableRef).join(',')}]`;
      if (v && typeof v === 'object') {
        const o = v as Record<string, unknown>;
        return `{${Object.keys(o).sort().map((k) => `${JSON.stringify(k)}:${stableRef(o[k])}`).join(',')}}`;
      }
      return JSON.stringify(v) ?? 'null';
    };
    const reference = (raw: string): string => {
      try {
        return stableRef(JSON.parse(raw));
      } catch {
        return `\u0000${raw}`;
      }
    };
    // Pieces that break naive shortcuts: escapes, spaces, integer-like keys (which
    // Object.keys lists first), astral characters against U+E000, number forms, duplicates.
    const parts = ['a', 'b', 'B', '1', '10', 'é', '\\"', '\\\\', ' ', ',', ':', '{', '}', '[', ']', '\u2028', '\ud83d\ude00', '\ue000', 'null', 'true', '0', '-1.50', '\\u0041'];
    let seed = 12345;
    const rnd = (k: number): number => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return seed % k;
    };
    const pick = (): string => parts[rnd(parts.length)];
    const cases = ['[]', '{}', '["todo","x"]', '{"agent_id":"cursor","scope":"private"}', '{"scope":"private","agent_id":"cursor"}', '{"a":"1","a":"2"}', '[ "a"]'];
    for (let i = 0; i < 200_000; i++) {
      const kind = i % 3;
      if (kind === 0) cases.push(Array.from({ length: rnd(12) }, pick).join(''));
      else if (kind === 1) cases.push(`[${Array.from({ length: rnd(4) }, () => `"${pick()}${rnd(2) ? pick() : ''}"`).join(',')}]`);
      else {
        const values = ['"x"', 'true', 'false', 'null', '1', '1.0', `"${pick()}"`, '[]', '{}'];
        cases.push(`{${Array.from({ length: rnd(4) }, () => `"${pick()}":${values[rnd(values.length)]}`).join(rnd(6) ? ',' : ', ')}}`);
      }
    }
    const wrong = cases.filter((t) => canonicalJson(t) !== reference(t));
    assert.deepEqual(wrong.slice(0, 5), []);
  });

  it('the facts encode a row exactly as the comparison encodes the same memory as a record (odd values included)', async () => {
    const { snap, native } = setup();
    // Values a record normalises: numbers in text columns, a blob, unsorted and nested metadata keys.
    native.prepare("UPDATE memories SET title = 42, source = 7.5, metadata = '{\"b\":1,\"a\":[2,{\"d\":3,\"c\":4}]}' WHERE rowid = 1").run();
    native.prepare("UPDATE memories SET content = CAST('blob body' AS BLOB), tags = '[ \"x\" ]' WHERE rowid = 2").run();
    native.pragma('wal_checkpoint(TRUNCATE)');
    fs.copyFileSync(tmp.join('ai-memory.db'), snap);
    const db = await snapshot(snap);
    const schema = readSchema(db);
    const viaRows: string[] = [];
    db.each(`SELECT ${contentSelectList(schema.memoryFields)} FROM memories ORDER BY rowid`, [], (r) => {
      viaRows.push(contentEncodingOfRow(r, schema.memoryFields).toString('hex'));
    });
    const viaRecords: string[] = [];
    db.each(`SELECT ${selectList(schema.memoryFields)} FROM memories ORDER BY rowid`, [], (r) => {
      const m = toRecord(r);
      viaRecords.push(contentEncoding(m, schema.memoryFields, tierClass(m.tier)).toString('hex'));
    });
    assert.equal(viaRows.length, 40);
    assert.deepEqual(viaRows, viaRecords);
  });

  it('an edit of only priority, or long → mid, is an edit although the digest ignores it; a new memory is added', async () => {
    const { db, snap, native, ids } = setup();
    const [p] = ids();
    const [l] = ids("tier = 'long'");
    native.prepare('UPDATE memories SET priority = CASE WHEN priority > 1 THEN priority - 1 ELSE 2 END WHERE id = ?').run(p);
    native.prepare("UPDATE memories SET tier = 'mid' WHERE id = ?").run(l);
    native.prepare(`INSERT INTO memories (id, tier, namespace, title, content, created_at, updated_at) VALUES ('new-1', 'short', 'proj/x', 'fresh', 'learned today', ?, ?)`).run(T, T);
    const c = await compare(snap, db);
    assert.deepEqual(c.added.map((m) => m.id), ['new-1']);
    const fields = Object.fromEntries(c.edited.map((e) => [e.id, e.fields]));
    assert.deepEqual(fields[p], ['priority']);
    assert.deepEqual(fields[l], ['tier']);
  });

  it('new and removed links', async () => {
    const { db, snap, native, ids } = setup();
    const [a, b] = ids();
    native.prepare("INSERT INTO memory_links (source_id, target_id, relation, created_at) VALUES (?, ?, 'supersedes', ?)").run(a, b, T);
    const gone = native.prepare<{ source_id: string; target_id: string; relation: string }>('SELECT source_id, target_id, relation FROM memory_links WHERE NOT (source_id = ? AND target_id = ?) LIMIT 1').get(a, b);
    assert.ok(gone, 'the fixture has links');
    native.prepare('DELETE FROM memory_links WHERE source_id = ? AND target_id = ? AND relation = ?').run(gone.source_id, gone.target_id, gone.relation);
    const c = await compare(snap, db);
    assert.deepEqual(c.links_added.map((l) => [l.source_id, l.target_id, l.relation]), [[a, b, 'supersedes']]);
    assert.deepEqual(c.links_removed.map((l) => [l.source_id, l.target_id, l.relation]), [[gone.source_id, gone.target_id, gone.relation]]);
    assert.deepEqual([c.added.length, c.removed.length, c.edited.length], [0, 0, 0]);
    assert.notEqual(computeFacts(await snapshot(snap))?.memories_digest, computeFacts(await live(db))?.memories_digest);
  });

  it('different schema versions: compares the common columns and says so', async () => {
    const { db, snap, native, ids } = setup();
    const [a] = ids();
    native.exec('ALTER TABLE memories DROP COLUMN confidence');
    native.exec('UPDATE schema_version SET version = 29');
    edit(native, a, { content: 'changed' }, T);
    const c = await compare(snap, db);
    assert.equal(c.schema.same, false);
    assert.deepEqual(c.schema.only_in_from, ['confidence']);
    assert.ok(!c.schema.compared_fields.includes('confidence'));
    assert.match(c.schema.note ?? '', /28 → 29/);
    assert.deepEqual(c.edited.map((e) => [e.id, e.fields]), [[a, ['content']]]);
    assert.equal(c.unchanged, 39);
  });

  it('facts: counts by tier and top-level namespace, links, archived, schema version', async () => {
    const { db, native } = setup();
    const f = computeFacts(await live(db));
    assert.ok(f);
    const n = (sql: string): number => Number(native.prepare(sql).pluck().get());
    assert.equal(f.memories, n('SELECT count(*) FROM memories'));
    assert.equal(f.links, n('SELECT count(*) FROM memory_links'));
    assert.equal(f.schema_version, 28);
    for (const t of ['short', 'mid', 'long']) assert.equal(f.memories_by_tier[t] ?? 0, n(`SELECT count(*) FROM memories WHERE tier = '${t}'`));
    const byTop = native.prepare<{ top: string; n: number }>("SELECT CASE WHEN instr(namespace, '/') THEN substr(namespace, 1, instr(namespace, '/') - 1) ELSE namespace END AS top, count(*) AS n FROM memories GROUP BY top").all();
    assert.deepEqual(Object.fromEntries(Object.entries(f.memories_by_namespace).sort()), Object.fromEntries(byTop.map((r) => [r.top, r.n]).sort()));
  });

  it('a hostile file: `memories` as a never-ending view is not read; counts come from real tables only', async () => {
    const p = tmp.join('hostile.db');
    const h = openNative(p);
    h.exec(`CREATE TABLE notes (x); INSERT INTO notes VALUES (1), (2);
      CREATE VIEW memories AS WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT x AS id, 'mid' AS tier, 'n' AS namespace, 't' AS title, 'c' AS content FROM c;`);
    h.close();
    const d = await snapshot(p);
    const o = overview(d);
    assert.equal(o.kind, 'sqlite');
    assert.deepEqual(o.tables, [{ table: 'notes', rows: 2 }]);
    assert.equal(computeFacts(d), undefined);
    assert.throws(() => compareDatabases(d, d), /not an ai-memory database/);
    const check = await checkFile(p, 'quick');
    assert.equal(check.ok, true);
    assert.equal(check.memories, undefined, 'the backup check does not count a view either');
  });

  it('browse: pages, search and filters in SQL; a memory with its links', async () => {
    const { db, native } = setup();
    const d = await live(db);
    const all = listMemories(d, { limit: 10 });
    assert.equal(all.total, 40);
    assert.equal(all.rows.length, 10);
    const second = listMemories(d, { limit: 10, offset: 10 });
    assert.equal(new Set([...all.rows, ...second.rows].map((r) => r.id)).size, 20);
    const row = native.prepare<{ id: string; title: string; namespace: string }>('SELECT id, title, namespace FROM memories LIMIT 1').get();
    assert.ok(row);
    const word = row.title.split(/\s+/).sort((a, b) => b.length - a.length)[0];
    assert.ok(listMemories(d, { text: word.toUpperCase() }).rows.some((r) => r.id === row.id));
    const top = row.namespace.split('/')[0];
    const inNs = listMemories(d, { namespace: top, limit: 500 });
    assert.equal(inNs.total, Number(native.prepare("SELECT count(*) FROM memories WHERE namespace = ? OR namespace LIKE ? || '/%'").pluck().get(top, top)));
    const linked = native.prepare<{ source_id: string; target_id: string }>('SELECT source_id, target_id FROM memory_links LIMIT 1').get();
    assert.ok(linked);
    const detail = memoryDetail(d, linked.source_id);
    assert.ok(detail?.links.some((l) => l.direction === 'out' && l.other_id === linked.target_id && l.other_title));
  });

  it('extract → import (upsert on title, namespace) brings the chosen memories back field for field, with their links', async () => {
    const { db, snap, native, ids } = setup();
    const all = ids();
    // Make sure the removed ones have links, to each other and to memories that stay.
    const [a, b, c, keep] = all;
    native.prepare("INSERT OR IGNORE INTO memory_links (source_id, target_id, relation, created_at) VALUES (?, ?, 'related_to', ?), (?, ?, 'derived_from', ?)").run(a, b, T, c, keep, T);
    native.pragma('wal_checkpoint(TRUNCATE)');
    fs.copyFileSync(db, snap);
    const snapRows = native.prepare<MemoryRow>('SELECT * FROM memories WHERE id IN (?, ?, ?, ?) ORDER BY id').all(a, b, c, keep);
    const snapLinks = native.prepare('SELECT source_id, target_id, relation, created_at FROM memory_links WHERE source_id IN (?, ?, ?) OR target_id IN (?, ?, ?) ORDER BY 1, 2, 3').all(a, b, c, a, b, c);
    forget(native, a);
    forget(native, b);
    gcArchive(native, c, T);
    edit(native, keep, { content: 'overwritten' }, T);

    const now = new Date('2026-11-29T15:00:00Z');
    const current = await live(db);
    const r = extractMemories(await snapshot(snap), { removedSince: current }, { current, now });
    assert.deepEqual(r.document.memories.map((m) => m.id).sort(), [a, b, c].sort());
    assert.equal(r.document.count, 3);
    assert.deepEqual(Object.keys(r.document).sort(), ['count', 'exported_at', 'links', 'memories']);
    for (const m of r.document.memories) {
      assert.deepEqual(Object.keys(m).filter((k) => k !== 'last_accessed_at' && k !== 'expires_at'),
        ['id', 'tier', 'namespace', 'title', 'content', 'tags', 'priority', 'confidence', 'source', 'access_count', 'created_at', 'updated_at', 'metadata']);
      assert.ok(Array.isArray(m.tags));
    }
    // Every snapshot link touching the three, whose other end exists now or is among them.
    assert.deepEqual(r.document.links.map((l) => [l.source_id, l.target_id, l.relation]).sort(), (snapLinks as { source_id: string; target_id: string; relation: string }[]).map((l) => [l.source_id, l.target_id, l.relation]).sort());

    // The edited one, by id: the import overwrites it (same title and namespace).
    const byId = extractMemories(await snapshot(snap), { ids: [keep, 'no-such-id'] }, { current, now });
    assert.deepEqual(byId.missing, ['no-such-id']);

    const json = JSON.parse(JSON.stringify(r.document)) as ImportDocument; // through text, as the file goes
    importDocument(native, json);
    importDocument(native, JSON.parse(JSON.stringify(byId.document)) as ImportDocument);
    const back = native.prepare<MemoryRow>('SELECT * FROM memories WHERE id IN (?, ?, ?, ?) ORDER BY id').all(a, b, c, keep);
    const cleared = new Set([...r.expiryCleared, ...byId.expiryCleared]);
    assert.equal(back.length, 4);
    for (let i = 0; i < 4; i++) {
      const want = { ...snapRows[i], embedding: null, embedding_dim: null } as Record<string, unknown>;
      if (cleared.has(String(want.id))) {
        assert.ok(Date.parse(String(want.expires_at)) <= now.getTime(), 'only a past expiry is cleared');
        want.expires_at = null;
      }
      const got = { ...back[i] } as Record<string, unknown>;
      // tags/metadata went through JSON: compared as values; everything else byte for byte.
      for (const k of ['tags', 'metadata']) {
        assert.deepEqual(JSON.parse(String(got[k])), JSON.parse(String(want[k])), `${k} of ${String(want.id)}`);
        delete got[k];
        delete want[k];
      }
      for (const k of ['scope_idx', 'agent_id_idx']) {
        delete got[k];
        delete want[k];
      }
      assert.deepEqual(got, want);
    }
    const linksNow = native.prepare('SELECT source_id, target_id, relation, created_at FROM memory_links WHERE source_id IN (?, ?, ?) OR target_id IN (?, ?, ?) ORDER BY 1, 2, 3').all(a, b, c, a, b, c);
    assert.deepEqual(linksNow, snapLinks);
    // And a comparison now finds nothing missing.
    const again = await compare(snap, db);
    assert.deepEqual([again.removed.length, again.links_removed.length], [0, 0]);
    assert.deepEqual(again.edited.filter((e) => ![...cleared].includes(e.id)), []);
  });

  it('backup records the facts in our manifest; an ai-memory manifest gets them from a 0600 cache, never rewritten', async () => {
    const { db, native, ids } = setup();
    const dir = tmp.join('backups');
    const r = await runBackup({ dbPath: db, backupDir: dir, keep: 0 });
    const f = computeFacts(await live(db));
    assert.equal(r.manifest.memories_digest, f?.memories_digest);
    assert.deepEqual(r.manifest.memories_by_tier, f?.memories_by_tier);
    assert.equal(r.manifest.links, f?.links);
    assert.equal(r.manifest.facts_version, FACTS_VERSION);
    const onDisk = JSON.parse(fs.readFileSync(r.manifestPath, 'utf8')) as Record<string, unknown>;
    assert.equal(onDisk.memories_digest, f?.memories_digest);

    // Strip our fields: what ai-memory's own CLI writes.
    const six = Object.fromEntries(['snapshot', 'sha256', 'bytes', 'source_db', 'version', 'created_at'].map((k) => [k, onDisk[k]]));
    fs.writeFileSync(r.manifestPath, JSON.stringify(six, null, 2));
    const before = fs.readFileSync(r.manifestPath);
    const entries = await listSnapshots(dir);
    const first = await factsForSnapshots(dir, entries);
    assert.equal(first.get(entries[0].name)?.source, 'computed');
    assert.equal(first.get(entries[0].name)?.facts?.memories_digest, f?.memories_digest);
    const second = await factsForSnapshots(dir, entries);
    assert.equal(second.get(entries[0].name)?.source, 'cache');
    assert.ok(fs.readFileSync(r.manifestPath).equals(before), 'the manifest is untouched');
    assert.equal(fs.statSync(tmp.join('backups', FACTS_CACHE_NAME)).mode & 0o777, 0o600);

    recall(native, ids()[0], T);
    assert.equal(computeFacts(await live(db))?.memories_digest, f?.memories_digest, 'a recall keeps the digest');
  });
});
