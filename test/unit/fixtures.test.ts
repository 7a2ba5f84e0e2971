/**
 * Tests of the test-support code itself (test/support): the ai-memory fixture databases,
 * the leftover -wal fixture, the native writer process and the snapshot checker.
 * If these fail, every test built on the support code is meaningless, so each check here
 * asserts an observable outcome and the checker is shown to FAIL on bad input.
 */
import * as assert from 'assert';
import * as crypto from 'crypto';
import { spawn } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { AI_MEMORY_SCHEMA_VERSION, AI_MEMORY_TABLES } from '../support/aiMemorySchema';
import {
  createAiMemoryDb, nativeChecks, nativeVacuumInto, readMemories, seedMemory, walInfo, withNativeCopy,
} from '../support/aiMemoryDb';
import { CheckpointModeName, WriterHandle, startWriter, useWriterCleanup } from '../support/nativeWriter';
import { isAlive, killAllTrackedAndWait, trackChild, trackedPids } from '../support/procs';
import { SnapshotReport, checkSnapshotConsistency } from '../support/snapshotChecks';
import { NativeDb, openNative } from '../support/sqlite';
import {
  copyDbFiles, flipByte, readDbHeader, setJournalVersionBytes, sidecars,
} from '../support/sqliteFiles';
import { makeTempDir, removeTempDir, useTempDir, withTempDir } from '../support/tmp';
import { writerHeadContent, writerTitle } from '../support/writerProtocol';

const ALL_MODES: CheckpointModeName[] = ['PASSIVE', 'RESTART', 'TRUNCATE'];

