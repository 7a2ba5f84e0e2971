/**
 * liveFacts (restore's "is this ai-memory's database?") reads only the schema's pages and
 * the schema_version table's, through the consistent reader: checked here against SQLite
 * itself on schemas that span many pages, rows on overflow pages, every page size, UTF-16
 * databases, a WITHOUT ROWID schema_version, and a schema changed in the WAL only.
 */
import * as assert from 'assert';
import * as fs from 'fs';
import { liveFacts, type LiveFacts } from '../../src/core/ops/schemaGuard';
import { createAiMemoryDb } from '../support/aiMemoryDb';
import { startWriter, useWriterCleanup } from '../support/nativeWriter';
import { openNative } from '../support/sqlite';
import { useTempDir } from '../support/tmp';

describe('schemaGuard.liveFacts', () => {
  const tmp = useTempDir();
  useWriterCleanup();

  function native(path: string): LiveFacts {
    const n = openNative(path, { readonly: true });
    try {
      const rows = n.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND sql NOT LIKE 'CREATE VIRTUAL%'").all() as { name: string }[];
      const has = (t: string) => rows.some((r) => r.name === t);
      const v = has('schema_version') ? (n.prepare('SELECT max(version) AS v FROM schema_version').get() as { v: number }).v : undefined;
      return { schemaVersion: v ?? undefined, hasMemories: has('memories'), tables: rows.slice(0, 6).map((r) => r.name), tableCount: rows.length };
    } finally {
      n.close();
    }
  }

  it('agrees with SQLite: a schema of many pages with rows on overflow pages, every page size, UTF-16, WITHOUT ROWID', async function () {
    this.timeout(60_000);
    let i = 0;
    for (const pageSize of [512, 4096, 65536]) {
      for (const encoding of ['UTF-8', 'UTF-16le', 'UTF-16be']) {
        const p = tmp.join(`many-${i++}.db`);
        const n = openNative(p);
        n.pragma(`page_size = ${pageSize}`);
        n.pragma(`encoding = '${encoding}'`);
        n.pragma('journal_mode = WAL');
        n.exec('CREATE TABLE schema_version (version INTEGER PRIMARY KEY, note TEXT) WITHOUT ROWID');
        n.exec(`INSERT INTO schema_version SELECT value, '${'n'.repeat(3000)}' FROM (WITH RECURSIVE c(value) AS (SELECT 1 UNION ALL SELECT value + 1 FROM c WHERE value < 40) SELECT value FROM c)`);
        // 300 tables, every tenth with a CREATE statement longer than a page.
        for (let t = 0; t < 300; t++) {
          const cols = t % 10 === 0 ? Array.from({ length: 400 }, (_, c) => `column_${c} TEXT`).join(', ') : 'a, b';
          n.exec(`CREATE TABLE t${t} (${cols}); CREATE INDEX t${t}_a ON t${t} (${t % 10 === 0 ? 'column_0' : 'a'});`);
        }
        n.exec('CREATE TABLE memories (id TEXT PRIMARY KEY)');
        n.close();
        const got = await liveFacts(p);
        assert.deepStrictEqual(got, native(p), `${pageSize} ${encoding}`);
        assert.strictEqual((got as LiveFacts).schemaVersion, 40);
        assert.strictEqual((got as LiveFacts).tableCount, 302);
      }
    }
  });

  it('a schema changed in the WAL only (not checkpointed) is read as SQLite reads it', async () => {
    const p = tmp.join('ai.db');
    createAiMemoryDb(p, { memories: 20, leaveWalCommits: 3 });
    const n = openNative(p);
    n.pragma('wal_autocheckpoint = 0');
    n.exec('CREATE TABLE added_in_wal (x); INSERT INTO schema_version (version) VALUES (999)');
    try {
      assert.ok(fs.statSync(`${p}-wal`).size > 0);
      const got = (await liveFacts(p)) as LiveFacts;
      assert.strictEqual(got.schemaVersion, 999);
      assert.ok(got.tableCount === native(p).tableCount && got.hasMemories);
    } finally {
      n.close();
    }
  });

  it('under a writer that checkpoints (RESTART, TRUNCATE) and VACUUMs all the time, every read is consistent: never unknown, never a torn schema', async function () {
    this.timeout(90_000);
    const p = tmp.join('busy.db');
    createAiMemoryDb(p, { memories: 300, embeddingDim: 0 });
    const w = await startWriter({ dbPath: p, checkpointEveryMs: 15, walAutocheckpoint: 50, vacuumEveryMs: 150, embeddingDim: 0, txPerSecond: 0 });
    try {
      await w.waitForCommits(20);
      for (let i = 0; i < 150; i++) {
        const got = await liveFacts(p);
        assert.ok(!('unknown' in got), `read ${i}: ${JSON.stringify(got)}`);
        assert.strictEqual(got.hasMemories, true);
        assert.strictEqual(got.schemaVersion, native(p).schemaVersion);
      }
    } finally {
      await w.stop();
    }
  });

  it('a database whose schema pages are damaged is unknown, and says so', async () => {
    const p = tmp.join('hurt.db');
    const n = openNative(p);
    n.exec('CREATE TABLE a (x); CREATE TABLE b (y)');
    n.close();
    const fd = fs.openSync(p, 'r+');
    fs.writeSync(fd, Buffer.from([0x42]), 0, 1, 100); // page 1's b-tree page type
    fs.closeSync(fd);
    const got = await liveFacts(p);
    assert.ok('unknown' in got && /damaged/.test(got.unknown), JSON.stringify(got));
  });
});
