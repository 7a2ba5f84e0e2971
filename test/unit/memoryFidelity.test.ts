/**
 * The memories are never mixed up, lost or misreported: values JSON.parse cannot hold
 * (metadata integers past 2^53), searches and namespace filters with letters beyond ASCII
 * and UTF-16, and links made again — extract, diff, the facts digest and inspect must agree
 * with what SQLite holds. Each case failed before its fix (found by an adversarial run).
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { compareDatabases } from '../../src/core/memory/compare';
import { stringifyExact } from '../../src/core/memory/exactJson';
import { extractMemories } from '../../src/core/memory/extract';
import { computeFacts } from '../../src/core/memory/facts';
import { listMemories } from '../../src/core/memory/browse';
import { openSnapshotSql, type MemorySql } from '../../src/core/memory/source';
import { seedMemory } from '../support/aiMemoryDb';
import { cli } from '../support/cliRun';
import { openNative } from '../support/sqlite';
import { useTempDir } from '../support/tmp';

const T = '2025-01-01T00:00:00+00:00';
const BIG = '{"n":12345678901234567891,"neg":-9223372036854775807,"f":0.30000000000000004,"s":"12345678901234567891"}';

describe('memory fidelity: extract, diff, digest and search agree with SQLite', function () {
  this.timeout(60_000);
  const tmp = useTempDir('aimb-fidelity-');
  const opened: MemorySql[] = [];
  afterEach(() => {
    for (const d of opened.splice(0)) d.close();
  });

  /** An ai-memory database (the server's schema) with the given memories added by native SQLite. */
  function database(name: string, rows: { id: string; namespace?: string; content?: string; tags?: string; metadata?: string }[]): string {
    const db = tmp.join(name);
    seedMemory(db, 'global', 'seed', 'seed');
    const n = openNative(db);
    const ins = n.prepare(`INSERT INTO memories (id, tier, namespace, title, content, tags, priority, confidence, source, access_count, created_at, updated_at, metadata)
      VALUES (?, 'mid', ?, ?, ?, ?, 5, 1.0, 'api', 0, ?, ?, ?)`);
    for (const r of rows) ins.run(r.id, r.namespace ?? 'global', `title ${r.id}`, r.content ?? `content ${r.id}`, r.tags ?? '[]', T, T, r.metadata ?? '{}');
    n.close();
    return db;
  }

  function sql(path: string, statements: string, ...params: unknown[]): void {
    const n = openNative(path);
    n.prepare(statements).run(...params);
    n.close();
  }

  async function open(p: string): Promise<MemorySql> {
    const d = await openSnapshotSql(p);
    opened.push(d);
    return d;
  }

  it('extract writes metadata integers past 2^53 exactly as stored (JSON.parse rounded 12345678901234567891 to …67000)', async () => {
    const db = database('big.db', [{ id: 'm-big', metadata: BIG }]);
    const r = extractMemories(await open(db), { ids: ['m-big'] });
    const text = stringifyExact(r.document);
    const back = /"metadata":(\{[^}]*\})/.exec(text)?.[1];
    assert.equal(back, BIG);
    // The CLI's stdout and --out file say the same.
    const snaps = tmp.join('snaps');
    assert.equal((await cli(['backup', '--db', db, '--to', snaps, '--json'], { cwd: tmp.path })).code, 0);
    const snap = fs.readdirSync(snaps).find((f) => f.endsWith('.db')) as string;
    const out = await cli(['extract', '--from', `${snaps}/${snap}`, '--ids', 'm-big'], { cwd: tmp.path });
    assert.equal(out.code, 0, out.stderr);
    assert.ok(out.stdout.includes('"n":12345678901234567891,"neg":-9223372036854775807'), out.stdout);
    const file = tmp.join('out.json');
    assert.equal((await cli(['extract', '--from', `${snaps}/${snap}`, '--ids', 'm-big', '--out', file], { cwd: tmp.path })).code, 0);
    assert.match(fs.readFileSync(file, 'utf8'), /"n": 12345678901234567891,/);
  });

  it('diff and the digest see an edit of a metadata integer past 2^53 (both called it unchanged)', async () => {
    const a = database('a.db', [{ id: 'm-big', metadata: BIG }]);
    const b = tmp.join('b.db');
    fs.copyFileSync(a, b);
    sql(b, "UPDATE memories SET metadata = replace(metadata, '\"n\":12345678901234567891', '\"n\":12345678901234567890') WHERE id = 'm-big'");
    const [x, y] = [await open(a), await open(b)];
    const c = compareDatabases(x, y);
    assert.deepEqual(c.edited.map((e) => [e.id, e.fields]), [['m-big', ['metadata']]]);
    assert.notEqual(computeFacts(x)?.memories_digest, computeFacts(y)?.memories_digest);
    // Key order alone is still no edit, big integers included.
    const k = tmp.join('k.db');
    fs.copyFileSync(a, k);
    sql(k, "UPDATE memories SET metadata = ? WHERE id = 'm-big'", '{"s":"12345678901234567891","f":0.30000000000000004,"neg":-9223372036854775807,"n":12345678901234567891}');
    const z = await open(k);
    assert.deepEqual(compareDatabases(x, z).edited, []);
    assert.equal(computeFacts(x)?.memories_digest, computeFacts(z)?.memories_digest);
  });

  it('a link made again at another time is reported (removed + added) exactly when the digest differs', async () => {
    const a = database('l.db', [{ id: 'p' }, { id: 'q' }]);
    sql(a, "INSERT INTO memory_links (source_id, target_id, relation, created_at) VALUES ('p', 'q', 'related_to', ?)", T);
    const b = tmp.join('l2.db');
    fs.copyFileSync(a, b);
    sql(b, "UPDATE memory_links SET created_at = '2025-02-01T00:00:00+00:00'");
    const [x, y] = [await open(a), await open(b)];
    assert.notEqual(computeFacts(x)?.memories_digest, computeFacts(y)?.memories_digest);
    const c = compareDatabases(x, y);
    assert.deepEqual(c.links_removed.map((l) => l.created_at), [T]);
    assert.deepEqual(c.links_added.map((l) => l.created_at), ['2025-02-01T00:00:00+00:00']);
    // The same link on both sides: nothing reported.
    const same = compareDatabases(x, await open(a));
    assert.deepEqual([same.links_added, same.links_removed], [[], []]);
  });

  it('inspect --search finds words with letters beyond ASCII in any case (SQLite lower() folds ASCII only)', async () => {
    const db = database('s.db', [
      { id: 'uml', content: 'Über Ärger café' },
      { id: 'tag', tags: '["Ünicode"]' },
      { id: 'greek', content: 'ΣΟΦΊΑ' },
      { id: 'plain', content: 'nothing here' },
    ]);
    const d = await open(db);
    const ids = (text: string): string[] => listMemories(d, { text }).rows.map((r) => r.id).sort();
    assert.deepEqual(ids('Über'), ['uml']);
    assert.deepEqual(ids('über ärger'), ['uml']);
    assert.deepEqual(ids('CAFÉ'), ['uml']);
    assert.deepEqual(ids('ünicode'), ['tag']);
    assert.deepEqual(ids('σοφία'), ['greek']);
    assert.equal(listMemories(d, { text: 'Über' }).total, 1);
    assert.deepEqual(ids('HERE'), ['plain']);
  });

  it('inspect --namespace with a character beyond U+FFFF keeps its children (substr counted UTF-16 units)', async () => {
    const db = database('n.db', [
      { id: 'top', namespace: '🧠proj' },
      { id: 'child', namespace: '🧠proj/sub' },
      { id: 'deep', namespace: '🧠proj/sub/x' },
      { id: 'other', namespace: '🧠project' },
    ]);
    const d = await open(db);
    const page = listMemories(d, { namespace: '🧠proj' });
    assert.deepEqual(page.rows.map((r) => r.id).sort(), ['child', 'deep', 'top']);
    assert.equal(page.total, 3);
    // extract --namespace selects the same memories.
    assert.deepEqual(extractMemories(d, { namespace: '🧠proj' }).document.memories.map((m) => m.id).sort(), ['child', 'deep', 'top']);
  });

  it('extract --removed-since-db says which memories the database has archived (ai-memory import skips archived ids)', async () => {
    const snap = database('ar.db', [{ id: 'kept' }, { id: 'gone' }, { id: 'arch' }]);
    const now = tmp.join('ar-now.db');
    fs.copyFileSync(snap, now);
    sql(now, "DELETE FROM memories WHERE id = 'gone'");
    sql(now, `INSERT INTO archived_memories (id, tier, namespace, title, content, tags, priority, confidence, source, access_count, created_at, updated_at, metadata, archived_at, archive_reason)
      SELECT id, tier, namespace, title, content, tags, priority, confidence, source, access_count, created_at, updated_at, metadata, ?, 'ttl_expired' FROM memories WHERE id = 'arch'`, T);
    sql(now, "DELETE FROM memories WHERE id = 'arch'");
    const r = extractMemories(await open(snap), { removedSince: await open(now) });
    assert.deepEqual(r.document.memories.map((m) => m.id).sort(), ['arch', 'gone']);
    assert.equal(r.warnings.filter((w) => /archived in the current database.*arch\b/.test(w) && !/gone/.test(w)).length, 1, r.warnings.join('\n'));
  });
});
