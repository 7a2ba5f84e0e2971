/**
 * The consistent-image reader under races: checkpoints, WAL restarts and truncations that
 * happen while it reads (injected at the worst moment, after the stream and before the
 * end-of-read checks), rollback-mode writers, hot journals, and the refusals.
 */
import * as assert from 'assert';
import { createHash, randomBytes } from 'crypto';
import * as fs from 'fs';
import { BackupError } from '../../src/core/common/errors';
import { readConsistentImage } from '../../src/core/sqlite/image';
import { JOURNAL_MAGIC } from '../../src/core/sqlite/sqliteFormat';
import { TempFileSink } from '../../src/core/store/fileSink';
import { captureImage, nativeCheckpointedImage, nativeRows } from '../support/imageRef';
import { openNative, type NativeDb } from '../support/sqlite';
import { useTempDir } from '../support/tmp';

function liveDb(file: string, rows = 200): NativeDb {
  const db = openNative(file);
  db.pragma('journal_mode = WAL');
  db.pragma('wal_autocheckpoint = 0');
  db.exec('CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)');
  const ins = db.prepare('INSERT INTO t(v) VALUES (?)');
  db.transaction(() => {
    for (let i = 0; i < rows; i++) ins.run(`row ${i} ${'y'.repeat(400)}`);
  })();
  return db;
}

function count(image: Buffer, file: string): number {
  fs.writeFileSync(file, image);
  return Number(nativeRows<{ n: number }>(file, 'SELECT count(*) AS n FROM t')[0].n);
}

async function rejects(p: Promise<unknown>, code: string, re?: RegExp): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof BackupError, `a BackupError, got ${String(e)}`);
    assert.strictEqual(e.code, code, e.message);
    if (re) assert.match(e.message, re);
    return true;
  });
}

