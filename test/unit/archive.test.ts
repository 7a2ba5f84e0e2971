/**
 * The page-dedup archive with real databases (native SQLite writes them): archiving keeps
 * the newest --plain N plain, stores each page once, and every archived snapshot rebuilds
 * byte-identical to its manifest's sha256 — across page-size changes, files that are not a
 * whole number of pages, retention deleting archived snapshots (packs collected, mostly-dead
 * packs repacked), damaged packs (verify names the snapshots they affect), restore and
 * materialize of archived snapshots, and pins.
 */
import * as assert from 'assert';
import { execFileSync } from 'child_process';
import { createHash, randomBytes } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { runBackup } from '../../src/core/ops/backup';
import { archiveOlder, runPrune } from '../../src/core/ops/prune';
import { runRestore } from '../../src/core/ops/restore';
import { ARCHIVE_DIR, archivePaths, archiveSnapshot, collectGarbage, listArchived, PackStore, readIndex, rebuildArchived } from '../../src/core/store/archive';
import { deleteSnapshot, listSnapshots } from '../../src/core/store/catalog';
import { OUR_TOOL, serializeManifest } from '../../src/core/store/manifest';
import { pinSnapshot } from '../../src/core/store/pins';
import { createAiMemoryDb, seedMemory } from '../support/aiMemoryDb';
import { cli } from '../support/cliRun';
import { openNative } from '../support/sqlite';
import { flipByte } from '../support/sqliteFiles';
import { useTempDir } from '../support/tmp';

const sha = (f: string) => createHash('sha256').update(fs.readFileSync(f)).digest('hex');

interface IndexV2Header {
  v: 2;
  snapshot: string;
  sha256: string;
  bytes: number;
  piece: number;
  pieces: number;
  base: string;
  basePieces: number;
  changed: number;
}
/** An index v2's header and changed pages (archive.ts: `AIMIDX02`, header length, JSON, (page u32, sha256) each, sha256). */
function decodeIndexV2(bytes: Buffer): { header: IndexV2Header; changes: { page: number; hash: Buffer }[] } {
  assert.strictEqual(bytes.toString('latin1', 0, 8), 'AIMIDX02');
  const jl = bytes.readUInt32LE(8);
  const header = JSON.parse(bytes.toString('utf8', 12, 12 + jl)) as IndexV2Header;
  const changes: { page: number; hash: Buffer }[] = [];
  for (let at = 12 + jl; at < bytes.length - 32; at += 36) changes.push({ page: bytes.readUInt32LE(at), hash: Buffer.from(bytes.subarray(at + 4, at + 36)) });
  return { header, changes };
}
/** An index v2 written as archive.ts writes one (its own sha256 last); `sort`: the changes ascending, as a valid one has them. */
function encodeIndexV2(header: IndexV2Header, changes: { page: number; hash: Buffer }[], sort = true): Buffer {
  const list = sort ? [...changes].sort((a, b) => a.page - b.page) : changes;
  const json = Buffer.from(JSON.stringify({ ...header, changed: list.length }), 'utf8');
  const head = Buffer.alloc(12);
  head.write('AIMIDX02', 0, 'latin1');
  head.writeUInt32LE(json.length, 8);
  const entry = (c: { page: number; hash: Buffer }) => {
    const e = Buffer.alloc(36);
    e.writeUInt32LE(c.page, 0);
    c.hash.copy(e, 4);
    return e;
  };
  const body = Buffer.concat([head, json, ...list.map(entry)]);
  return Buffer.concat([body, createHash('sha256').update(body).digest()]);
}
const plainFiles = (dir: string) => fs.readdirSync(dir).filter((n) => /^ai-memory-.*\.db$/.test(n)).sort();
const dirBytes = (dir: string): number =>
  fs.readdirSync(dir, { withFileTypes: true }).reduce((a, d) => a + (d.isDirectory() ? dirBytes(path.join(dir, d.name)) : fs.statSync(path.join(dir, d.name)).size), 0);