function sha256File(p: string): string {
  return crypto.createHash('sha256').update(fs.readFileSync(p)).digest('hex');
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function assertReportOk(r: SnapshotReport, what: string): void {
  assert.ok(r.ok, `${what} should pass, failures:\n  - ${r.failures.join('\n  - ')}`);
}

/** Open a file with native SQLite in a dir of its own (SQLite may create sidecars there). */
function withOpen<T>(p: string, fn: (db: NativeDb) => T): T {
  const db = openNative(p, { fileMustExist: true });
  try {
    return fn(db);
  } finally {
    db.close();
  }
}

describe('test support: ai-memory fixtures', function () {
  this.timeout(30_000);
  const tmp = useTempDir();

  describe('createAiMemoryDb', () => {
    it('creates a schema-v28 WAL database with 200 memories and 384-dim embeddings', () => {
      const p = tmp.join('ai-memory.db');
      const created = createAiMemoryDb(p, { memories: 200, embeddingDim: 384 });
      assert.strictEqual(created.memoryIds.length, 200);
      assert.strictEqual(new Set(created.memoryIds).size, 200, 'ids are unique');
      assert.ok(created.links > 0, 'some links were inserted');

      const h = readDbHeader(p);
      assert.ok(h.magicOk);
      assert.deepStrictEqual([h.writeVersion, h.readVersion], [2, 2], 'server-like file is in WAL mode');
      assert.strictEqual(h.pageSize, 4096);
      assert.strictEqual(fs.existsSync(sidecars(p).wal), false, 'checkpointed and closed: no -wal left');

      const checks = nativeChecks(p);
      assert.strictEqual(checks.integrity, 'ok');
      assert.strictEqual(checks.fts, 'ok');
      assert.strictEqual(checks.foreignKeyViolations, 0);
      assert.strictEqual(checks.memories, 200);
      assert.strictEqual(checks.schemaVersion, AI_MEMORY_SCHEMA_VERSION);

      withNativeCopy(p, (db) => {
        const tables = db.prepare("SELECT name FROM sqlite_schema WHERE type = 'table'").pluck().all() as string[];
        for (const t of [...AI_MEMORY_TABLES, 'memories_fts', 'sqlite_sequence']) {
          assert.ok(tables.includes(t), `table ${t} exists`);
        }
        const emb = db.prepare<{ n: number; bad: number; minLen: number; maxLen: number }>(`SELECT count(*) AS n,
            sum(embedding_dim IS NOT 384) AS bad, min(length(embedding)) AS minLen, max(length(embedding)) AS maxLen FROM memories`).get();
        assert.deepStrictEqual(emb, { n: 200, bad: 0, minLen: 1536, maxLen: 1536 });
        // float32 unit vectors
        const blob = db.prepare('SELECT embedding FROM memories LIMIT 1').pluck().get() as Buffer;
        let norm = 0;
        for (let i = 0; i < blob.length; i += 4) {
          norm += blob.readFloatLE(i) ** 2;
        }
        assert.ok(Math.abs(norm - 1) < 1e-3, `embedding is unit length (${norm})`);
        const avg = Number(db.prepare('SELECT avg(length(content)) FROM memories').pluck().get());
        assert.ok(avg > 600 && avg < 1600, `content is ~1 KB (avg ${avg})`);
        const tagRows = db.prepare('SELECT tags FROM memories').pluck().all() as string[];
        assert.ok(tagRows.every((t) => Array.isArray(JSON.parse(t))), 'tags are JSON arrays');
        const namespaces = db.prepare('SELECT DISTINCT namespace FROM memories').pluck().all() as string[];
        assert.ok(namespaces.includes('proj/a') && namespaces.length >= 4, `namespaces: ${namespaces.join(',')}`);
        const tiers = db.prepare('SELECT DISTINCT tier FROM memories ORDER BY tier').pluck().all();
        assert.deepStrictEqual(tiers, ['long', 'mid', 'short']);
        assert.throws(() => db.prepare(`INSERT INTO memories(id, tier, title, content, created_at, updated_at)
          VALUES ('x', 'forever', 't', 'c', '', '')`).run(), /CHECK constraint/);
        assert.throws(() => db.prepare(`INSERT INTO memories(id, tier, namespace, title, content, created_at, updated_at)
          SELECT 'dup', tier, namespace, title, content, created_at, updated_at FROM memories LIMIT 1`).run(), /UNIQUE/);
      });
    });

    it('keeps the FTS5 index in sync through the triggers (search hits, update, delete)', () => {
      const p = tmp.join('fts.db');
      createAiMemoryDb(p, { memories: 200, embeddingDim: 0 });
      withNativeCopy(p, (db) => {
        const ftsCount = (word: string): number => Number(db.prepare('SELECT count(*) FROM memories_fts WHERE memories_fts MATCH ?').pluck().get(word));
        const likeCount = (word: string): number => Number(db.prepare(
          "SELECT count(*) FROM memories WHERE (title || ' ' || content || ' ' || tags) LIKE ?").pluck().get(`%${word}%`));
        const hits = db.prepare<{ id: string; content: string; title: string }>(`SELECT m.id, m.title, m.content
            FROM memories_fts JOIN memories m ON m.rowid = memories_fts.rowid WHERE memories_fts MATCH 'checkpoint'`).all();
        assert.ok(hits.length > 0, 'search returns hits');
        for (const h of hits) {
          assert.match(`${h.title} ${h.content}`, /checkpoint/i);
        }
        // 'checkpoint' is not a substring of any other generated word, so LIKE is an exact oracle.
        assert.strictEqual(ftsCount('checkpoint'), likeCount('checkpoint'));

        db.prepare('DELETE FROM memories WHERE id = ?').run(hits[0].id);
        assert.strictEqual(ftsCount('checkpoint'), hits.length - 1, 'delete trigger removed the tokens');
        db.prepare("UPDATE memories SET content = content || ' zebracorn' WHERE id = ?").run(hits[1].id);
        assert.strictEqual(ftsCount('zebracorn'), 1, 'update trigger indexed the new text');
        db.exec("INSERT INTO memories_fts(memories_fts, rank) VALUES('integrity-check', 1)");
      });
    });

    it('computes the generated columns scope_idx / agent_id_idx from metadata and indexes them', () => {
      const p = tmp.join('gen.db');
      createAiMemoryDb(p, { memories: 120, embeddingDim: 0 });
      withNativeCopy(p, (db) => {
        const rows = db.prepare<{ id: string; metadata: string; scope_idx: string; agent_id_idx: string | null }>(
          'SELECT id, metadata, scope_idx, agent_id_idx FROM memories').all();
        let defaulted = 0;
        for (const r of rows) {
          const meta = JSON.parse(r.metadata) as { scope?: string; agent_id?: string };
          assert.strictEqual(r.scope_idx, meta.scope ?? 'private');
          assert.strictEqual(r.agent_id_idx, meta.agent_id ?? null);
          if (meta.scope === undefined) {
            defaulted++;
          }
        }
        assert.ok(defaulted > 0, 'some rows exercise the coalesce(…, private) default');
        const plan = (db.prepare("EXPLAIN QUERY PLAN SELECT id FROM memories WHERE agent_id_idx = 'copilot'").all() as Array<{ detail: string }>)
          .map((r) => r.detail).join(' ');
        assert.match(plan, /idx_memories_agent_id/);
        db.prepare(`UPDATE memories SET metadata = json_set(metadata, '$.scope', 'org', '$.agent_id', 'someone') WHERE id = ?`).run(rows[0].id);
        const after = db.prepare('SELECT scope_idx, agent_id_idx FROM memories WHERE id = ?').get(rows[0].id);
        assert.deepStrictEqual(after, { scope_idx: 'org', agent_id_idx: 'someone' });
        // Malformed metadata does not make the write fail (json_valid guard).
        db.prepare("UPDATE memories SET metadata = 'not json' WHERE id = ?").run(rows[1].id);
        assert.deepStrictEqual(db.prepare('SELECT scope_idx, agent_id_idx FROM memories WHERE id = ?').get(rows[1].id),
          { scope_idx: 'private', agent_id_idx: null });
      });
    });

    it('is deterministic per seed and honours pageSize / walMode:false / 768-dim embeddings', () => {
      const a = createAiMemoryDb(tmp.join('a.db'), { memories: 40, seed: 5, embeddingDim: 768, pageSize: 8192, walMode: false });
      const b = createAiMemoryDb(tmp.join('b.db'), { memories: 40, seed: 5, embeddingDim: 768, batchSize: 7 });
      const c = createAiMemoryDb(tmp.join('c.db'), { memories: 40, seed: 6, embeddingDim: 768 });
      assert.deepStrictEqual(a.memoryIds, b.memoryIds, 'same seed, same ids (batch size does not matter)');
      assert.deepStrictEqual(readMemories(a.path), readMemories(b.path), 'same seed, same content');
      assert.notDeepStrictEqual(a.memoryIds, c.memoryIds);
      const h = readDbHeader(a.path);
      assert.strictEqual(h.pageSize, 8192);
      assert.deepStrictEqual([h.writeVersion, h.readVersion], [1, 1], 'walMode:false gives a rollback-mode file');
      withNativeCopy(a.path, (db) => {
        assert.strictEqual(Number(db.prepare('SELECT min(length(embedding)) FROM memories').pluck().get()), 3072);
      });
      assert.throws(() => createAiMemoryDb(a.path, { memories: 1 }), /already exists/);
      assert.throws(() => createAiMemoryDb(tmp.join('x.db'), { pageSize: 3000 }), /power of two/);
    });

    it('seedMemory upserts on (title, namespace) like the reference seed_memory', () => {
      const p = tmp.join('seed.db');
      const id1 = seedMemory(p, 'ns', 't', 'c');
      const id2 = seedMemory(p, 'ns', 'other', 'c2');
      const id3 = seedMemory(p, 'ns', 't', 'c3');
      assert.strictEqual(id1, id3, 'same (title, namespace) keeps the id');
      assert.notStrictEqual(id1, id2);
      const rows = readMemories(p);
      assert.strictEqual(rows.length, 2);
      assert.strictEqual(rows.find((r) => r.id === id1)?.content, 'c3');
      const checks = nativeChecks(p);
      assert.strictEqual(checks.fts, 'ok');
      assert.strictEqual(checks.schemaVersion, 28);
    });
  });

  describe('leftover -wal fixture', () => {
    it('keeps the last N commits only in the -wal; the main file alone lacks them', () => {
      const p = tmp.join('ai-memory.db');
      const created = createAiMemoryDb(p, { memories: 200, leaveWalCommits: 5 });
      const s = sidecars(p);
      assert.ok(fs.existsSync(s.wal), '-wal exists');
      const walBytes = fs.statSync(s.wal).size;
      assert.ok(walBytes > 32, `-wal holds frames (${walBytes} bytes)`);
      assert.strictEqual(walBytes, created.walBytes);
      assert.strictEqual(fs.existsSync(s.shm), false, 'no -shm: the next opener rebuilds it');
      const wi = walInfo(p);
      assert.ok(wi && wi.pageSize === 4096 && wi.frameSlots >= 5, `WAL header: ${JSON.stringify(wi)}`);
      assert.strictEqual(created.tail.length, 5);
      const tailIds = created.tail.map((t) => t.insertedId);
      const mainHash = sha256File(p);
      const walHash = sha256File(s.wal);

      // Main file alone (copied without its -wal): the tail commits are missing.
      const mainOnly = tmp.join('main-only', 'copy.db');
      copyDbFiles(p, mainOnly, { wal: false });
      withOpen(mainOnly, (db) => {
        assert.strictEqual(Number(db.prepare('SELECT count(*) FROM memories').pluck().get()), 195);
        for (const id of tailIds) {
          assert.strictEqual(db.prepare('SELECT 1 FROM memories WHERE id = ?').get(id), undefined, `tail memory ${id} absent`);
        }
      });
      // Native SQLite with the -wal sees every commit.
      const rows = readMemories(p);
      assert.strictEqual(rows.length, 200);
      const ids = new Set(rows.map((r) => r.id));
      assert.ok(tailIds.every((id) => ids.has(id)), 'tail memories visible through the -wal');
      // The touches are in the WAL too.
      const touched = created.tail[0].touchedId;
      assert.ok(touched);
      const accessMain = withOpen(mainOnly, (db) => Number(db.prepare('SELECT access_count FROM memories WHERE id = ?').pluck().get(touched)));
      const accessFull = withNativeCopy(p, (db) => Number(db.prepare('SELECT access_count FROM memories WHERE id = ?').pluck().get(touched)));
      assert.ok(accessFull > accessMain, `touch committed in the WAL only (${accessMain} -> ${accessFull})`);

      const checks = nativeChecks(p);
      assert.deepStrictEqual([checks.integrity, checks.fts, checks.memories], ['ok', 'ok', 200]);
      // The helpers never touched the fixture.
      assert.strictEqual(sha256File(p), mainHash);
      assert.strictEqual(sha256File(s.wal), walHash);
      assert.strictEqual(fs.existsSync(s.shm), false);
    });

    it("checkpointBeforeTail 'PASSIVE' leaves stale frames (old salts) behind the valid ones", () => {
      const base = { memories: 150, leaveWalCommits: 3, embeddingDim: 768 as const, walAutocheckpoint: 100000 };
      const trunc = createAiMemoryDb(tmp.join('t.db'), { ...base, checkpointBeforeTail: 'TRUNCATE' });
      const passive = createAiMemoryDb(tmp.join('p.db'), { ...base, checkpointBeforeTail: 'PASSIVE' });
      assert.ok(passive.walBytes > trunc.walBytes * 5,
        `PASSIVE keeps the whole bulk-load WAL file (${passive.walBytes}) vs only the tail (${trunc.walBytes})`);
      assert.ok((walInfo(passive.path)?.checkpointSeq ?? 0) >= 1, 'the WAL was restarted (new checkpoint sequence)');
      // Both describe the same logical database.
      assert.deepStrictEqual(readMemories(passive.path), readMemories(trunc.path));
      assert.strictEqual(nativeChecks(passive.path).integrity, 'ok');
    });
  });

  describe('native writer process', function () {
    this.timeout(40_000);
    let writer: WriterHandle | undefined;
    // A failed assertion must not leave the writer running.
    useWriterCleanup();
    afterEach(() => {
      writer = undefined;
      assert.deepStrictEqual(trackedPids(), [], 'no tracked child process is left');
    });

    it('commits with PASSIVE/RESTART/TRUNCATE checkpoints; mid-run VACUUM INTO snapshots are consistent', async () => {
      const p = tmp.join('ai-memory.db');
      createAiMemoryDb(p, { memories: 200 });
      const started = Date.now();
      writer = await startWriter({ dbPath: p, checkpointEveryMs: 100, modes: ALL_MODES, txPerSecond: 250, walAutocheckpoint: 300 });
      assert.ok(isAlive(writer.pid));
      await writer.waitForCommits(30);
      assert.ok(fs.existsSync(sidecars(p).wal) && fs.existsSync(sidecars(p).shm), 'the writer holds the db open in WAL mode');

      const before1 = writer.lastCommitted();
      nativeVacuumInto(p, tmp.join('snap1.db'));
      await writer.waitForCheckpoints(ALL_MODES, 2);
      await sleep(Math.max(0, 2000 - (Date.now() - started)));
      const before2 = writer.lastCommitted();
      nativeVacuumInto(p, tmp.join('snap2.db'));
      const summary = await writer.stop();

      assert.ok(summary.clean, `clean stop: ${JSON.stringify({ code: summary.exitCode, errors: summary.errors, stderr: summary.stderr })}`);
      assert.strictEqual(isAlive(summary.pid), false);
      assert.ok(summary.lastSeq >= before2 && before2 > before1 && before1 >= 30, `seq advanced: ${before1} < ${before2} < ${summary.lastSeq}`);
      for (const m of ALL_MODES) {
        assert.ok(summary.checkpoints[m].runs >= 2, `${m} checkpoints ran: ${JSON.stringify(summary.checkpoints)}`);
      }
      assert.strictEqual(fs.existsSync(sidecars(p).wal), false, 'clean close of the last connection removed the -wal');

      for (const [snap, minSeq] of [['snap1.db', before1], ['snap2.db', before2]] as const) {
        const r = checkSnapshotConsistency(tmp.join(snap), { minSeq, maxSeq: summary.lastSeq });
        assertReportOk(r, snap);
        assert.ok(r.maxSeq >= minSeq && r.openedInPlace);
      }
      // The final database holds exactly every commit.
      nativeVacuumInto(p, tmp.join('final.db'));
      const final = checkSnapshotConsistency(tmp.join('final.db'), { minSeq: summary.lastSeq, maxSeq: summary.lastSeq });
      assertReportOk(final, 'final');
      // 200 fixture memories + the head row + the rows of every tx not deleted later, per the log.
      const liveWriterRows = withOpen(tmp.join('final.db'), (db) => Number(db.prepare(
        'SELECT sum(n_rows) FROM writer_log WHERE seq NOT IN (SELECT deleted_seq FROM writer_log)').pluck().get()));
      assert.strictEqual(final.memories, 200 + 1 + liveWriterRows);
    });

    it('growBlobs + VACUUM make the page count grow and shrink; snapshots stay consistent', async () => {
      const p = tmp.join('grow.db');
      createAiMemoryDb(p, { memories: 50 });
      writer = await startWriter({
        dbPath: p, growBlobs: true, vacuumEveryMs: 500, checkpointEveryMs: 150, txPerSecond: 150, walAutocheckpoint: 500,
      });
      await writer.waitForCommits(60);
      const before = writer.lastCommitted();
      nativeVacuumInto(p, tmp.join('snap.db'));
      await sleep(1200);
      const summary = await writer.stop();
      assert.ok(summary.clean, summary.stderr);
      assert.ok(summary.vacuums >= 1, `vacuums: ${summary.vacuums}`);
      assert.ok(summary.pageCountMax > summary.pageCountMin, `page count varied: ${summary.pageCountMin}..${summary.pageCountMax}`);
      const r = checkSnapshotConsistency(tmp.join('snap.db'), { minSeq: before, maxSeq: summary.lastSeq });
      assertReportOk(r, 'growBlobs snapshot');
      const n = withOpen(tmp.join('snap.db'), (db) => Number(db.prepare("SELECT count(*) FROM memory_transcripts WHERE namespace = 'writer'").pluck().get()));
      assert.ok(n > 0, 'snapshot holds writer blobs');
      // After VACUUMs (which may renumber rowids of tables without INTEGER PRIMARY KEY, the
      // FTS5 external-content key) the final database is still fully consistent.
      nativeVacuumInto(p, tmp.join('final.db'));
      assertReportOk(checkSnapshotConsistency(tmp.join('final.db'), { minSeq: summary.lastSeq, maxSeq: summary.lastSeq }), 'after VACUUM');
    });

    it('kill() leaves a crash-shaped -wal; the main file alone is stale and the checker rejects it', async () => {
      const p = tmp.join('crash.db');
      createAiMemoryDb(p, { memories: 50, embeddingDim: 0 });
      // Run 1: some commits, clean stop ⇒ checkpointed into the main file.
      writer = await startWriter({ dbPath: p, txPerSecond: 0, stopWritingAfter: 20 });
      await writer.waitForIdle();
      const run1 = await writer.stop();
      assert.ok(run1.clean && run1.lastSeq === 20, JSON.stringify(run1));
      // Run 2: no checkpoints at all, 25 commits, then SIGKILL.
      writer = await startWriter({ dbPath: p, txPerSecond: 0, checkpointEveryMs: 0, walAutocheckpoint: 0, stopWritingAfter: 25 });
      assert.strictEqual(writer.startSeq, 20);
      const idleSeq = await writer.waitForIdle();
      assert.strictEqual(idleSeq, 45);
      const killed = await writer.kill();
      assert.strictEqual(killed.signal, 'SIGKILL');
      assert.strictEqual(isAlive(killed.pid), false);
      assert.ok(fs.existsSync(sidecars(p).wal) && fs.existsSync(sidecars(p).shm), 'crash leaves -wal and -shm');

      // A naive backup: the main file alone, header patched to rollback mode.
      const naive = tmp.join('naive', 'snap.db');
      copyDbFiles(p, naive, { wal: false });
      const unpatched = checkSnapshotConsistency(naive, { minSeq: idleSeq });
      assert.ok(!unpatched.ok && unpatched.failures.some((f) => /bytes 18-19 are 2,2/.test(f)), unpatched.failures.join('\n'));
      assert.strictEqual(unpatched.openedInPlace, false);
      assert.deepStrictEqual(fs.readdirSync(path.dirname(naive)), ['snap.db'], 'the checker created nothing beside the snapshot');
      setJournalVersionBytes(naive, 1);
      const stale = checkSnapshotConsistency(naive, { minSeq: idleSeq });
      assert.strictEqual(stale.ok, false);
      assert.strictEqual(stale.integrity, 'ok', 'the stale main file is internally intact…');
      assert.strictEqual(stale.maxSeq, 20, '…but ends at the last checkpoint');
      assert.ok(stale.failures.some((f) => /stale snapshot/.test(f)), stale.failures.join('\n'));

      // Reference: native SQLite on main + -wal (a private copy) has every commit, exactly.
      const withWal = tmp.join('withwal', 'crash.db');
      copyDbFiles(p, withWal);
      nativeVacuumInto(withWal, tmp.join('ref.db'));
      assertReportOk(checkSnapshotConsistency(tmp.join('ref.db'), { minSeq: idleSeq, maxSeq: idleSeq }), 'WAL-recovered reference');
    });
  });

  describe('native writer failures are reported, not hidden', function () {
    this.timeout(20_000);
    useWriterCleanup();

    it('rejects startWriter for a missing database when createIfMissing is false', async () => {
      await assert.rejects(startWriter({ dbPath: tmp.join('missing.db'), createIfMissing: false }), /does not exist/);
      assert.strictEqual(fs.existsSync(tmp.join('missing.db')), false, 'no database was created');
    });

    it('a SQLite error in the writer ends it with exit 1 and an error, and wakes waiters', async () => {
      const p = tmp.join('err.db');
      createAiMemoryDb(p, { memories: 10, embeddingDim: 0 });
      const w = await startWriter({ dbPath: p, txPerSecond: 100 });
      await w.waitForCommits(3);
      // Sabotage from another connection: the writer's next INSERT INTO writer_log fails.
      const db = openNative(p, { timeout: 5000 });
      db.exec('DROP TABLE writer_log');
      db.close();
      await assert.rejects(w.waitForCommits(1_000_000), /exited \(code 1/);
      const s = await w.stop();
      assert.strictEqual(s.clean, false);
      assert.strictEqual(s.exitCode, 1);
      assert.ok(s.errors.some((e) => /writer_log/.test(e)), JSON.stringify(s.errors));
    });
  });

  describe('checkSnapshotConsistency rejects damaged snapshots', function () {
    this.timeout(30_000);
    let dir = '';
    let good = '';
    let K = 0;

    before(async () => {
      dir = makeTempDir('aimb-damage-');
      const p = path.join(dir, 'src.db');
      createAiMemoryDb(p, { memories: 80 });
      const w = await startWriter({ dbPath: p, txPerSecond: 0, checkpointEveryMs: 20, stopWritingAfter: 60 });
      K = await w.waitForIdle();
      const s = await w.stop();
      assert.ok(s.clean, s.stderr);
      good = path.join(dir, 'good.db');
      nativeVacuumInto(p, good);
    });
    after(() => {
      if (dir) {
        removeTempDir(dir);
      }
    });

    function variant(name: string): string {
      const p = tmp.join(name);
      fs.copyFileSync(good, p);
      return p;
    }

    function mutate(p: string, sql: string, ...params: unknown[]): void {
      withOpen(p, (db) => {
        db.prepare(sql).run(...params);
      });
      // The edit ran in rollback mode: no sidecar may remain.
      assert.strictEqual(fs.existsSync(sidecars(p).journal), false);
    }

    it('accepts the intact snapshot and creates nothing beside it', () => {
      assert.deepStrictEqual(fs.readdirSync(dir).sort(), ['good.db', 'src.db'], 'quiescent VACUUM INTO left no sidecars');
      const r = checkSnapshotConsistency(good, { minSeq: K, maxSeq: K });
      assertReportOk(r, 'intact snapshot');
      assert.strictEqual(r.maxSeq, K);
      assert.deepStrictEqual(fs.readdirSync(dir).sort(), ['good.db', 'src.db'], 'no file created beside the snapshot');
    });

    it('fails integrity_check on a flipped b-tree page header byte', () => {
      const p = variant('flipped.db');
      const pageSize = readDbHeader(p).pageSize;
      const page = withOpen(p, (db) => Number(db.prepare(
        "SELECT pageno FROM dbstat WHERE name = 'memories' AND pagetype = 'leaf' ORDER BY pageno LIMIT 1").pluck().get()));
      flipByte(p, (page - 1) * pageSize); // b-tree page type byte
      const r = checkSnapshotConsistency(p, { minSeq: K });
      assert.strictEqual(r.ok, false);
      assert.notStrictEqual(r.integrity, 'ok');
      assert.ok(r.failures.some((f) => f.startsWith('PRAGMA integrity_check')), r.failures.join('\n'));
    });

    it('catches a flipped byte inside a row that integrity_check cannot see (checksum)', () => {
      const p = variant('textflip.db');
      const buf = fs.readFileSync(p);
      const marker = Buffer.from(`writer seq=${K - 1} row=0\n`);
      const at = buf.indexOf(marker);
      assert.ok(at > 0, 'row text found in the file');
      let off = at + marker.length + 20;
      while (!/[a-z]/.test(String.fromCharCode(buf[off]))) {
        off++;
      }
      flipByte(p, off, 0x20); // lower → upper case: still valid UTF-8 text
      const r = checkSnapshotConsistency(p, { minSeq: K });
      assert.strictEqual(r.integrity, 'ok', 'SQLite does not checksum row content');
      assert.ok(r.failures.some((f) => f.includes(`tx ${K - 1}:`) && f.includes('checksum')), r.failures.join('\n'));
    });

    it('rejects a partial transaction, a seq gap and a torn head row', () => {
      const partial = variant('partial.db');
      mutate(partial, 'DELETE FROM memories WHERE title = ?', writerTitle(K, 0));
      const r1 = checkSnapshotConsistency(partial, { minSeq: K });
      assert.strictEqual(r1.integrity, 'ok');
      assert.ok(r1.failures.some((f) => f.startsWith(`tx ${K}:`)), r1.failures.join('\n'));

      const gap = variant('gap.db');
      mutate(gap, 'DELETE FROM writer_log WHERE seq = ?', Math.floor(K / 2));
      const r2 = checkSnapshotConsistency(gap, { minSeq: K });
      assert.ok(r2.failures.some((f) => f.includes('not the gap-free prefix')), r2.failures.join('\n'));

      const head = variant('head.db');
      mutate(head, "UPDATE memories SET content = ? WHERE title = 'writer-head'", writerHeadContent(K - 1));
      const r3 = checkSnapshotConsistency(head, { minSeq: K });
      assert.ok(r3.failures.some((f) => f.includes('writer head says')), r3.failures.join('\n'));

      const fts = variant('fts.db');
      // Change content behind the FTS index's back (drop the trigger first).
      withOpen(fts, (db) => {
        db.exec('DROP TRIGGER memories_au');
        db.prepare("UPDATE memories SET content = 'replaced' WHERE title = 'writer-head'").run();
      });
      const r4 = checkSnapshotConsistency(fts, {});
      assert.ok(r4.failures.some((f) => f.startsWith('FTS5 integrity-check')), r4.failures.join('\n'));
    });

    it('rejects a snapshot with a -wal beside it, a truncated file and a missing minSeq', () => {
      const withWal = variant('haswal.db');
      fs.writeFileSync(sidecars(withWal).wal, Buffer.alloc(0));
      const r1 = checkSnapshotConsistency(withWal, { minSeq: K });
      assert.ok(!r1.ok && !r1.openedInPlace);
      assert.ok(r1.failures.some((f) => f.includes('-wal file exists')), r1.failures.join('\n'));

      const truncated = variant('truncated.db');
      fs.truncateSync(truncated, fs.statSync(truncated).size - readDbHeader(truncated).pageSize);
      const r2 = checkSnapshotConsistency(truncated, { minSeq: K });
      assert.ok(r2.failures.some((f) => f.includes('truncated or padded')), r2.failures.join('\n'));

      const r3 = checkSnapshotConsistency(good, { minSeq: K + 1 });
      assert.ok(r3.failures.some((f) => f.includes('stale snapshot')), r3.failures.join('\n'));
      const r4 = checkSnapshotConsistency(good, { maxSeq: K - 1 });
      assert.ok(r4.failures.some((f) => f.includes('> maxSeq')), r4.failures.join('\n'));
    });
  });

  describe('tmp and procs helpers', () => {
    it('withTempDir removes its directory; useTempDir gives each test a fresh one', async () => {
      let seen = '';
      await withTempDir((d) => {
        seen = d;
        fs.writeFileSync(path.join(d, 'f'), 'x');
        assert.ok(fs.existsSync(d));
      });
      assert.strictEqual(fs.existsSync(seen), false);
      assert.ok(fs.existsSync(tmp.path) && fs.readdirSync(tmp.path).length === 0);
    });

    it('killAllTrackedAndWait kills tracked children by PID', async () => {
      const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
      trackChild(child, 'sleeper');
      const pid = child.pid;
      assert.ok(pid !== undefined && isAlive(pid));
      assert.ok(trackedPids().includes(pid));
      await killAllTrackedAndWait();
      assert.strictEqual(isAlive(pid), false);
      assert.deepStrictEqual(trackedPids(), []);
    });
  });
});