describe('consistent image reader: races and refusals', () => {
  const tmp = useTempDir();
  let db: NativeDb | undefined;
  afterEach(() => {
    db?.close();
    db = undefined;
  });

  it('a rollback-mode database is copied byte for byte', async () => {
    const file = tmp.join('r.db');
    const w = openNative(file);
    w.exec('CREATE TABLE t(v); INSERT INTO t VALUES (1),(2),(3);');
    w.close();
    const { image, info } = await captureImage(file);
    assert.strictEqual(info.walMode, false);
    assert.ok(image.equals(fs.readFileSync(file)));
  });

  it('a WAL database with a live writer: main file + committed WAL, marked rollback mode, self-contained', async () => {
    db = liveDb(tmp.join('w.db'));
    assert.ok(fs.statSync(tmp.join('w.db-wal')).size > 32, 'the rows live in the WAL');
    const { image, info } = await captureImage(tmp.join('w.db'));
    assert.ok(info.walCommitFrame > 0 && info.walMode);
    assert.strictEqual(image[18], 1);
    assert.strictEqual(image[19], 1);
    assert.ok(image.equals(nativeCheckpointedImage(tmp.join('w.db'))));
    assert.strictEqual(count(image, tmp.join('img.db')), 200);
    assert.ok(!fs.existsSync(tmp.join('img.db-wal')), 'opening the image read-only needed no WAL');
  });

  it('a database that shrank inside the WAL (VACUUM) is cut to the size of the last commit', async () => {
    db = liveDb(tmp.join('w.db'), 600);
    db.pragma('wal_checkpoint(TRUNCATE)');
    const before = fs.statSync(tmp.join('w.db')).size;
    db.exec('DELETE FROM t WHERE id > 50');
    db.exec('VACUUM');
    const { image, info } = await captureImage(tmp.join('w.db'));
    assert.ok(info.bytes < before, `image ${info.bytes} < main file ${before}`);
    assert.ok(image.equals(nativeCheckpointedImage(tmp.join('w.db'))));
    assert.strictEqual(count(image, tmp.join('img.db')), 50);
  });

  it('a writer changing the page size between the WAL scan and the header read (rollback mode, page_size, VACUUM, WAL again): read again, never "the WAL does not belong"', async () => {
    const file = tmp.join('w.db');
    db = liveDb(file);
    let fired = 0;
    const { image, info } = await captureImage(file, {
      mode: 'buffered',
      hook: async (point) => {
        if (point !== 'after-scan' || fired++) return;
        // What the writer does: it must be alone to leave WAL mode (the server's own connection).
        db?.close();
        const w = openNative(file);
        w.pragma('journal_mode = DELETE');
        w.pragma('page_size = 8192');
        w.exec('VACUUM');
        w.pragma('journal_mode = WAL');
        w.pragma('wal_autocheckpoint = 0');
        w.prepare('INSERT INTO t(v) VALUES (?)').run('after the page size change');
        db = w;
      },
    });
    assert.strictEqual(info.attempts, 2, 'the first read was discarded');
    assert.strictEqual(info.pageSize, 8192);
    assert.ok(image.equals(nativeCheckpointedImage(file)), 'byte for byte what SQLite itself holds');
    assert.strictEqual(count(image, tmp.join('img.db')), 201);
    assert.strictEqual(nativeRows<{ integrity_check: string }>(tmp.join('img.db'), 'PRAGMA integrity_check')[0].integrity_check, 'ok');
  });

  it('a stray -wal of another page size that stays so is refused at once (NOT_A_DATABASE), not read again', async () => {
    const other = tmp.join('other.db');
    db = liveDb(other); // 4096-byte pages, its rows in its WAL
    const file = tmp.join('w.db');
    const w = openNative(file);
    w.pragma('page_size = 8192');
    w.pragma('journal_mode = WAL');
    w.exec('CREATE TABLE t(v); INSERT INTO t VALUES (1);');
    w.close(); // checkpointed, its WAL removed
    fs.copyFileSync(`${other}-wal`, `${file}-wal`);
    const t0 = Date.now();
    await rejects(captureImage(file), 'NOT_A_DATABASE', /page size 4096 but the database has 8192/);
    assert.ok(Date.now() - t0 < 2000, 'no retries');
  });

  for (const mode of ['buffered', 'streaming'] as const) {
    it(`[${mode}] reads again when a TRUNCATE checkpoint empties the WAL during the read`, async () => {
      db = liveDb(tmp.join('w.db'));
      let fired = 0;
      const { image, info, sink } = await captureImage(tmp.join('w.db'), {
          mode,
        hook: async (point) => {
          if (point !== 'after-stream') return;
          if (fired++ === 0) db?.pragma('wal_checkpoint(TRUNCATE)');
        },
      });
      assert.strictEqual(info.attempts, 2, 'the first read was discarded');
      assert.strictEqual(sink.resets, 1);
      assert.strictEqual(count(image, tmp.join('img.db')), 200);
    });

    it(`[${mode}] catches up when a checkpoint copies transactions newer than the scan into the main file (shm nBackfillAttempted)`, async () => {
      db = liveDb(tmp.join('w.db'));
      let fired = 0;
      const { image, info } = await captureImage(tmp.join('w.db'), {
          mode,
        hook: async (point) => {
          if (point !== 'after-stream') return;
          if (fired++ > 0) return;
          // A newer transaction, then a PASSIVE checkpoint that copies it into the main file
          // (no WAL restart: the header stays the same; only the wal-index tells).
          db?.prepare('INSERT INTO t(v) VALUES (?)').run('newer');
          db?.pragma('wal_checkpoint(PASSIVE)');
        },
      });
      // The image (in memory, or already streamed out) is brought up to the newer commit: no second read.
      assert.strictEqual(info.attempts, 1);
      assert.strictEqual(info.catchUps, 1);
      assert.strictEqual(count(image, tmp.join('img.db')), 201, 'the image holds the newer transaction too');
      assert.ok(image.equals(nativeCheckpointedImage(tmp.join('w.db'))), 'byte for byte what SQLite itself holds');
    });

    it(`[${mode}] accepts a read during which transactions committed but no checkpoint ran (they are simply not in this snapshot)`, async () => {
      db = liveDb(tmp.join('w.db'));
      let fired = 0;
      const { image, info } = await captureImage(tmp.join('w.db'), {
          mode,
        hook: async (point) => {
          if (point !== 'after-stream') return;
          if (fired++ === 0) db?.prepare('INSERT INTO t(v) VALUES (?)').run('during');
        },
      });
      assert.strictEqual(info.attempts, 1);
      assert.strictEqual(count(image, tmp.join('img.db')), 200, 'exactly the state at the scan');
    });

    it(`[${mode}] reads again when a RESTART rewrites the WAL header (new salts) during the read`, async () => {
      db = liveDb(tmp.join('w.db'));
      let fired = 0;
      const { image, info } = await captureImage(tmp.join('w.db'), {
          mode,
        hook: async (point) => {
          if (point !== 'after-stream') return;
          if (fired++ > 0) return;
          db?.pragma('wal_checkpoint(RESTART)');
          db?.prepare('INSERT INTO t(v) VALUES (?)').run('new generation');
        },
      });
      assert.strictEqual(info.attempts, 2);
      assert.strictEqual(count(image, tmp.join('img.db')), 201);
    });

    it(`[${mode}] keeps reading past its count of reads while its patience lasts, then gets through`, async () => {
      db = liveDb(tmp.join('w.db'));
      let overtaken = 0;
      const { image, info } = await captureImage(tmp.join('w.db'), {
        mode,
        maxAttempts: 3,
        patienceMs: 60_000,
        hook: async (point) => {
          // The first reads (and their catch-ups) are each overtaken by a checkpointed commit.
          if (point !== 'after-stream' && point !== 'after-catch-up') return;
          if (overtaken >= 8) return;
          overtaken++;
          db?.prepare('INSERT INTO t(v) VALUES (?)').run('again');
          db?.pragma('wal_checkpoint(RESTART)');
        },
      });
      assert.ok(info.attempts > 3, `${info.attempts} reads`);
      assert.strictEqual(count(image, tmp.join('img.db')), (db?.prepare('SELECT count(*) AS n FROM t').get() as { n: number }).n);
    });

    it(`[${mode}] gives up with "database too busy" when every read races a checkpoint`, async () => {
      db = liveDb(tmp.join('w.db'));
      await rejects(
        captureImage(tmp.join('w.db'), {
          mode,
          maxAttempts: 3,
          patienceMs: 0,
          hook: async (point) => {
            // After every read, and after every catch-up: a newer commit, checkpointed.
            if (point !== 'after-stream' && point !== 'after-catch-up') return;
            db?.prepare('INSERT INTO t(v) VALUES (?)').run('again');
            db?.pragma('wal_checkpoint(PASSIVE)');
          },
        }),
        'DB_BUSY',
        /too busy/,
      );
    });
  }

  for (const mode of ['buffered', 'streaming'] as const) describe(`catching up (${mode} reads)`, () => {
    it('follows the database as it grows: new pages come from the new frames', async () => {
      db = liveDb(tmp.join('w.db'));
      let fired = 0;
      const { image, info } = await captureImage(tmp.join('w.db'), {
        mode,
        hook: async (point) => {
          if (point !== 'after-stream' || fired++ > 0) return;
          db?.prepare('INSERT INTO t(v) VALUES (?)').run('x'.repeat(60_000)); // ~15 new pages
          db?.pragma('wal_checkpoint(PASSIVE)');
        },
      });
      assert.strictEqual(info.attempts, 1);
      assert.strictEqual(info.catchUps, 1);
      assert.ok(image.equals(nativeCheckpointedImage(tmp.join('w.db'))));
      assert.strictEqual(count(image, tmp.join('img.db')), 201);
    });

    it('follows the database as it shrinks (VACUUM inside the WAL)', async () => {
      db = liveDb(tmp.join('w.db'), 600);
      let fired = 0;
      const { image, info } = await captureImage(tmp.join('w.db'), {
        mode,
        hook: async (point) => {
          if (point !== 'after-stream' || fired++ > 0) return;
          db?.exec('DELETE FROM t WHERE id > 50');
          db?.exec('VACUUM');
          db?.pragma('wal_checkpoint(PASSIVE)');
        },
      });
      assert.strictEqual(info.attempts, 1);
      assert.ok((info.catchUps ?? 0) >= 1);
      assert.ok(image.equals(nativeCheckpointedImage(tmp.join('w.db'))));
      assert.strictEqual(count(image, tmp.join('img.db')), 50);
    });

    it('reads again when the WAL restarts right after a catch-up (the frames it used may be reused)', async () => {
      db = liveDb(tmp.join('w.db'));
      let stage = 0;
      const { image, info } = await captureImage(tmp.join('w.db'), {
        mode,
        hook: async (point) => {
          if (point === 'after-stream' && stage === 0) {
            stage = 1;
            db?.prepare('INSERT INTO t(v) VALUES (?)').run('newer');
            db?.pragma('wal_checkpoint(PASSIVE)');
          } else if (point === 'after-catch-up' && stage === 1) {
            stage = 2;
            db?.pragma('wal_checkpoint(RESTART)');
            db?.prepare('INSERT INTO t(v) VALUES (?)').run('new generation');
          }
        },
      });
      assert.strictEqual(stage, 2, 'the restart happened after a catch-up');
      assert.strictEqual(info.attempts, 2, 'the caught-up read was discarded');
      assert.strictEqual(count(image, tmp.join('img.db')), 202);
      assert.ok(image.equals(nativeCheckpointedImage(tmp.join('w.db'))));
    });
  });

  it('a streamed read caught up in the backup temp file: the file is what SQLite holds and its hash is taken again', async () => {
    db = liveDb(tmp.join('w.db'));
    const out = tmp.join('snapshot.tmp');
    const sink = new TempFileSink(out, { holdUpTo: 0, chunkBytes: 64 * 1024 });
    let fired = 0;
    const info = await readConsistentImage(tmp.join('w.db'), sink, {
      bufferBytes: 0,
      chunkBytes: 64 * 1024,
      hook: async (point) => {
        if (point !== 'after-stream' || fired++ > 0) return;
        db?.prepare('INSERT INTO t(v) VALUES (?)').run('x'.repeat(60_000)); // grows: new pages only in the new frames
        db?.pragma('wal_checkpoint(PASSIVE)');
      },
    });
    await sink.drain();
    const sha = await sink.finish();
    assert.strictEqual(info.catchUps, 1);
    const bytes = fs.readFileSync(out);
    assert.ok(bytes.equals(nativeCheckpointedImage(tmp.join('w.db'))), 'byte for byte what SQLite itself holds');
    assert.strictEqual(sha, createHash('sha256').update(bytes).digest('hex'), 'the hash is of the file as written, not of the chunks as streamed');
  });

  for (const mode of ['buffered', 'streaming'] as const) {
    it(`[${mode}] random checkpoints, restarts and truncations at every point of the read: every accepted image is consistent`, async function () {
      this.timeout(120_000);
      // A seeded PRNG so a failure can be replayed.
      let seed = mode === 'buffered' ? 12345 : 67890;
      const rand = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
      const actions = ['nothing', 'commit', 'passive', 'restart', 'truncate', 'truncate+commit', 'restart+commit', 'commit+passive'] as const;
      const file = tmp.join('w.db');
      db = liveDb(file, 100);
      const ins = db.prepare('INSERT INTO t(v) VALUES (?)');
      const act = (a: (typeof actions)[number]) => {
        if (a.includes('commit') && !a.startsWith('commit')) db?.pragma(`wal_checkpoint(${a.split('+')[0].toUpperCase()})`);
        if (a.includes('commit')) ins.run(`x ${'z'.repeat(300)}`);
        if (a === 'commit+passive') db?.pragma('wal_checkpoint(PASSIVE)');
        if (a === 'passive' || a === 'restart' || a === 'truncate') db?.pragma(`wal_checkpoint(${a.toUpperCase()})`);
      };
      const seen: Record<string, number> = {};
      for (let i = 0; i < 150; i++) {
        // Half the time a commit first, so the WAL holds frames no checkpoint has copied yet:
        // then a later commit appends (no restart) and a checkpoint can overtake the read
        // within the same WAL generation — the case a buffered read catches up on.
        if (rand() < 0.5) ins.run(`x ${'z'.repeat(300)}`);
        const rowsBefore = Number(db.prepare('SELECT count(*) AS n FROM t').get()?.n);
        const pick = () => actions[Math.floor(rand() * actions.length)];
        // Quiet half the time at the other points, so that races in two steps (a commit, then a
        // checkpoint overtaking the read; then one during the catch-up) come up too.
        const quietOrPick = () => (rand() < 0.5 ? 'nothing' : pick());
        const plan = { 'after-scan': quietOrPick(), 'after-stream': pick(), 'before-header-recheck': quietOrPick(), 'after-catch-up': pick() };
        let first = true;
        let firstCatchUp = true;
        const { image, info } = await captureImage(file, {
          mode,
          hook: async (point) => {
            if (point === 'after-catch-up') {
              if (firstCatchUp) act(plan[point]);
              firstCatchUp = false;
              return;
            }
            if (first) act(plan[point]);
            if (point === 'before-header-recheck') first = false;
          },
        });
        if (info.catchUps) seen['caught-up'] = (seen['caught-up'] ?? 0) + 1;
        seen[info.acceptedBy?.replace(/\(.*/, '') ?? '?'] = (seen[info.acceptedBy?.replace(/\(.*/, '') ?? '?'] ?? 0) + 1;
        const out = tmp.join(`img${i}.db`);
        fs.writeFileSync(out, image);
        const check = openNative(out, { readonly: true });
        try {
          assert.strictEqual(check.pragma('integrity_check', { simple: true }), 'ok', `iteration ${i} ${JSON.stringify(plan)} accepted by ${info.acceptedBy}`);
          const n = Number(check.prepare('SELECT count(*) AS n FROM t').get()?.n);
          assert.ok(n >= rowsBefore, `iteration ${i}: ${n} rows < ${rowsBefore} committed before the read`);
          // One row per commit, ids 1, 2, 3…: a consistent image holds a prefix of them.
          const top = Number(check.prepare('SELECT max(id) AS m FROM t').get()?.m);
          assert.strictEqual(top, n, `iteration ${i} ${JSON.stringify(plan)}: rows 1..${top} but ${n} of them (accepted by ${info.acceptedBy}, ${info.catchUps ?? 0} catch-ups)`);
        } finally {
          check.close();
        }
      }
      assert.ok(Object.keys(seen).length >= 2, `several acceptance rules were exercised: ${JSON.stringify(seen)}`);
      // The PRNG is seeded, so which iterations catch up is the same on every run.
      assert.ok((seen['caught-up'] ?? 0) > 0, `some reads were caught up: ${JSON.stringify(seen)}`);
      console.log(`      accepted: ${JSON.stringify(seen)}`);
    });
  }

  it('reads again when a rollback-mode writer commits during the read', async () => {
    const file = tmp.join('r.db');
    db = openNative(file);
    db.exec('CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)');
    db.prepare('INSERT INTO t(v) VALUES (?)').run('one');
    let fired = 0;
    const { image, info } = await captureImage(file, {
      hook: async (point) => {
          if (point !== 'after-stream') return;
        if (fired++ === 0) db?.prepare('INSERT INTO t(v) VALUES (?)').run('two');
      },
    });
    assert.strictEqual(info.attempts, 2);
    assert.strictEqual(count(image, tmp.join('img.db')), 2);
  });

  it('refuses a database with a hot rollback journal (a writer crashed mid-transaction)', async () => {
    const file = tmp.join('r.db');
    const w = openNative(file);
    w.exec('CREATE TABLE t(v); INSERT INTO t VALUES (1);');
    w.close();
    fs.writeFileSync(`${file}-journal`, Buffer.concat([JOURNAL_MAGIC, Buffer.alloc(504)]));
    await rejects(captureImage(file, { maxAttempts: 2 }), 'HOT_JOURNAL', /rollback journal/);
  });

  it('copies an encrypted-looking file as it is and says it is encrypted', async () => {
    const file = tmp.join('enc.db');
    fs.writeFileSync(file, randomBytes(16384)); // what SQLCipher's ciphertext looks like
    const { image, info } = await captureImage(file);
    assert.strictEqual(info.kind, 'encrypted');
    assert.ok(image.equals(fs.readFileSync(file)));
  });

  it('refuses what is not a database, and never creates one', async () => {
    await rejects(captureImage(tmp.join('missing.db')), 'DB_NOT_FOUND');
    assert.ok(!fs.existsSync(tmp.join('missing.db')), 'nothing was created');
    fs.mkdirSync(tmp.join('dir.db'));
    await rejects(captureImage(tmp.join('dir.db')), 'DB_IS_DIRECTORY');
    fs.writeFileSync(tmp.join('empty.db'), '');
    await rejects(captureImage(tmp.join('empty.db')), 'DB_EMPTY');
    fs.writeFileSync(tmp.join('notes.db'), 'these are my notes, not a database\n'.repeat(100));
    await rejects(captureImage(tmp.join('notes.db')), 'NOT_A_DATABASE');
  });
});
