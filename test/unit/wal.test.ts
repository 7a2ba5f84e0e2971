/**
 * The WAL reader against native SQLite: for every shape of `-wal` (clean, torn, corrupt,
 * stale frames after a restart, big-endian checksums, uncommitted tail), the image we build
 * must be byte-identical to what SQLite itself recovers and checkpoints from the same files.
 */
import * as assert from 'assert';
import * as fs from 'fs';
import { promises as fsp } from 'fs';
import { frameOffset, frameSize, parseWalHeader, scanWal, walChecksum, WAL_FRAME_HEADER_SIZE } from '../../src/core/sqlite/wal';
import { captureImage, nativeCheckpointedImage, nativeRows } from '../support/imageRef';
import { openNative, type NativeDb } from '../support/sqlite';
import { useTempDir } from '../support/tmp';

/** A WAL-mode database whose last `commits` transactions sit un-checkpointed in its -wal. */
function walDb(file: string, commits: number, opts: { pageSize?: number; rowBytes?: number } = {}): NativeDb {
  const db = openNative(file);
  if (opts.pageSize) db.pragma(`page_size = ${opts.pageSize}`);
  db.pragma('journal_mode = WAL');
  db.pragma('wal_autocheckpoint = 0');
  db.exec('CREATE TABLE t(id INTEGER PRIMARY KEY, tx INTEGER, v TEXT)');
  db.pragma('wal_checkpoint(TRUNCATE)');
  const ins = db.prepare('INSERT INTO t(tx, v) VALUES (?, ?)');
  for (let tx = 1; tx <= commits; tx++) {
    db.transaction(() => {
      for (let k = 0; k < 3; k++) ins.run(tx, 'x'.repeat(opts.rowBytes ?? 300) + tx);
    })();
  }
  return db;
}

async function scanFile(walPath: string) {
  const fh = await fsp.open(walPath, 'r');
  try {
    return await scanWal(fh);
  } finally {
    await fh.close();
  }
}