describe('archive: page-dedup storage of older snapshots', () => {
  const tmp = useTempDir();
  let db: string;
  let dir: string;
  let clock: number;
  const shas = new Map<string, string>();

  async function backup(extra: { plain?: number; keep?: number } = {}): Promise<string> {
    clock += 3600_000;
    const r = await runBackup({ dbPath: db, backupDir: dir, keep: extra.keep ?? 0, plain: extra.plain ?? 2, now: () => new Date(clock) });
    const name = path.basename(r.snapshotPath);
    shas.set(name, r.manifest.sha256);
    return name;
  }

  /** Blobs of random bytes (which do not deflate: their pack blobs are stored as they are). */
  function addJunk(blobs: number, bytes: number): void {
    const n = openNative(db);
    try {
      n.exec('CREATE TABLE junk(b BLOB)');
      for (let i = 0; i < blobs; i++) n.prepare('INSERT INTO junk VALUES (?)').run(randomBytes(bytes));
    } finally {
      n.close();
    }
  }

  /** Three backups with `--plain 1`, a memory stored before each: the first two end up archived. Their names, oldest first. */
  async function threeBackupsPlainOne(): Promise<string[]> {
    const names: string[] = [];
    for (let i = 0; i < 3; i++) {
      seedMemory(db, 'ns', `m${i}`, `memory ${i} `.repeat(40));
      names.push(await backup({ plain: 1 }));
    }
    return names;
  }

  async function rebuildsAll(): Promise<void> {
    for (const a of await listArchived(dir)) {
      const out = tmp.join(`rebuilt-${a.name}`);
      const r = await rebuildArchived(dir, a.name, out);
      assert.strictEqual(r.sha256, shas.get(a.name), a.name);
      assert.strictEqual(sha(out), shas.get(a.name), a.name);
      const n = openNative(out, { readonly: true });
      try {
        assert.strictEqual(n.prepare('PRAGMA integrity_check').pluck().get(), 'ok');
      } finally {
        n.close();
      }
      fs.rmSync(out);
    }
  }

  beforeEach(() => {
    db = tmp.join('ai-memory.db');
    dir = tmp.join('backups');
    clock = Date.parse('2026-11-20T00:00:00Z');
    shas.clear();
    createAiMemoryDb(db, { memories: 300 });
  });

  it('keeps the newest --plain N plain; older ones rebuild byte-identical; unchanged pages are stored once', async () => {
    const names: string[] = [];
    for (let i = 0; i < 6; i++) {
      seedMemory(db, 'ns', `m${i}`, `memory ${i} `.repeat(40));
      names.push(await backup());
    }
    assert.deepStrictEqual(plainFiles(dir), names.slice(4).sort());
    const archived = (await listArchived(dir)).map((a) => a.name).sort();
    assert.deepStrictEqual(archived, names.slice(0, 4).sort());
    await rebuildsAll();
    // Four archived copies of a database cost about one compressed copy plus the changed pages.
    const size = fs.statSync(path.join(dir, names[5])).size;
    const archiveBytes = dirBytes(path.join(dir, ARCHIVE_DIR));
    assert.ok(archiveBytes < size * 1.3, `archive ${archiveBytes} bytes for four snapshots of ${size} bytes`);
    // Listing and verify --all see them; each archived manifest is the plain one, unchanged.
    const entries = await listSnapshots(dir, { archived: true });
    assert.deepStrictEqual(entries.filter((e) => e.archived).map((e) => e.name).sort(), archived);
    for (const e of entries.filter((x) => x.archived)) assert.strictEqual(e.manifest?.sha256, shas.get(e.name));
    const v = await cli(['verify', '--from', dir, '--all', '--json'], { cwd: tmp.path });
    assert.strictEqual(v.code, 0, v.stdout + v.stderr);
    const o = v.json<{ snapshots: { name: string; ok: boolean; notes: string[] }[]; damaged_packs: unknown[] }>();
    assert.strictEqual(o.snapshots.length, 6);
    assert.ok(o.snapshots.every((s) => s.ok));
    assert.deepStrictEqual(o.damaged_packs, []);
  });

  it('page-size changes, freelist pages and a file that is not a whole number of pages rebuild exactly', async () => {
    seedMemory(db, 'ns', 'a', 'x');
    await backup();
    // VACUUM to another page size (all pages new), and deletions that leave freelist pages.
    const n = openNative(db);
    n.exec('PRAGMA journal_mode=DELETE; PRAGMA page_size=8192; VACUUM;');
    n.exec('DELETE FROM memories WHERE rowid % 3 = 0');
    n.close();
    for (let i = 0; i < 3; i++) {
      seedMemory(db, 'ns', `after${i}`, 'y');
      await backup();
    }
    assert.strictEqual((await listArchived(dir)).length, 2);
    assert.deepStrictEqual(new Set((await listSnapshots(dir, { archived: true })).map((e) => e.manifest?.page_size)), new Set([4096, 8192]));
    await rebuildsAll();

    // Not a whole number of pages, not SQLite at all: cut into 4096-byte pieces, the last one short.
    const odd = 'ai-memory-2026-01-01T000000Z.db';
    const bytes = randomBytes(3 * 4096 + 1234);
    fs.writeFileSync(path.join(dir, odd), bytes);
    const manifest = { snapshot: odd, sha256: createHash('sha256').update(bytes).digest('hex'), bytes: bytes.length, source_db: db, version: '1', created_at: '2026-01-01T00:00:00+00:00', tool: OUR_TOOL };
    fs.writeFileSync(path.join(dir, 'ai-memory-2026-01-01T000000Z.manifest.json'), serializeManifest(manifest));
    const store = await PackStore.load(archivePaths(dir));
    const r = await archiveSnapshot(dir, odd, manifest, store);
    assert.strictEqual(r.pieces, 4);
    assert.ok(!fs.existsSync(path.join(dir, odd)));
    const out = tmp.join('odd.db');
    assert.strictEqual((await rebuildArchived(dir, odd, out)).sha256, manifest.sha256);
    assert.ok(fs.readFileSync(out).equals(bytes));
  });

  it('retention deletes archived snapshots and collects packs no kept snapshot uses; mostly-dead packs are repacked', async () => {
    for (let i = 0; i < 8; i++) {
      // Big changes, so that old pages die: rewrite a third of the memories each time.
      const n = openNative(db);
      n.exec(`UPDATE memories SET content = content || '${'y'.repeat(200)}${i}' WHERE rowid % 3 = ${i % 3}`);
      n.close();
      await backup();
    }
    const packsBefore = fs.readdirSync(archivePaths(dir).packs);
    const r = await runPrune({ backupDir: dir, dbPath: db, policy: { last: 3 }, plain: 2 });
    assert.strictEqual(r.pruned.length, 5);
    assert.ok(r.archive, 'archiving ran');
    assert.ok(r.archive.gc.deletedPacks.length + r.archive.gc.repacked.length > 0, 'packs were collected');
    const packsAfter = fs.readdirSync(archivePaths(dir).packs);
    assert.ok(packsAfter.length <= packsBefore.length);
    assert.deepStrictEqual((await listArchived(dir)).length, 1);
    await rebuildsAll();
    // Nothing else left behind in the archive.
    assert.deepStrictEqual(fs.readdirSync(archivePaths(dir).snapshots).filter((n) => n.includes('.tmp')), []);
  });

  it('collecting keeps every page a kept archived snapshot needs, where pages moved from one snapshot to the next', async () => {
    // gc guesses each page's row from the previous snapshot's page at the same place: make
    // the guess wrong for many pages (VACUUM moves them, deletes shift them) and right for others.
    for (let i = 0; i < 7; i++) {
      const n = openNative(db);
      if (i % 2) n.exec(`DELETE FROM memories WHERE rowid % 7 = ${i}; VACUUM;`);
      else n.exec(`UPDATE memories SET content = content || '${'z'.repeat(300)}${i}' WHERE rowid % 4 = ${i % 4}`);
      n.close();
      seedMemory(db, 'ns', `moved${i}`, `memory ${i} `.repeat(60));
      await backup();
    }
    assert.strictEqual((await listArchived(dir)).length, 5);
    // The two oldest go: their pages that no kept snapshot names die, their packs with them.
    const r = await runPrune({ backupDir: dir, dbPath: db, policy: { last: 5 }, plain: 2 });
    assert.strictEqual(r.pruned.length, 2);
    assert.ok(r.archive && r.archive.gc.deletedPacks.length + r.archive.gc.repacked.length > 0, 'packs were collected');
    assert.strictEqual((await listArchived(dir)).length, 3);
    // Every page of every kept archived snapshot is still in a pack, and each rebuilds exactly.
    const store = await PackStore.load(archivePaths(dir));
    for (const a of await listArchived(dir)) {
      const { hashes } = await readIndex(a.indexPath);
      for (let at = 0; at < hashes.length; at += 32) assert.ok(store.find(hashes, at) >= 0, `page ${at / 32 + 1} of ${a.name} is in a pack`);
    }
    await rebuildsAll();
  });

  it('a damaged pack fails only the snapshots that use it, and verify --all names them', async () => {
    for (let i = 0; i < 5; i++) {
      seedMemory(db, 'ns', `m${i}`, `memory ${i} `.repeat(40));
      await backup();
    }
    const store = await PackStore.load(archivePaths(dir));
    // The smallest pack holds only the pages one later snapshot changed.
    const packs = fs.readdirSync(archivePaths(dir).packs).map((n) => ({ n, size: fs.statSync(path.join(archivePaths(dir).packs, n)).size }));
    const victim = packs.sort((a, b) => a.size - b.size)[0].n;
    assert.ok(store.packs.includes(victim));
    flipByte(path.join(archivePaths(dir).packs, victim), 10);
    const v = await cli(['verify', '--from', dir, '--all', '--json'], { cwd: tmp.path });
    assert.strictEqual(v.code, 1);
    const o = v.json<{ snapshots: { name: string; ok: boolean; problems: string[] }[]; damaged_packs: { pack: string; snapshots: string[] }[] }>();
    const failed = o.snapshots.filter((s) => !s.ok);
    assert.ok(failed.length >= 1 && failed.length < o.snapshots.length, JSON.stringify(o.snapshots));
    for (const s of failed) assert.match(s.problems.join(' '), new RegExp(victim.slice(0, 16)));
    assert.strictEqual(o.damaged_packs.length, 1);
    assert.strictEqual(o.damaged_packs[0].pack, victim);
    // The pack check names every snapshot that uses the pack; those whose pages are hit fail their rebuild.
    const users = o.damaged_packs[0].snapshots;
    for (const s of failed) assert.ok(users.includes(s.name), JSON.stringify(o));
    for (const s of o.snapshots) if (!users.includes(s.name)) assert.ok(s.ok, s.name);
    // Restoring a snapshot that does not use it still works.
    const good = o.snapshots.find((s) => s.ok && !fs.existsSync(path.join(dir, s.name)));
    assert.ok(good, 'an archived snapshot untouched by the damage');
    const r = await cli(['restore', '--db', tmp.join('restored.db'), '--from', path.join(dir, good.name), '--json'], { cwd: tmp.path });
    assert.strictEqual(r.code, 0, r.stderr);
    assert.strictEqual(sha(tmp.join('restored.db')), shas.get(good.name));
    // And one that does use it is refused, naming the pack, with nothing changed.
    const bad = await cli(['restore', '--db', tmp.join('restored.db'), '--from', path.join(dir, failed[0].name), '--json'], { cwd: tmp.path });
    assert.strictEqual(bad.code, 1);
    assert.match(bad.stderr, /ARCHIVE_DAMAGED/);
    assert.strictEqual(sha(tmp.join('restored.db')), shas.get(good.name));
  });

  it('a snapshot sharing pages with a damaged pack is not archived: its plain file, the only good copy, stays', async () => {
    const names = await threeBackupsPlainOne();
    const packsDir = archivePaths(dir).packs;
    // The largest pack holds the pages every snapshot shares (the first archived one's).
    const victim = fs.readdirSync(packsDir).map((n) => ({ n, size: fs.statSync(path.join(packsDir, n)).size })).sort((a, b) => b.size - a.size)[0].n;
    const f = path.join(packsDir, victim);
    flipByte(f, 10); // a blob's byte: the trailer still reads, the pages' hashes are still listed
    seedMemory(db, 'ns', 'm-after', 'after the damage '.repeat(40));
    clock += 3600_000;
    const r = await runBackup({ dbPath: db, backupDir: dir, keep: 0, plain: 1, now: () => new Date(clock) });
    assert.deepStrictEqual(r.archived, []);
    assert.ok(r.warnings.some((w) => w.includes(names[2]) && w.includes(victim) && /damaged/.test(w)), JSON.stringify(r.warnings));
    assert.strictEqual(sha(path.join(dir, names[2])), shas.get(names[2]), 'the plain file is still there, whole');
    assert.ok(!(await listArchived(dir)).some((a) => a.name === names[2]), 'no archived copy that cannot be rebuilt');
    // Once the pack is whole again, the next run archives it.
    flipByte(f, 10);
    const again = await runPrune({ backupDir: dir, dbPath: db, policy: { last: 20 }, plain: 1 });
    assert.deepStrictEqual(again.archive?.archived, [names[2]]);
    await rebuildsAll();
  });

  it('a pack whose trailer is damaged (it lists no page) is not said to be used by no snapshot: verify --all names those that fail for it', async () => {
    await threeBackupsPlainOne();
    const packsDir = archivePaths(dir).packs;
    const victim = fs.readdirSync(packsDir).map((n) => ({ n, size: fs.statSync(path.join(packsDir, n)).size })).sort((a, b) => b.size - a.size)[0].n;
    const f = path.join(packsDir, victim);
    const buf = fs.readFileSync(f);
    buf[buf.length - 12] ^= 0x41; // the footer's version: the trailer no longer reads
    fs.writeFileSync(f, buf);
    const v = await cli(['verify', '--from', dir, '--all', '--json'], { cwd: tmp.path });
    assert.strictEqual(v.code, 1);
    const o = v.json<{ snapshots: { name: string; ok: boolean }[]; damaged_packs: { pack: string; snapshots: string[] }[] }>();
    const failed = o.snapshots.filter((s) => !s.ok).map((s) => s.name).sort();
    assert.ok(failed.length >= 1, JSON.stringify(o));
    assert.deepStrictEqual(o.damaged_packs.map((d) => d.pack), [victim]);
    assert.deepStrictEqual([...o.damaged_packs[0].snapshots].sort(), failed);
  });

  it('an archived snapshot whose page index is lost is still listed, fails verify --all, and keeps every pack', async () => {
    const names = await threeBackupsPlainOne();
    const victim = names[1]; // archived, and the only user of the pack its archiving wrote
    const packsBefore = fs.readdirSync(archivePaths(dir).packs).sort();
    fs.rmSync(path.join(archivePaths(dir).snapshots, victim.replace(/\.db$/, '.idx')));
    const entries = await listSnapshots(dir, { archived: true });
    assert.ok(entries.some((e) => e.name === victim && e.archived), 'still listed');
    const v = await cli(['verify', '--from', dir, '--all', '--json'], { cwd: tmp.path });
    assert.strictEqual(v.code, 1, v.stdout);
    const o = v.json<{ snapshots: { name: string; ok: boolean; problems: string[] }[] }>();
    const s = o.snapshots.find((x) => x.name === victim);
    assert.ok(s && !s.ok, JSON.stringify(o.snapshots));
    assert.match(s.problems.join(' '), /page index .* is missing/);
    const r = await runPrune({ backupDir: dir, dbPath: db, policy: { last: 20 }, plain: 1 });
    assert.ok(r.archive?.warnings.some((w) => /no pack was collected/.test(w)), JSON.stringify(r.archive));
    assert.deepStrictEqual(fs.readdirSync(archivePaths(dir).packs).sort(), packsBefore, 'no pack collected while an index is missing');
  });

  it('a kept snapshot with a page in no pack (a trailer whose hashes were damaged) stops the collection: the pack that holds its bytes stays', async () => {
    await threeBackupsPlainOne();
    const packsDir = archivePaths(dir).packs;
    // Every page hash the trailer of one pack lists, damaged: its pages look unused.
    const victim = fs.readdirSync(packsDir).map((n) => ({ n, size: fs.statSync(path.join(packsDir, n)).size })).sort((a, b) => a.size - b.size)[0].n;
    const f = path.join(packsDir, victim);
    const buf = fs.readFileSync(f);
    const count = buf.readUInt32LE(buf.length - 16);
    const table = buf.length - 16 - count * 52;
    for (let i = 0; i < count; i++) buf[table + i * 52] ^= 0xff;
    fs.writeFileSync(f, buf);
    const r = await runPrune({ backupDir: dir, dbPath: db, policy: { last: 20 }, plain: 1 });
    assert.ok(fs.existsSync(f), 'the pack holding the pages is not deleted');
    assert.deepStrictEqual(r.archive?.gc.deletedPacks, []);
    assert.ok(r.archive?.warnings.some((w) => /no pack was collected: .*in no pack/.test(w)), JSON.stringify(r.archive?.warnings));
  });

  it('a good plain copy put back beside an archived copy that no longer rebuilds (a damaged pack) is kept, not dropped for it', async () => {
    const names = await threeBackupsPlainOne();
    const oldest = names[0];
    // A good copy of the oldest snapshot, made while the archive was whole (an off-machine copy, say).
    const aside = tmp.join('aside');
    const m = await cli(['materialize', '--from', path.join(dir, oldest), '--out', `${aside}/`, '--json'], { cwd: tmp.path });
    assert.strictEqual(m.code, 0, m.stderr);
    // Every pack damaged (each is used by the oldest snapshot or by none).
    const packsDir = archivePaths(dir).packs;
    for (const n of fs.readdirSync(packsDir)) flipByte(path.join(packsDir, n), 10);
    // Put back into the backup folder, as its plain file and manifest.
    for (const n of fs.readdirSync(aside)) fs.copyFileSync(path.join(aside, n), path.join(dir, n));
    const r = await runPrune({ backupDir: dir, dbPath: db, policy: { last: 20 }, plain: 1 });
    assert.ok(!r.archive?.archived.includes(oldest), JSON.stringify(r.archive));
    assert.ok(r.archive?.warnings.some((w) => w.includes(oldest) && /would not rebuild/.test(w)), JSON.stringify(r.archive?.warnings));
    assert.strictEqual(sha(path.join(dir, oldest)), shas.get(oldest), 'the good plain copy is still there');
  });

  it('pull of a snapshot whose archived copy would not rebuild downloads it as its plain file (not "present"); the next prune keeps it', async () => {
    const names = await threeBackupsPlainOne();
    const oldest = names[0];
    const remote = tmp.join('remote');
    fs.mkdirSync(remote);
    const p = await cli(['push', '--to', dir, '--remote', remote, '--json'], { cwd: tmp.path });
    assert.strictEqual(p.code, 0, p.stderr);
    const packsDir = archivePaths(dir).packs;
    for (const n of fs.readdirSync(packsDir)) flipByte(path.join(packsDir, n), 10);
    const r = await cli(['pull', '--remote', remote, '--to', dir, '--snapshot', oldest, '--json'], { cwd: tmp.path });
    assert.strictEqual(r.code, 0, r.stderr);
    assert.match(r.stdout, /downloaded/);
    assert.strictEqual(sha(path.join(dir, oldest)), shas.get(oldest));
    await runPrune({ backupDir: dir, dbPath: db, policy: { last: 20 }, plain: 1 });
    assert.strictEqual(sha(path.join(dir, oldest)), shas.get(oldest), 'kept as a plain file');
    const restored = tmp.join('restored.db');
    const rs = await cli(['restore', '--db', restored, '--from', path.join(dir, oldest), '--json'], { cwd: tmp.path });
    assert.strictEqual(rs.code, 0, rs.stderr);
    assert.strictEqual(sha(restored), shas.get(oldest));
  });

  it('a pack written again under the name of a damaged one (its trailer unreadable) replaces it: the snapshot just archived rebuilds', async () => {
    const first = await backup({ plain: 1 });
    const aside = tmp.join('first-aside.db');
    fs.copyFileSync(path.join(dir, first), aside);
    const manifest = JSON.parse(fs.readFileSync(path.join(dir, first.replace(/\.db$/, '.manifest.json')), 'utf8')) as Record<string, unknown>;
    seedMemory(db, 'ns', 'm1', 'memory 1 '.repeat(40));
    await backup({ plain: 1 });
    const packsDir = archivePaths(dir).packs;
    const [pack] = fs.readdirSync(packsDir);
    const f = path.join(packsDir, pack);
    const buf = fs.readFileSync(f);
    buf[buf.length - 12] ^= 0x41; // the footer's version: the trailer no longer reads
    fs.writeFileSync(f, buf);
    // The same bytes as the first snapshot, again, under a later name (the database put back as it was).
    const again = 'ai-memory-2026-11-21T000000Z.db';
    fs.copyFileSync(aside, path.join(dir, again));
    const m = { ...manifest, snapshot: again };
    fs.writeFileSync(path.join(dir, again.replace(/\.db$/, '.manifest.json')), JSON.stringify(m));
    const store = await PackStore.load(archivePaths(dir));
    assert.ok(store.unreadable.has(pack));
    await archiveSnapshot(dir, again, m as unknown as Parameters<typeof archiveSnapshot>[2], store);
    assert.ok(!fs.existsSync(path.join(dir, again)), 'archived: its plain file is gone');
    assert.strictEqual(sha(f), pack.replace(/\.pack$/, ''), 'the damaged pack was replaced by the bytes its name promises');
    const out = tmp.join('again-rebuilt.db');
    const r = await rebuildArchived(dir, again, out);
    assert.strictEqual(r.sha256, manifest.sha256);
  });

  it('a snapshot of more pages than a page index holds stays plain (its index would never be read back)', async function () {
    this.timeout(120_000); // without the check, the whole sparse file is read before anything fails
    fs.mkdirSync(dir, { recursive: true });
    const name = 'ai-memory-2026-11-20T000000Z.db';
    const f = path.join(dir, name);
    const head = Buffer.alloc(512);
    head.write('SQLite format 3\0', 0, 'latin1');
    head.writeUInt16BE(512, 16); // 512-byte pages
    fs.writeFileSync(f, head);
    const bytes = 8_400_000 * 512; // 8.4 million pages: an index of 269 MB, over what readIndex takes
    fs.truncateSync(f, bytes); // sparse
    const m = { snapshot: name, sha256: '0'.repeat(64), bytes, source_db: db, version: '0.1.0', created_at: '2026-11-20T00:00:00Z', backend: 'sqlite', tool: `${OUR_TOOL} 0.1.0` };
    fs.writeFileSync(path.join(dir, name.replace(/\.db$/, '.manifest.json')), JSON.stringify(m));
    await assert.rejects(archiveSnapshot(dir, name, m as unknown as Parameters<typeof archiveSnapshot>[2], await PackStore.load(archivePaths(dir))), (e: Error & { code?: string }) => {
      assert.strictEqual(e.code, 'TOO_LARGE', e.message);
      return true;
    });
    assert.strictEqual(fs.statSync(f).size, bytes, 'the plain file stays');
    assert.deepStrictEqual(await listArchived(dir), []);
  });

  it('a page damaged where the whole-file sha256 catches it is named with its pack; a pack of an unknown format version is refused, named', async () => {
    // Random bytes do not deflate: their blobs are stored as they are, so a flipped byte there
    // decompresses fine and only the whole file's sha256 (then each page's hash) finds it.
    addJunk(1, 300_000);
    const names = await threeBackupsPlainOne();
    const oldest = names[0];
    assert.deepStrictEqual((await listArchived(dir)).map((a) => a.name).sort(), names.slice(0, 2));
    const store = await PackStore.load(archivePaths(dir));
    let stored = -1;
    for (let r = 0; r < store.count && stored < 0; r++) if (!store.deflated(r)) stored = r;
    assert.ok(stored >= 0, 'a blob stored as it is');
    const row = store.rowAt(stored);
    const packFile = path.join(archivePaths(dir).packs, store.packs[row.pack]);
    const good = fs.readFileSync(packFile);
    const bad = Buffer.from(good);
    bad[row.off + row.inner + 100] ^= 0xff;
    fs.writeFileSync(packFile, bad);
    const out = tmp.join('rebuilt.db');
    await assert.rejects(rebuildArchived(dir, oldest, out), (e: Error & { code?: string }) => {
      assert.strictEqual(e.code, 'ARCHIVE_DAMAGED');
      assert.match(e.message, new RegExp(`Pack ${store.packs[row.pack]} is damaged: pages? \\d+`));
      assert.match(e.message, /not match/);
      return true;
    });
    assert.ok(!fs.existsSync(out), 'no partial file left');
    // A version this build does not know: refused, saying so, and left as it is.
    const newer = Buffer.from(good);
    newer.writeUInt32LE(99, newer.length - 12);
    fs.writeFileSync(packFile, newer);
    await assert.rejects(rebuildArchived(dir, oldest, out), /format version 99[^]*Upgrade/);
    assert.deepStrictEqual(fs.readFileSync(packFile), newer);
    fs.writeFileSync(packFile, good);
    const r = await rebuildArchived(dir, oldest, out);
    assert.strictEqual(r.sha256, shas.get(oldest));
  });

  it('packs larger than the read window rebuild exactly (each window read ahead while the last is used)', async () => {
    // 3 MB that do not deflate: the base pack spans a dozen 256 KiB windows, read in order.
    addJunk(12, 250_000);
    await threeBackupsPlainOne();
    const store = await PackStore.load(archivePaths(dir));
    const biggest = Math.max(...store.packs.map((p) => fs.statSync(path.join(archivePaths(dir).packs, p)).size));
    assert.ok(biggest > 8 * 256 * 1024, `a pack of ${biggest} bytes spans many windows`);
    await rebuildsAll();
  });

  it('a snapshot whose pages are spread over many packs: each pack opened once and each blob inflated once (never dropped while needed again)', async () => {
    // 6 MB that do not deflate (the base: ~90 blobs of 16 pages), then 12 hours, each changing
    // one page near the start and one near the end: 12 packs of one blob each, every one of
    // them needed at the start of the newest archived snapshot and again at its end, with the
    // whole base in between (more blobs than the blob cache holds, more packs than windows).
    addJunk(1500, 3000);
    const n = 1500;
    const names: string[] = [await backup({ plain: 1 })];
    for (let k = 1; k <= 12; k++) {
      const w = openNative(db);
      try {
        const set = w.prepare('UPDATE junk SET b = ? WHERE rowid = ?');
        set.run(randomBytes(3000), 1 + k * 7);
        set.run(randomBytes(3000), n - k * 7);
      } finally {
        w.close();
      }
      names.push(await backup({ plain: 1 }));
    }
    const newestArchived = names[names.length - 2];
    assert.ok((await listArchived(dir)).some((a) => a.name === newestArchived));
    const out = tmp.join('rebuilt.db');
    const r = await rebuildArchived(dir, newestArchived, out);
    assert.strictEqual(r.sha256, shas.get(newestArchived));
    assert.ok(r.packsUsed.length > 8, `pages from ${r.packsUsed.length} packs`);
    assert.ok(r.reads.blobs > 64, `${r.reads.blobs} blobs: more than the blob cache holds`);
    assert.strictEqual(r.reads.packsOpened, r.packsUsed.length, 'each pack opened once');
    assert.strictEqual(r.reads.inflated, r.reads.blobs, 'each blob inflated once');
    await rebuildsAll();
  });

  it('a damaged, truncated, missing or lying page index is refused, named, before anything is written', async () => {
    const oldest = (await threeBackupsPlainOne())[0];
    const idxPath = path.join(archivePaths(dir).snapshots, oldest.replace(/\.db$/, '.idx'));
    const good = fs.readFileSync(idxPath);
    const out = tmp.join('rebuilt.db');
    const refused = async (bytes: Buffer | undefined, why: RegExp) => {
      if (bytes) fs.writeFileSync(idxPath, bytes);
      else fs.rmSync(idxPath);
      await assert.rejects(rebuildArchived(dir, oldest, out), (e: Error & { code?: string }) => {
        assert.strictEqual(e.code, 'ARCHIVE_DAMAGED', e.message);
        assert.match(e.message, why);
        return true;
      });
      assert.ok(!fs.existsSync(out), 'nothing written');
    };
    // A flipped byte among the page hashes, and one in the header.
    const flipped = Buffer.from(good);
    flipped[flipped.length - 100] ^= 0x01;
    await refused(flipped, /page index .* is damaged \(checksum\)/);
    const header = Buffer.from(good);
    header[14] ^= 0x01;
    await refused(header, /page index .* is damaged \((checksum|header)\)/);
    await refused(good.subarray(0, good.length - 40), /page index .* is damaged/);
    await refused(undefined, /page index .* is missing/);
    // Consistent (its own sha256 recomputed) but naming a page no pack holds: page 2 changed to an unknown hash.
    const { header: h, changes } = decodeIndexV2(good);
    await refused(encodeIndexV2(h, [...changes.filter((c) => c.page !== 1), { page: 1, hash: Buffer.alloc(32, 0xab) }]), /Page 2 of .* is in no pack/);
    // Consistent, but its changes out of order, or one past the snapshot's end, or a page past its base's end not among them.
    await refused(encodeIndexV2(h, [{ page: 3, hash: Buffer.alloc(32, 1) }, { page: 1, hash: Buffer.alloc(32, 2) }], false), /page index .* is damaged \(shape/);
    await refused(encodeIndexV2(h, [{ page: h.pieces, hash: Buffer.alloc(32, 1) }]), /page index .* is damaged \(shape/);
    await refused(encodeIndexV2({ ...h, basePieces: h.pieces - 1 }, []), /page index .* is damaged \(shape/);
    fs.writeFileSync(idxPath, good);
    const r = await rebuildArchived(dir, oldest, out);
    assert.strictEqual(r.sha256, shas.get(oldest));
  });

  it('a read-only packs\' table (16 bytes of each hash) can never rebuild wrong bytes: a page whose hash shares its first 16 bytes with another page\'s is refused, named', async () => {
    const oldest = (await threeBackupsPlainOne())[0];
    const idxPath = path.join(archivePaths(dir).snapshots, oldest.replace(/\.db$/, '.idx'));
    const good = fs.readFileSync(idxPath);
    const { hashes } = await readIndex(idxPath);
    const pages = hashes.length / 32;
    // The last page's hash made the first page's first 16 bytes and another tail: what a
    // 128-bit prefix collision between two different pages would look like.
    assert.ok(!hashes.subarray(0, 32).equals(hashes.subarray((pages - 1) * 32)), 'the first and last pages differ');
    const collision = Buffer.concat([hashes.subarray(0, 16), Buffer.alloc(16, 0x5a)]);
    const { header: h, changes } = decodeIndexV2(good);
    fs.writeFileSync(idxPath, encodeIndexV2(h, [...changes.filter((c) => c.page !== pages - 1), { page: pages - 1, hash: collision }]));
    const out = tmp.join('rebuilt.db');
    const readOnly = await PackStore.load(archivePaths(dir), { readOnly: true });
    assert.strictEqual(readOnly.keyBytes, 16);
    // The read-only table takes the other page for it; the whole file's sha256 refuses that, and the page is named.
    await assert.rejects(rebuildArchived(dir, oldest, out, { store: readOnly }), (e: Error & { code?: string }) => {
      assert.strictEqual(e.code, 'ARCHIVE_DAMAGED', e.message);
      assert.match(e.message, new RegExp(`page ${pages}\\b`), e.message);
      return true;
    });
    assert.ok(!fs.existsSync(out), 'nothing written under the name');
    // The whole-hash table finds no such page at all.
    await assert.rejects(rebuildArchived(dir, oldest, out, { store: await PackStore.load(archivePaths(dir)) }), /Page \d+ of .* is in no pack/);
    // A read-only table is refused for what decides what is stored or dropped.
    assert.throws(() => readOnly.has(hashes, 0), /read-only/);
    assert.throws(() => readOnly.keysOf(0), /read-only/);
    await assert.rejects(collectGarbage(dir, { pinned: false, store: readOnly }), /read-only/);
    fs.writeFileSync(idxPath, good);
    const r = await rebuildArchived(dir, oldest, out, { store: readOnly });
    assert.strictEqual(r.sha256, shas.get(oldest));
  });

  it('a FIFO named like a pack blocks nothing: verify --all names it, archived snapshots still rebuild and restore', async function () {
    if (process.platform === 'win32') this.skip(); // no FIFOs
    const oldest = (await threeBackupsPlainOne())[0];
    const fifo = path.join(archivePaths(dir).packs, `${'f'.repeat(64)}.pack`);
    execFileSync('mkfifo', [fifo]);
    const v = await cli(['verify', '--from', dir, '--all', '--json'], { cwd: tmp.path });
    assert.strictEqual(v.code, 1, v.stdout + v.stderr);
    const o = v.json<{ snapshots: { ok: boolean }[]; damaged_packs: { pack: string; problem: string }[] }>();
    assert.ok(o.snapshots.every((x) => x.ok), JSON.stringify(o.snapshots));
    assert.deepStrictEqual(o.damaged_packs.map((d) => d.pack), [path.basename(fifo)]);
    assert.match(o.damaged_packs[0].problem, /FIFO/);
    const r = await cli(['restore', '--db', tmp.join('restored.db'), '--from', path.join(dir, oldest), '--json'], { cwd: tmp.path });
    assert.strictEqual(r.code, 0, r.stderr);
    assert.strictEqual(sha(tmp.join('restored.db')), shas.get(oldest));
    await rebuildsAll();
  });

  it('a backup folder we may read but not write (a read-only mount, another user\'s): archived snapshots verify, inspect, diff, dry-run restore and materialize elsewhere; nothing is written there', async function () {
    if (process.platform === 'win32') this.skip(); // no POSIX modes
    const root = process.getuid?.() === 0; // root writes anywhere: the commands then run as nobody (effective uid)
    const old = process.umask(0o022);
    try {
      fs.chmodSync(tmp.path, 0o755);
      const oldest = (await threeBackupsPlainOne())[0];
      const snap = path.join(dir, oldest);
      const out = tmp.join('out');
      fs.mkdirSync(out);
      if (root) fs.chownSync(out, 65534, 65534);
      const listing = (d: string): string[] => fs.readdirSync(d, { recursive: true, encoding: 'utf8' }).sort();
      const before = listing(dir);
      fs.chmodSync(dir, 0o555);
      if (root) process.seteuid?.(65534);
      try {
        const v = await cli(['verify', '--from', dir, '--all', '--json'], { cwd: tmp.path });
        assert.strictEqual(v.code, 0, v.stdout + v.stderr);
        const i = await cli(['inspect', '--from', snap, '--json'], { cwd: tmp.path });
        assert.strictEqual(i.code, 0, i.stderr);
        const d = await cli(['diff', '--from', snap, '--db', db], { cwd: tmp.path });
        assert.strictEqual(d.code, 0, d.stderr);
        const r = await cli(['restore', '--db', db, '--from', snap, '--dry-run'], { cwd: tmp.path });
        assert.strictEqual(r.code, 0, r.stderr);
        const m = await cli(['materialize', '--from', snap, '--out', path.join(out, 'm.db')], { cwd: tmp.path });
        assert.strictEqual(m.code, 0, m.stderr);
      } finally {
        if (root) process.seteuid?.(0);
        fs.chmodSync(dir, 0o755);
      }
      assert.strictEqual(sha(path.join(out, 'm.db')), shas.get(oldest));
      assert.deepStrictEqual(listing(dir), before);
    } finally {
      process.umask(old);
    }
  });

  it('a manifest replaced while its snapshot is archived: the snapshot stays plain, nothing archived under the wrong manifest', async () => {
    const names: string[] = [];
    for (let i = 0; i < 2; i++) {
      seedMemory(db, 'ns', `m${i}`, `memory ${i} `.repeat(40));
      names.push(await backup({ plain: 2 }));
    }
    const [older, newer] = names;
    const manifestPath = path.join(dir, older.replace(/\.db$/, '.manifest.json'));
    const checked = JSON.parse(fs.readFileSync(manifestPath, 'utf8')) as Parameters<typeof archiveSnapshot>[2];
    // After the caller's check, the file on disk becomes the newer snapshot's manifest, renamed to this one's.
    const swapped = { ...(JSON.parse(fs.readFileSync(path.join(dir, newer.replace(/\.db$/, '.manifest.json')), 'utf8')) as object), snapshot: older };
    fs.writeFileSync(manifestPath, JSON.stringify(swapped));
    const store = await PackStore.load(archivePaths(dir));
    await assert.rejects(archiveSnapshot(dir, older, checked, store), (e: Error & { code?: string }) => e.code === 'MANIFEST_INVALID' && /changed while .* was archived; .* stays a plain file/.test(e.message));
    assert.strictEqual(sha(path.join(dir, older)), shas.get(older), 'the plain file stays');
    assert.deepStrictEqual((await listArchived(dir)).map((a) => a.name), [], 'nothing archived');
  });

  for (const readOnly of [false, true]) it(`the packs' table${readOnly ? ' (read-only: 16 bytes of each hash)' : ''} finds every page by its hash, wherever in memory the hash is (aligned or not)`, () => {
    const store = new PackStore({ readOnly });
    const rows = 3000;
    const table = Buffer.alloc(rows * 52);
    for (let i = 0; i < rows; i++) {
      createHash('sha256').update(`page ${i % 2500}`).digest().copy(table, i * 52); // 500 pages twice: the first row answers
      table.writeUInt32LE(i * 10, i * 52 + 32);
      table.writeUInt32LE(10, i * 52 + 36);
      table.writeUInt32LE(4096, i * 52 + 40);
      table.writeUInt32LE(0, i * 52 + 44);
      table.writeUInt32LE(4096, i * 52 + 48);
    }
    store.addTrailer('p.pack', rows * 62, 2, table, rows);
    for (const shift of [0, 1, 2, 3, 4]) {
      const h = Buffer.alloc(64 + shift);
      for (const i of [0, 1, 499, 2499, 2500, 2999]) {
        createHash('sha256').update(`page ${i % 2500}`).digest().copy(h, shift);
        assert.strictEqual(store.find(h, shift), i % 2500, `row of page ${i}, hash at offset ${shift}`);
        assert.ok(store.holds(i % 2500, h, shift));
        assert.ok(!store.holds((i % 2500) + 1, h, shift));
      }
      createHash('sha256').update('no such page').digest().copy(h, shift);
      assert.strictEqual(store.find(h, shift), -1);
    }
  });

  it('a name the archive holds is never reused: a clock set back gets another name, and a plain file of that name with other content is never dropped for it', async () => {
    const names = await threeBackupsPlainOne(); // the first two archived
    const first = names[0];
    const firstSha = shas.get(first);
    // The clock steps back to the first backup's hour: same stamp, new content.
    seedMemory(db, 'ns', 'late', 'written after the clock stepped back');
    clock -= 2 * 3600_000;
    const r = await runBackup({ dbPath: db, backupDir: dir, keep: 0, plain: 1, now: () => new Date(clock) });
    const again = path.basename(r.snapshotPath);
    assert.notStrictEqual(again, first, 'not the archived name');
    shas.set(again, r.manifest.sha256);
    const archivedNow = await listArchived(dir);
    assert.strictEqual(archivedNow.find((a) => a.name === first)?.manifest?.sha256, firstSha, 'the archived snapshot is still the old one');
    const where = fs.existsSync(path.join(dir, again)) ? sha(path.join(dir, again)) : archivedNow.find((a) => a.name === again)?.manifest?.sha256;
    assert.strictEqual(where, r.manifest.sha256, 'the new snapshot exists, under its own name');
    await rebuildsAll();

    // A plain file under an archived name, with other content (a file copied in): kept, said.
    const newest = plainFiles(dir)[0];
    const other = JSON.parse(fs.readFileSync(path.join(dir, newest.replace(/\.db$/, '.manifest.json')), 'utf8')) as Record<string, unknown>;
    fs.copyFileSync(path.join(dir, newest), path.join(dir, first));
    fs.writeFileSync(path.join(dir, first.replace(/\.db$/, '.manifest.json')), serializeManifest({ ...other, snapshot: first } as Parameters<typeof serializeManifest>[0]));
    const out = await archiveOlder(dir, 1, { dbPath: fs.realpathSync(db) });
    assert.ok(fs.existsSync(path.join(dir, first)), 'the plain file stays');
    assert.ok(out.warnings.some((w) => w.includes(first) && /another snapshot of the same name/.test(w)), out.warnings.join('\n'));
    assert.strictEqual((await listArchived(dir)).find((a) => a.name === first)?.manifest?.sha256, firstSha);
    // Deleting the plain file (what the listing shows under that name) leaves the other, archived one.
    await deleteSnapshot(dir, first);
    assert.ok(!fs.existsSync(path.join(dir, first)));
    assert.strictEqual((await listArchived(dir)).find((a) => a.name === first)?.manifest?.sha256, firstSha, 'the archived snapshot of that name stays');
    await rebuildsAll();
  });

  it('nothing the archive, materialize or a repack writes is more readable than the snapshots it holds; packs of different modes are never merged', async () => {
    // Two databases in one folder: a private one (0600) and a shared one (0644) — in a folder
    // others can enter (the test's own is 0700, which would make the shared one private too).
    fs.chmodSync(tmp.path, 0o755);
    const pub = tmp.join('pub.db');
    createAiMemoryDb(pub);
    fs.chmodSync(db, 0o600);
    fs.chmodSync(pub, 0o644);
    const names: { name: string; db: string }[] = [];
    const snap = async (d: string) => {
      clock += 60_000;
      const r = await runBackup({ dbPath: d, backupDir: dir, keep: 0, plain: 3, now: () => new Date(clock) });
      names.push({ name: path.basename(r.snapshotPath), db: d });
      shas.set(path.basename(r.snapshotPath), r.manifest.sha256);
    };
    for (const d of [db, pub]) {
      // Pages of its own (memories only it has), then a first snapshot with many more
      // (random blobs) that the next one replaces by others: the first's pack is mostly its own.
      for (let i = 0; i < 20; i++) seedMemory(d, 'own', `${path.basename(d)} ${i}`, `${path.basename(d)} ${i} `.repeat(150));
      const junk = (table: string) => {
        const n = openNative(d);
        n.exec(`DROP TABLE IF EXISTS junk; CREATE TABLE ${table}(b BLOB)`);
        for (let i = 0; i < 700; i++) n.prepare(`INSERT INTO ${table} VALUES (?)`).run(randomBytes(6000));
        n.close();
      };
      junk('junk');
      await snap(d);
      junk('junk2'); // the first blobs dropped, as many others written over their pages
      await snap(d);
      await runPrune({ backupDir: dir, dbPath: d, policy: { last: 100 }, plain: 1 }); // the first archived: all its pages in its packs
      seedMemory(d, 'ns', 'last', `the newest, ${path.basename(d)}`);
      await snap(d);
      await runPrune({ backupDir: dir, dbPath: d, policy: { last: 100 }, plain: 1 }); // the second: only its new pages
    }
    const p = archivePaths(dir);
    for (const d of [p.root, p.packs, p.snapshots]) assert.strictEqual(fs.statSync(d).mode & 0o077, 0, `${d}: made for the private database's snapshot first`);
    const privatePacks = new Set(fs.readdirSync(p.packs).filter((n) => (fs.statSync(path.join(p.packs, n)).mode & 0o077) === 0));
    assert.ok(privatePacks.size > 0 && privatePacks.size < fs.readdirSync(p.packs).length, 'packs of both modes');
    // Retention drops each database's first snapshot, whose pack is then mostly dead. A restore's
    // pin puts repacking off until both are: then one collection repacks them all.
    const unpin = await pinSnapshot(dir, names[names.length - 1].name);
    for (const d of [db, pub]) await runPrune({ backupDir: dir, dbPath: d, policy: { last: 2 }, plain: 1 });
    await unpin();
    const modes = async () => {
      const st = await PackStore.load(p);
      const out = new Map<string, Set<number>>();
      for (let r = 0; r < st.count; r++) {
        const h = st.hashOf(r).toString('hex');
        out.set(h, (out.get(h) ?? new Set()).add(fs.statSync(path.join(p.packs, st.packs[st.packOf(r)])).mode & 0o777));
      }
      return out;
    };
    const before = await modes();
    const repacked = (await runPrune({ backupDir: dir, dbPath: db, policy: { last: 2 }, plain: 1 })).archive?.gc.repacked ?? [];
    assert.ok(repacked.length >= 2, `packs were repacked together: ${repacked.join(', ')}`);
    for (const [h, now] of await modes()) {
      for (const m of now) assert.ok(before.get(h)?.has(m), `a page moved from a ${[...(before.get(h) ?? [])].map((x) => x.toString(8))} pack into a ${m.toString(8)} one`);
    }
    for (const n of fs.readdirSync(p.packs)) {
      const m = fs.statSync(path.join(p.packs, n)).mode & 0o777;
      assert.ok(m === 0o600 || m === 0o644, `${n}: ${m.toString(8)}`);
    }
    // Every page a private snapshot needs is in a private pack, unless the shared database holds the same bytes.
    const store = await PackStore.load(p);
    for (const a of await listArchived(dir)) {
      const mine = names.find((x) => x.name === a.name);
      const idx = await readIndex(a.indexPath);
      if (mine?.db !== db) continue;
      for (let i = 0; i < idx.header.pieces; i++) {
        const r = store.find(idx.hashes, i * 32);
        const packMode = fs.statSync(path.join(p.packs, store.packs[store.packOf(r)])).mode & 0o077;
        if (packMode) assert.fail(`page ${i + 1} of the private ${a.name} is in a pack others can read`);
      }
    }
    await rebuildsAll();
    // materialize: the folder it makes and the manifest it writes are as private as the snapshot.
    const priv = (await listArchived(dir)).find((a) => names.find((x) => x.name === a.name)?.db === db);
    if (priv) {
      const m = await cli(['materialize', '--from', path.join(dir, priv.name), '--out', tmp.join('out', 'deeper') + '/', '--json'], { cwd: tmp.path });
      assert.strictEqual(m.code, 0, m.stderr);
      for (const f of [tmp.join('out'), tmp.join('out', 'deeper'), path.join(tmp.join('out', 'deeper'), priv.name), path.join(tmp.join('out', 'deeper'), priv.name.replace(/\.db$/, '.manifest.json'))]) {
        assert.strictEqual(fs.statSync(f).mode & 0o077, 0, `${f} is private`);
      }
    }
    assert.strictEqual(fs.statSync(path.join(dir, '.ai-memory-backup.state.json')).mode & 0o077, 0o044 & fs.statSync(pub).mode & 0o077, 'the state file is like the last backup');
  });

  it('the archive folder, or one inside it, is never taken for a backup folder: refused, nothing changed', async () => {
    const names = await threeBackupsPlainOne();
    const p = archivePaths(dir);
    const before = fs.readdirSync(p.snapshots).sort();
    for (const inside of [p.snapshots, p.root, path.join(p.packs, 'new')]) {
      seedMemory(db, 'ns', `x ${inside}`, 'changed');
      await assert.rejects(runBackup({ dbPath: db, backupDir: inside, keep: 0 }), (e: Error & { code?: string }) => e.code === 'USAGE' && /inside a backup folder's archive/.test(e.message));
      if (!fs.existsSync(inside)) continue; // (a folder that does not exist is refused as such by the commands that only read)
      for (const args of [['list', '--to', inside], ['prune', '--db', db, '--to', inside, '--keep', '1'], ['verify', '--from', inside, '--all']]) {
        const r = await cli(args, { cwd: tmp.path });
        assert.strictEqual(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
        assert.match(r.stderr, /inside a backup folder's archive/);
      }
    }
    const m = await cli(['materialize', '--from', path.join(dir, names[0]), '--out', p.snapshots + '/'], { cwd: tmp.path });
    assert.strictEqual(m.code, 2, m.stderr);
    assert.ok(!fs.existsSync(path.join(p.packs, 'new')));
    assert.deepStrictEqual(fs.readdirSync(p.snapshots).sort(), before, 'every archived manifest and index still there');
    await rebuildsAll();
  });

  it('restore and materialize take archived snapshots; materialize never overwrites', async () => {
    const names: string[] = [];
    for (let i = 0; i < 4; i++) {
      seedMemory(db, 'ns', `m${i}`, `memory ${i}`);
      names.push(await backup());
    }
    const oldest = names[0];
    assert.ok(!fs.existsSync(path.join(dir, oldest)), 'archived');
    const target = tmp.join('restored.db');
    const r = await cli(['restore', '--db', target, '--from', path.join(dir, oldest), '--json'], { cwd: tmp.path });
    assert.strictEqual(r.code, 0, r.stderr);
    assert.strictEqual(sha(target), shas.get(oldest));
    assert.deepStrictEqual(fs.readdirSync(dir).filter((n) => n.startsWith('.ai-memory-backup-') && n.endsWith('.tmp')), [], 'no rebuild temp left');
    // Into a folder that does not exist yet: rebuilt straight into the copy beside the database, not copied a second time.
    const fresh = tmp.join('new-machine', 'ai-memory.db');
    const messages: string[] = [];
    const rr = await runRestore({ dbPath: fresh, from: path.join(dir, oldest), createIfMissing: true, onProgress: (p) => p.message && messages.push(p.message) });
    assert.strictEqual(rr.status, 'restored');
    assert.strictEqual(sha(fresh), shas.get(oldest));
    assert.ok(!messages.some((x) => /writing the snapshot beside/.test(x)), messages.join(' | '));

    const m = await cli(['materialize', '--from', path.join(dir, oldest), '--out', tmp.join('plain') + '/', '--json'], { cwd: tmp.path });
    assert.strictEqual(m.code, 0, m.stderr);
    const out = path.join(tmp.join('plain'), oldest);
    assert.strictEqual(sha(out), shas.get(oldest));
    const manifest = JSON.parse(fs.readFileSync(path.join(tmp.join('plain'), oldest.replace(/\.db$/, '.manifest.json')), 'utf8')) as { snapshot: string; sha256: string };
    assert.deepStrictEqual([manifest.snapshot, manifest.sha256], [oldest, shas.get(oldest)]);
    // The plain copy passes our own verify (what ai-memory's restore checks: name, sha256, bytes).
    const v = await cli(['verify', '--from', out], { cwd: tmp.path });
    assert.strictEqual(v.code, 0, v.stdout + v.stderr);
    const again = await cli(['materialize', '--from', path.join(dir, oldest), '--out', out], { cwd: tmp.path });
    assert.strictEqual(again.code, 2);
    assert.match(again.stderr, /never overwrites/);
    const plain = await cli(['materialize', '--from', path.join(dir, names[3]), '--out', tmp.join('x.db')], { cwd: tmp.path });
    assert.strictEqual(plain.code, 1);
    assert.match(plain.stderr, /already a plain file/);
  });

  it('a snapshot pinned by a restore stays plain until the pin goes; a run that died mid-way is finished by the next', async () => {
    const names: string[] = [];
    for (let i = 0; i < 3; i++) {
      seedMemory(db, 'ns', `m${i}`, `memory ${i}`);
      names.push(await backup({ plain: 3 }));
    }
    const unpin = await pinSnapshot(dir, names[0]);
    const r = await archiveOlder(dir, 1, { dbPath: fs.realpathSync(db) });
    assert.deepStrictEqual(r.archived, [names[1]]);
    assert.ok(r.warnings.some((w) => w.includes(names[0]) && w.includes('restore')));
    assert.ok(fs.existsSync(path.join(dir, names[0])));
    await unpin();
    // A crash after the index and manifest were written, before the plain copy went: both forms exist.
    fs.copyFileSync(path.join(dir, names[2]), tmp.join('copy.db'));
    const r2 = await archiveOlder(dir, 1, { dbPath: fs.realpathSync(db) });
    assert.deepStrictEqual(r2.archived, [names[0]]);
    const entries = await listSnapshots(dir, { archived: true });
    assert.deepStrictEqual(entries.map((e) => [e.name, e.archived === true]), [
      [names[2], false],
      [names[1], true],
      [names[0], true],
    ]);
    // Put the plain copy of an archived snapshot back (as a crash between index and delete leaves it).
    fs.copyFileSync(tmp.join('copy.db'), tmp.join('copy2.db'));
    await rebuildArchived(dir, names[1], path.join(dir, names[1]));
    fs.copyFileSync(path.join(archivePaths(dir).snapshots, names[1].replace(/\.db$/, '.manifest.json')), path.join(dir, names[1].replace(/\.db$/, '.manifest.json')));
    assert.strictEqual((await listSnapshots(dir, { archived: true })).filter((e) => e.name === names[1]).length, 1, 'listed once');
    const r3 = await archiveOlder(dir, 1, { dbPath: fs.realpathSync(db) });
    assert.deepStrictEqual(r3.archived, [names[1]]);
    assert.ok(!fs.existsSync(path.join(dir, names[1])));
    await rebuildsAll();
  });
});
