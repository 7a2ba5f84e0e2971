/** Retention of the copies a restore keeps (`*.pre-restore-*.db` with -wal/-shm). */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { runBackup } from '../../src/core/ops/backup';
import { runRestore } from '../../src/core/ops/restore';
import { listPreRestoreCopies, prunePreRestoreCopies } from '../../src/core/store/preRestore';
import { createAiMemoryDb, readMemories, seedMemory } from '../support/aiMemoryDb';
import { makeHotJournalDb, runCliProcess } from '../support/reliability';
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

  it('a copy kept by a restore under a clock a year ahead is listed after the copy a restore kept since', async function () {
    const libfaketime = '/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1';
    if (!fs.existsSync(libfaketime)) this.skip(); // Debian's faketime package
    const db = tmp.join('clock', 'memories.db');
    createAiMemoryDb(db, { memories: 5 });
    const snap = (await runBackup({ dbPath: db, backupDir: tmp.join('clock', 'backups'), verify: 'off' })).snapshotPath;
    const restore = async (env: NodeJS.ProcessEnv) => {
      const r = await runCliProcess(['restore', '--db', db, '--from', snap, '--json'], { cwd: tmp.path, env });
      assert.equal(r.code, 0, r.stderr);
      return (JSON.parse(r.stdout) as { previous: string }).previous;
    };
    const ahead = await restore({ LD_PRELOAD: libfaketime, FAKETIME: '+365d' }); // real restore processes, the first one's clock a year ahead
    const since = await restore({});
    const list = await listPreRestoreCopies(db);
    assert.deepEqual(list.map((c) => c.path), [since, ahead], 'the copy the last restore kept comes first');
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
  it('databases of one stem in one folder (foo.db, foo.sqlite) keep their own copies: listed and pruned apart (Restore and Delete Kept Copy offer a database only its own)', async () => {
    const dir = tmp.join('live');
    fs.mkdirSync(dir);
    const dbs = [path.join(dir, 'foo.db'), path.join(dir, 'foo.sqlite')];
    const before = new Map<string, Buffer>();
    for (const [i, db] of dbs.entries()) {
      createAiMemoryDb(db, { memories: 10 + i * 5, seed: i + 1, walMode: false });
      before.set(db, fs.readFileSync(db));
    }
    const good = tmp.join('good', 'ai-memory.db');
    createAiMemoryDb(good, { memories: 40, seed: 9 });
    const snap = await runBackup({ dbPath: good, backupDir: tmp.join('backups') });
    // One restore of each, in the same second.
    const at = () => new Date('2026-11-20T10:00:00Z');
    const kept = new Map<string, string>();
    for (const db of dbs) kept.set(db, (await runRestore({ dbPath: db, from: snap.snapshotPath, now: at })).previous ?? '');
    for (const db of dbs) {
      const list = await listPreRestoreCopies(db);
      assert.deepEqual(list.map((c) => c.path), [kept.get(db)], `${path.basename(db)} lists its own copy only`);
      assert.deepEqual(fs.readFileSync(list[0].path), before.get(db), `${path.basename(db)}'s copy holds what it was`);
    }
    // ai-memory's own restore names any database's copy <stem>.pre-restore-<ts>.db: still found for foo.db.
    const aiMemoryMade = path.join(dir, 'foo.pre-restore-2026-11-19T100000Z.db');
    fs.writeFileSync(aiMemoryMade, 'made by ai-memory restore');
    assert.ok((await listPreRestoreCopies(dbs[0])).some((c) => c.path === aiMemoryMade), 'foo.db: the copy ai-memory named');
    assert.ok(!(await listPreRestoreCopies(dbs[1])).some((c) => c.path === aiMemoryMade), 'foo.sqlite: not its copy while foo.db is there');
    // A second restore of foo.db, pruned to one copy: foo.sqlite's copy stays.
    const again = await runRestore({ dbPath: dbs[0], from: snap.snapshotPath, now: () => new Date('2026-11-21T10:00:00Z') });
    await prunePreRestoreCopies(dbs[0], 1, { justMade: again.previous });
    assert.ok(fs.existsSync(kept.get(dbs[1]) ?? ''), "foo.sqlite's copy is not pruned by foo.db's restore");
    assert.deepEqual((await listPreRestoreCopies(dbs[1])).map((c) => c.path), [kept.get(dbs[1])]);
    // Alone in its folder, a .sqlite database's copy that ai-memory's restore made is its own.
    const lone = tmp.join('lone', 'bar.sqlite');
    fs.mkdirSync(path.dirname(lone));
    fs.writeFileSync(lone, 'x');
    fs.writeFileSync(tmp.join('lone', 'bar.pre-restore-2026-11-19T100000Z.db'), 'made by ai-memory restore');
    assert.deepEqual((await listPreRestoreCopies(lone)).map((c) => c.name), ['bar.pre-restore-2026-11-19T100000Z.db']);
  });

  it('copies named <stem>.pre-restore-<time>.db beside two databases of that stem (ai-memory\'s restore names every database\'s copy so) are never pruned: whose each is cannot be told', async () => {
    const dir = tmp.join('two');
    const db = path.join(dir, 'memories.db');
    const other = path.join(dir, 'memories.sqlite');
    createAiMemoryDb(db, { memories: 20, seed: 1 });
    createAiMemoryDb(other, { memories: 30, seed: 2, walMode: false });
    const snapDb = await runBackup({ dbPath: db, backupDir: tmp.join('backups') });
    // ai-memory's own restore of memories.sqlite kept what it held as memories.pre-restore-<time>.db (Rust's with_extension).
    const othersCopy = path.join(dir, 'memories.pre-restore-2026-11-20T100000Z.db');
    fs.copyFileSync(other, othersCopy);
    const was = new Date('2026-11-20T09:00:00Z'); // as a restore leaves it: renamed (ctime now), its mtime the database's
    fs.utimesSync(othersCopy, was, was);
    const before = fs.readFileSync(othersCopy);
    // The .db database is restored twice, then its kept copies pruned to the newest one.
    await runRestore({ dbPath: db, from: snapDb.snapshotPath, now: () => new Date('2026-11-21T10:00:00Z') });
    const second = await runRestore({ dbPath: db, from: snapDb.snapshotPath, now: () => new Date('2026-11-22T10:00:00Z') });
    const r = await prunePreRestoreCopies(db, 1, { justMade: second.previous });
    assert.ok(fs.existsSync(othersCopy), `memories.sqlite's only kept copy survives the pruning of memories.db's (pruned: ${r.pruned.join(', ')})`);
    assert.deepEqual(fs.readFileSync(othersCopy), before);
    assert.deepEqual(r.pruned, [], 'whose each copy is cannot be told: none is deleted');
    assert.match(r.warnings.join('\n'), /memories\.sqlite/, 'the warning names the other database');
    // The listing says the copies may be the other database's; memories.sqlite does not list them while memories.db is there.
    const listed = await listPreRestoreCopies(db);
    assert.equal(listed.length, 3);
    for (const c of listed) assert.deepEqual(c.sharedWith, [other], c.name);
    assert.deepEqual(await listPreRestoreCopies(other), []);
    // A near-miss is not another database: a text file with the stem, a sidecar, another copy.
    fs.rmSync(other);
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
