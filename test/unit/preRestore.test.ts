/** Retention of the copies a restore keeps (`*.pre-restore-*.db` with -wal/-shm). */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { runBackup } from '../../src/core/ops/backup';
import { runRestore } from '../../src/core/ops/restore';
import { listPreRestoreCopies, prunePreRestoreCopies } from '../../src/core/store/preRestore';
import { createAiMemoryDb, readMemories, seedMemory } from '../support/aiMemoryDb';
import { makeHotJournalDb } from '../support/reliability';
import { useTempDir } from '../support/tmp';

const readMemoriesTitles = (db: string) => readMemories(db).map((m) => m.title);

describe('pre-restore copies: list and retention', () => {
  const tmp = useTempDir('aimb-prerestore-');

  function make(): string {
    const db = tmp.join('memories.db');
    fs.writeFileSync(db, 'current');
    for (const stamp of ['2026-11-20T100000Z', '2026-11-21T100000Z', '2026-11-21T100000Z_2', '2026-11-22T090000Z', '2026-11-23T080000Z']) {
      fs.writeFileSync(tmp.join(`memories.pre-restore-${stamp}.db`), stamp);
      fs.writeFileSync(tmp.join(`memories.pre-restore-${stamp}.db-wal`), 'wal');
      // As a restore leaves them: last written before the restore (a hard link keeps the mtime, and sets the ctime).
      const last = new Date(Date.parse(stamp.replace(/T(\d\d)(\d\d)(\d\d)Z.*/, 'T$1:$2:$3Z')) - 60_000);
      for (const x of ['', '-wal']) fs.utimesSync(tmp.join(`memories.pre-restore-${stamp}.db${x}`), last, last);
    }
    // Not ours to touch: another database's copy, a near-miss name, a snapshot.
    for (const n of ['other.pre-restore-2026-11-01T000000Z.db', 'memories.pre-restore-latest.db', 'ai-memory-2026-11-01T000000Z.db']) fs.writeFileSync(tmp.join(n), 'x');
    return db;
  }

  it('lists the copies of this database newest first, with their sidecars', async () => {
    const db = make();
    const list = await listPreRestoreCopies(db);
    assert.deepEqual(list.map((c) => c.name), [
      'memories.pre-restore-2026-11-23T080000Z.db',
      'memories.pre-restore-2026-11-22T090000Z.db',
      'memories.pre-restore-2026-11-21T100000Z_2.db',
      'memories.pre-restore-2026-11-21T100000Z.db',
      'memories.pre-restore-2026-11-20T100000Z.db',
    ]);
    assert.deepEqual(list[0].sidecars, [tmp.join('memories.pre-restore-2026-11-23T080000Z.db-wal')]);
  });

  it('keeps the newest N with their -wal, never the newest, never another file', async () => {
    const db = make();
    const r = await prunePreRestoreCopies(db, 3);
    assert.deepEqual(r.pruned.sort(), ['memories.pre-restore-2026-11-20T100000Z.db', 'memories.pre-restore-2026-11-21T100000Z.db']);
    const left = fs.readdirSync(tmp.path).sort();
    assert.ok(left.includes('memories.pre-restore-2026-11-21T100000Z_2.db-wal'));
    assert.ok(!left.includes('memories.pre-restore-2026-11-20T100000Z.db-wal'));
    for (const n of ['memories.db', 'other.pre-restore-2026-11-01T000000Z.db', 'memories.pre-restore-latest.db', 'ai-memory-2026-11-01T000000Z.db']) assert.ok(left.includes(n), n);
    assert.deepEqual((await prunePreRestoreCopies(db, 0)).pruned, [], '0 keeps all');
    await prunePreRestoreCopies(db, 1);
    assert.deepEqual((await listPreRestoreCopies(db)).map((c) => c.name), ['memories.pre-restore-2026-11-23T080000Z.db']);
  });

  it('never prunes the copy just made, though a clock set back named it older; copies named in the future go first', async () => {
    const db = make(); // copies named 2026-11-20 … 2026-11-23
    const justMade = tmp.join('memories.pre-restore-2026-11-19T120000Z.db'); // the clock is days behind
    fs.writeFileSync(justMade, 'the database the restore replaced');
    const now = Date.parse('2026-11-19T12:00:00Z');
    const r = await prunePreRestoreCopies(db, 2, { justMade, now });
    assert.ok(fs.existsSync(justMade), 'the copy just made is kept');
    // Every other copy is named in the future of this clock: they rank after it, the newest of them kept.
    assert.deepEqual((await listPreRestoreCopies(db)).map((c) => c.name).sort(), ['memories.pre-restore-2026-11-19T120000Z.db', 'memories.pre-restore-2026-11-23T080000Z.db']);
    assert.equal(r.pruned.length, 4);
    // keep 1: still the copy just made, whatever its name.
    await prunePreRestoreCopies(db, 1, { justMade, now: Date.parse('2026-11-30T00:00:00Z') });
    assert.deepEqual((await listPreRestoreCopies(db)).map((c) => c.name), ['memories.pre-restore-2026-11-19T120000Z.db']);
  });

  it('a copy kept with its -journal (a restore over a crashed writer\'s database) goes with its -journal: none is left behind', async () => {
    // A database copied mid-transaction in rollback mode: uncommitted pages in the main file, a hot -journal.
    const src = tmp.join('src', 'rollback.db');
    createAiMemoryDb(src, { memories: 60, walMode: false });
    const db = tmp.join('live', 'ai-memory.db');
    fs.mkdirSync(path.dirname(db));
    makeHotJournalDb(src, db);
    const good = tmp.join('good', 'ai-memory.db');
    createAiMemoryDb(good, { memories: 40, seed: 9 });
    const snap = await runBackup({ dbPath: good, backupDir: tmp.join('backups') });
    // The first restore keeps the damaged database aside with its -journal; the second keeps the restored one.
    const first = await runRestore({ dbPath: db, from: snap.snapshotPath, now: () => new Date('2026-11-20T10:00:00Z') });
    assert.ok(first.previous && fs.existsSync(`${first.previous}-journal`), 'the hot journal is kept with the copy');
    const listed = (await listPreRestoreCopies(db)).find((x) => x.path === first.previous);
    assert.ok(listed?.sidecars.includes(`${first.previous}-journal`), `the copy lists its -journal (${listed?.sidecars.join(', ')})`);
    const second = await runRestore({ dbPath: db, from: snap.snapshotPath, now: () => new Date('2026-11-21T10:00:00Z') });
    const r = await prunePreRestoreCopies(db, 1, { justMade: second.previous });
    assert.deepEqual(r.pruned, [path.basename(first.previous)]);
    const left = fs.readdirSync(path.dirname(db)).filter((n) => n.includes('pre-restore'));
    assert.deepEqual(left, [path.basename(second.previous ?? '')], 'no sidecar of the pruned copy is left');
  });

  it('two databases whose names differ only in their extension (memories.db, memories.sqlite) name their kept copies alike: neither prunes, lists or undoes the other\'s', async () => {
    // ai-memory names a kept copy `<stem>.pre-restore-<time>.db` (Rust's with_extension), whatever the extension.
    const dir = tmp.join('two');
    const db = path.join(dir, 'memories.db');
    const other = path.join(dir, 'memories.sqlite');
    createAiMemoryDb(db, { memories: 20, seed: 1 });
    createAiMemoryDb(other, { memories: 30, seed: 2 });
    const snapDb = await runBackup({ dbPath: db, backupDir: tmp.join('backups') });
    const snapOther = await runBackup({ dbPath: other, backupDir: tmp.join('backups-other') });
    // The .sqlite database is restored once: its only copy of what it held before.
    const o = await runRestore({ dbPath: other, from: snapOther.snapshotPath, now: () => new Date('2026-11-20T10:00:00Z') });
    const othersCopy = o.previous ?? '';
    const before = fs.readFileSync(othersCopy);
    // The .db database is restored twice, then its kept copies pruned to the newest one.
    await runRestore({ dbPath: db, from: snapDb.snapshotPath, now: () => new Date('2026-11-21T10:00:00Z') });
    const second = await runRestore({ dbPath: db, from: snapDb.snapshotPath, now: () => new Date('2026-11-22T10:00:00Z') });
    const r = await prunePreRestoreCopies(db, 1, { justMade: second.previous });
    assert.ok(fs.existsSync(othersCopy), `memories.sqlite's only kept copy survives the pruning of memories.db's (pruned: ${r.pruned.join(', ')})`);
    assert.deepEqual(fs.readFileSync(othersCopy), before);
    assert.deepEqual(r.pruned, [], 'whose each copy is cannot be told: none is deleted');
    assert.match(r.warnings.join('\n'), /memories\.sqlite/, 'the warning names the other database');
    // The listing says the copies may be the other database's, for both of them.
    const listed = await listPreRestoreCopies(db);
    assert.equal(listed.length, 3);
    for (const c of listed) assert.deepEqual(c.sharedWith, [other], c.name);
    assert.deepEqual((await listPreRestoreCopies(other)).map((c) => c.sharedWith), [[db], [db], [db]]);
    // A near-miss is not another database: a text file with the stem, a sidecar, another copy.
    fs.rmSync(other);
    fs.rmSync(`${other}-wal`, { force: true });
    fs.rmSync(`${other}-shm`, { force: true });
    fs.writeFileSync(path.join(dir, 'memories.json'), '{}');
    assert.deepEqual((await listPreRestoreCopies(db)).map((c) => c.sharedWith), [undefined, undefined, undefined]);
    assert.equal((await prunePreRestoreCopies(db, 1, { justMade: second.previous })).pruned.length, 2);
  });

  it('never prunes a kept copy something has written since ("Previous DB moved to …": an agent pointed at it to get the old memories back)', async () => {
    const db = tmp.join('live', 'ai-memory.db');
    createAiMemoryDb(db, { memories: 10, seed: 5 });
    const snap = await runBackup({ dbPath: db, backupDir: tmp.join('backups') });
    const first = await runRestore({ dbPath: db, from: snap.snapshotPath, now: () => new Date('2026-11-20T10:00:00Z') });
    const second = await runRestore({ dbPath: db, from: snap.snapshotPath, now: () => new Date('2026-11-21T10:00:00Z') });
    const third = await runRestore({ dbPath: db, from: snap.snapshotPath, now: () => new Date('2026-11-22T10:00:00Z') });
    // The user's agent now runs on the first kept copy, and writes a memory there.
    seedMemory(first.previous ?? '', 'notes', 'written in the kept copy', 'the agent uses this file now');
    const listed = await listPreRestoreCopies(db);
    assert.deepEqual(listed.map((c) => [path.basename(c.path), c.writtenSince === true]), [
      [path.basename(third.previous ?? ''), false],
      [path.basename(second.previous ?? ''), false],
      [path.basename(first.previous ?? ''), true],
    ]);
    const r = await prunePreRestoreCopies(db, 1, { justMade: third.previous });
    assert.deepEqual(r.pruned, [path.basename(second.previous ?? '')]);
    assert.ok(fs.existsSync(first.previous ?? ''), 'the copy in use as a database stays');
    assert.match(r.warnings.join('\n'), /written after the restore kept it/);
    assert.ok(readMemoriesTitles(first.previous ?? '').includes('written in the kept copy'));
  });
});