describe('WAL reader (fileformat2 §4) against native SQLite', () => {
  const tmp = useTempDir();
  const open: NativeDb[] = [];
  afterEach(() => {
    for (const db of open.splice(0)) db.close();
  });

  it('parses a real WAL header and rejects damaged ones', () => {
    const db = walDb(tmp.join('a.db'), 2);
    open.push(db);
    const raw = fs.readFileSync(tmp.join('a.db-wal')).subarray(0, 32);
    const h = parseWalHeader(Buffer.from(raw));
    assert.ok(h, 'a real header parses');
    assert.strictEqual(h.pageSize, 4096);
    for (const [off, why] of [[0, 'magic'], [4, 'format version'], [20, 'salt (breaks the header checksum)'], [28, 'checksum']] as const) {
      const bad = Buffer.from(raw);
      bad[off] ^= 0x40;
      assert.strictEqual(parseWalHeader(bad), undefined, `a damaged ${why} is rejected`);
    }
  });

  it('finds every committed frame of a clean WAL and the database size after the last commit', async () => {
    const db = walDb(tmp.join('a.db'), 20);
    open.push(db);
    const scan = await scanFile(tmp.join('a.db-wal'));
    const walSize = fs.statSync(tmp.join('a.db-wal')).size;
    assert.strictEqual(frameOffset(scan.commitFrame + 1, 4096), walSize, 'the last commit frame ends the file');
    assert.strictEqual(scan.dbPages, Number(db.pragma('page_count', { simple: true })));
    const { image, info } = await captureImage(tmp.join('a.db'));
    assert.strictEqual(info.walCommitFrame, scan.commitFrame);
    assert.ok(image.equals(nativeCheckpointedImage(tmp.join('a.db'))), 'image equals the natively checkpointed file');
    assert.strictEqual(nativeRows(tmp.join('a.db'), 'SELECT count(*) AS n FROM t')[0].n, 60);
  });

  it('ignores a torn last frame exactly as SQLite does (the last transaction is lost, nothing else)', async () => {
    const db = walDb(tmp.join('a.db'), 10);
    open.push(db);
    const wal = fs.readFileSync(tmp.join('a.db-wal'));
    const torn = wal.subarray(0, wal.length - 1000); // cut inside the last frame
    fs.mkdirSync(tmp.join('torn'));
    fs.copyFileSync(tmp.join('a.db'), tmp.join('torn', 'a.db'));
    fs.writeFileSync(tmp.join('torn', 'a.db-wal'), torn);
    const { image } = await captureImage(tmp.join('torn', 'a.db'));
    const ref = nativeCheckpointedImage(tmp.join('torn', 'a.db'), torn);
    assert.ok(image.equals(ref), 'same bytes as native recovery of the torn WAL');
    fs.writeFileSync(tmp.join('torn', 'img.db'), image);
    const txs = nativeRows<{ tx: number }>(tmp.join('torn', 'img.db'), 'SELECT DISTINCT tx FROM t ORDER BY tx').map((r) => r.tx);
    assert.deepStrictEqual(txs, [1, 2, 3, 4, 5, 6, 7, 8, 9], 'whole transactions 1..9, not 10');
  });

  it('stops at a frame whose checksum fails, like SQLite (later transactions are not applied)', async () => {
    const db = walDb(tmp.join('a.db'), 10);
    open.push(db);
    const wal = Buffer.from(fs.readFileSync(tmp.join('a.db-wal')));
    const scan = await scanFile(tmp.join('a.db-wal'));
    // Flip one byte in the page data of a frame in the middle of the log.
    const mid = Math.floor(scan.commitFrame / 2);
    wal[frameOffset(mid, 4096) + WAL_FRAME_HEADER_SIZE + 100] ^= 0xff;
    fs.mkdirSync(tmp.join('bad'));
    fs.copyFileSync(tmp.join('a.db'), tmp.join('bad', 'a.db'));
    fs.writeFileSync(tmp.join('bad', 'a.db-wal'), wal);
    const { image, info } = await captureImage(tmp.join('bad', 'a.db'));
    assert.ok(info.walCommitFrame < mid, 'no commit at or after the damaged frame is used');
    assert.ok(image.equals(nativeCheckpointedImage(tmp.join('bad', 'a.db'), wal)), 'same bytes as native recovery');
  });

  it('skips stale frames of an earlier WAL generation left after a restart (salts differ)', async () => {
    const db = walDb(tmp.join('a.db'), 30);
    open.push(db);
    // PASSIVE backfills everything; the next write restarts the log from frame 1 with new
    // salts, leaving the old generation's frames after the new ones.
    db.pragma('wal_checkpoint(PASSIVE)');
    db.prepare('INSERT INTO t(tx, v) VALUES (99, ?)').run('after restart');
    const walPath = tmp.join('a.db-wal');
    const scan = await scanFile(walPath);
    assert.ok(fs.statSync(walPath).size > frameOffset(scan.commitFrame + 1, 4096), 'old frames remain after the new ones');
    const { image } = await captureImage(tmp.join('a.db'));
    assert.ok(image.equals(nativeCheckpointedImage(tmp.join('a.db'))));
    fs.writeFileSync(tmp.join('img.db'), image);
    assert.strictEqual(nativeRows(tmp.join('img.db'), 'SELECT count(*) AS n FROM t')[0].n, 91);
  });

  it('reads a WAL with big-endian checksums (magic 0x377f0683), as written on big-endian hosts', async () => {
    const db = walDb(tmp.join('a.db'), 8);
    open.push(db);
    const le = fs.readFileSync(tmp.join('a.db-wal'));
    const be = Buffer.from(le);
    be.writeUInt32BE(0x377f0683, 0);
    const hv = new DataView(be.buffer, be.byteOffset, be.length);
    let s = walChecksum(hv, 0, 24, false, [0, 0]);
    be.writeUInt32BE(s[0], 24);
    be.writeUInt32BE(s[1], 28);
    const fsz = frameSize(4096);
    for (let off = 32; off + fsz <= be.length; off += fsz) {
      s = walChecksum(hv, off, 8, false, s);
      s = walChecksum(hv, off + 24, 4096, false, s);
      be.writeUInt32BE(s[0], off + 16);
      be.writeUInt32BE(s[1], off + 20);
    }
    fs.mkdirSync(tmp.join('be'));
    fs.copyFileSync(tmp.join('a.db'), tmp.join('be', 'a.db'));
    fs.writeFileSync(tmp.join('be', 'a.db-wal'), be);
    const { image, info } = await captureImage(tmp.join('be', 'a.db'));
    assert.ok(info.walCommitFrame > 0, 'the big-endian log is accepted');
    const ref = nativeCheckpointedImage(tmp.join('be', 'a.db'), be);
    assert.ok(image.equals(ref), 'same bytes as native SQLite reading the big-endian log');
    assert.ok(image.equals(nativeCheckpointedImage(tmp.join('a.db'))), 'and the same content as the little-endian original');
  });

  it('ignores valid frames after the last commit (a transaction still being written)', async () => {
    const db = walDb(tmp.join('a.db'), 5);
    open.push(db);
    const wal = fs.readFileSync(tmp.join('a.db-wal'));
    const scan = await scanFile(tmp.join('a.db-wal'));
    // Append a correctly checksummed, non-commit frame rewriting page 2 with garbage.
    const frame = Buffer.alloc(frameSize(4096));
    frame.writeUInt32BE(2, 0);
    frame.writeUInt32BE(0, 4); // not a commit
    wal.copy(frame, 8, 16, 24); // salts
    frame.fill(0xab, 24);
    const view = new DataView(frame.buffer, frame.byteOffset, frame.length);
    let s = walChecksum(view, 0, 8, true, scan.checksum);
    s = walChecksum(view, 24, 4096, true, s);
    frame.writeUInt32BE(s[0], 16);
    frame.writeUInt32BE(s[1], 20);
    const longer = Buffer.concat([wal, frame]);
    fs.mkdirSync(tmp.join('u'));
    fs.copyFileSync(tmp.join('a.db'), tmp.join('u', 'a.db'));
    fs.writeFileSync(tmp.join('u', 'a.db-wal'), longer);
    const after = await scanFile(tmp.join('u', 'a.db-wal'));
    assert.strictEqual(after.commitFrame, scan.commitFrame);
    assert.strictEqual(after.uncommittedFrames, 1, 'the frame is valid but uncommitted');
    const { image } = await captureImage(tmp.join('u', 'a.db'));
    assert.ok(image.equals(nativeCheckpointedImage(tmp.join('u', 'a.db'), longer)));
  });

  it('handles page sizes from 512 to 65536', async () => {
    for (const pageSize of [512, 1024, 8192, 65536]) {
      const file = tmp.join(`p${pageSize}.db`);
      const db = walDb(file, 6, { pageSize, rowBytes: 700 });
      try {
        const { image, info } = await captureImage(file);
        assert.strictEqual(info.pageSize, pageSize);
        assert.ok(info.walCommitFrame > 0);
        assert.ok(image.equals(nativeCheckpointedImage(file)), `page size ${pageSize}`);
      } finally {
        db.close();
      }
    }
  });
});
