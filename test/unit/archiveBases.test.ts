/**
 * The archive's page indexes against shared bases (issue 13), with real databases: an index
 * stores only the pages that differ from a base (a full page list in bases/, shared by the
 * snapshots whose pages changed little since), so the indexes cost what changed, not the
 * database's size times the snapshots. Bases are collected like packs (counted from the
 * indexes each time), a damaged or missing base fails exactly the snapshots that name it, and
 * indexes written before (version 1, every page's hash) are still read everywhere.
 */
import * as assert from 'assert';
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { runBackup } from '../../src/core/ops/backup';
import { runPrune } from '../../src/core/ops/prune';
import { archivePaths, listArchived, readIndex, rebuildArchived } from '../../src/core/store/archive';
import { HOST_TAG, TEMP_PREFIX } from '../../src/core/store/atomicFs';
import { createAiMemoryDb, seedMemory } from '../support/aiMemoryDb';
import { cli } from '../support/cliRun';
import { openNative } from '../support/sqlite';
import { flipByte } from '../support/sqliteFiles';
import { useTempDir } from '../support/tmp';

const sha = (f: string) => createHash('sha256').update(fs.readFileSync(f)).digest('hex');

interface IndexHead {
  v: number;
  pieces: number;
  base?: string;
  changed?: number;
}
/** An index file's header (its JSON after the magic and length). */
function headOf(indexPath: string): IndexHead {
  const b = fs.readFileSync(indexPath);
  return JSON.parse(b.toString('utf8', 12, 12 + b.readUInt32LE(8))) as IndexHead;
}

describe('archive: page indexes against shared bases (issue 13)', () => {
  const tmp = useTempDir();
  let db: string;
  let dir: string;
  let clock: number;
  const shas = new Map<string, string>();

  async function backup(opts: { plain?: number; keep?: number } = {}): Promise<string> {
    clock += 3600_000;
    const r = await runBackup({ dbPath: db, backupDir: dir, keep: opts.keep ?? 0, plain: opts.plain ?? 2, now: () => new Date(clock) });
    const name = path.basename(r.snapshotPath);
    shas.set(name, r.manifest.sha256);
    return name;
  }

  /** An hour of small changes: a few memories stored. */
  async function hour(i: number, opts: { plain?: number; keep?: number } = {}): Promise<string> {
    seedMemory(db, 'ns', `m${i}`, `memory ${i} `.repeat(30));
    return await backup(opts);
  }

  /** Every page rewritten: a VACUUM to the other page size. */
  function vacuumToOtherPageSize(): void {
    const n = openNative(db);
    try {
      const size = n.pragma('page_size', { simple: true }) as number;
      n.exec(`PRAGMA journal_mode=DELETE; PRAGMA page_size=${size === 4096 ? 8192 : 4096}; VACUUM; PRAGMA journal_mode=WAL;`);
    } finally {
      n.close();
    }
  }

  async function rebuildsAll(): Promise<void> {
    for (const a of await listArchived(dir)) {
      const out = tmp.join(`rebuilt-${a.name}`);
      const r = await rebuildArchived(dir, a.name, out);
      assert.strictEqual(r.sha256, shas.get(a.name), a.name);
      assert.strictEqual(sha(out), shas.get(a.name), a.name);
      fs.rmSync(out);
    }
  }

  const bases = () => (fs.existsSync(archivePaths(dir).bases) ? fs.readdirSync(archivePaths(dir).bases).sort() : []);

  beforeEach(() => {
    db = tmp.join('ai-memory.db');
    dir = tmp.join('backups');
    clock = Date.parse('2026-11-20T00:00:00Z');
    shas.clear();
    createAiMemoryDb(db, { memories: 600 });
  });

  it('an index stores only the pages that differ from a shared base: the indexes and bases cost a fraction of a full page list per snapshot', async () => {
    for (let i = 0; i < 10; i++) await hour(i);
    const archived = await listArchived(dir);
    assert.strictEqual(archived.length, 8);
    const heads = archived.map((a) => headOf(a.indexPath));
    assert.ok(heads.every((h) => h.v === 2 && typeof h.base === 'string'), JSON.stringify(heads));
    // One base for all of them (a few memories an hour change a few pages), named by its sha256.
    assert.strictEqual(new Set(heads.map((h) => h.base)).size, 1, JSON.stringify(heads));
    assert.deepStrictEqual(bases(), [`${heads[0].base}.base`]);
    const basePath = path.join(archivePaths(dir).bases, bases()[0]);
    assert.strictEqual(sha(basePath), heads[0].base);
    for (const h of heads) assert.ok((h.changed ?? 0) <= h.pieces / 4, `${h.changed} of ${h.pieces} pages changed`);
    // What a full page list per snapshot (version 1) took: 32 bytes a page each.
    const v1 = heads.reduce((a, h) => a + h.pieces * 32, 0);
    const now = archived.reduce((a, x) => a + fs.statSync(x.indexPath).size, 0) + fs.statSync(basePath).size;
    assert.ok(now * 3 < v1, `indexes and bases: ${now} bytes, a full list each: ${v1}`);
    await rebuildsAll();
    const v = await cli(['verify', '--from', dir, '--all', '--json'], { cwd: tmp.path });
    assert.strictEqual(v.code, 0, v.stdout + v.stderr);
    // readIndex gives every page's hash, the base's with the changes over it.
    for (const a of archived) {
      const { hashes, header } = await readIndex(a.indexPath);
      assert.strictEqual(hashes.length, header.pieces * 32);
      const out = tmp.join('one.db');
      await rebuildArchived(dir, a.name, out);
      const file = fs.readFileSync(out);
      for (let i = 0; i < header.pieces; i++) {
        const page = file.subarray(i * header.piece, (i + 1) * header.piece);
        assert.ok(createHash('sha256').update(page).digest().equals(hashes.subarray(i * 32, i * 32 + 32)), `page ${i + 1} of ${a.name}`);
      }
      fs.rmSync(out);
    }
  });

  it('a new base when most pages changed; bases no kept index names are collected (a dead run\'s too), one still named never', async () => {
    const first = [await hour(0), await hour(1), await hour(2), await hour(3)];
    const oldBase = headOf((await listArchived(dir))[0].indexPath).base;
    vacuumToOtherPageSize();
    const second = [await hour(4), await hour(5), await hour(6), await hour(7)];
    const heads = new Map((await listArchived(dir)).map((a) => [a.name, headOf(a.indexPath)]));
    const newBase = heads.get(second[0])?.base;
    assert.ok(newBase && newBase !== oldBase, 'the snapshot after the VACUUM wrote its own base');
    assert.strictEqual(heads.get(second[1])?.base, newBase, 'and the next one took it');
    assert.deepStrictEqual(bases(), [`${oldBase}.base`, `${newBase}.base`].sort());
    // Left by a run that died between its base and its index: a base no index names, and a temp file of a dead process.
    const stray = path.join(archivePaths(dir).bases, `${'ab'.repeat(32)}.base`);
    fs.copyFileSync(path.join(archivePaths(dir).bases, `${newBase}.base`), stray);
    const deadTemp = path.join(archivePaths(dir).bases, `${TEMP_PREFIX}${HOST_TAG}-99999999-00000000.base.tmp`);
    fs.writeFileSync(deadTemp, 'x');
    // Retention keeps the newest 4: every snapshot on the old base goes, and the first on the new one too (the one that wrote it).
    const r = await runPrune({ backupDir: dir, dbPath: db, policy: { last: 4 }, plain: 2 });
    assert.deepStrictEqual([...r.pruned].sort(), [...first, second[0], second[1]].sort().slice(0, r.pruned.length));
    assert.ok(r.archive, 'archiving ran');
    assert.ok(r.archive.gc.deletedBases.includes(`${oldBase}.base`), JSON.stringify(r.archive.gc));
    assert.ok(r.archive.gc.deletedBases.includes(path.basename(stray)), JSON.stringify(r.archive.gc));
    assert.ok(!fs.existsSync(stray));
    // The base the deleted snapshot wrote stays while a kept index names it.
    const kept = await listArchived(dir);
    assert.ok(kept.length >= 1);
    for (const a of kept) assert.strictEqual(headOf(a.indexPath).base, newBase);
    assert.deepStrictEqual(bases().filter((n) => n.endsWith('.base')), [`${newBase}.base`]);
    await rebuildsAll();
    // The temp file of a dead process: collected by the run, not left.
    assert.ok(!fs.existsSync(deadTemp), 'the dead run\'s temp file is collected');
  });

  it('a damaged or missing base: verify --all names every snapshot that uses it, their restore is refused (ARCHIVE_DAMAGED), the others are untouched', async () => {
    const onA = [await hour(0), await hour(1), await hour(2), await hour(3)];
    vacuumToOtherPageSize();
    const onB = [await hour(4), await hour(5), await hour(6)];
    // Archived: onA (all 4) and onB[0] (its own base, B); plain: onB[1], onB[2].
    const heads = new Map((await listArchived(dir)).map((a) => [a.name, headOf(a.indexPath)]));
    const baseA = heads.get(onA[0])?.base as string;
    for (const n of onA) assert.strictEqual(heads.get(n)?.base, baseA, n);
    assert.notStrictEqual(heads.get(onB[0])?.base, baseA);
    const basePath = path.join(archivePaths(dir).bases, `${baseA}.base`);
    const good = fs.readFileSync(basePath);
    const restored = tmp.join('restored.db');
    const check = async (why: RegExp) => {
      const v = await cli(['verify', '--from', dir, '--all', '--json'], { cwd: tmp.path });
      assert.strictEqual(v.code, 1, v.stdout);
      const o = v.json<{ snapshots: { name: string; ok: boolean; problems: string[] }[] }>();
      const failed = o.snapshots.filter((s) => !s.ok).map((s) => s.name).sort();
      assert.deepStrictEqual(failed, [...onA].sort(), JSON.stringify(o.snapshots));
      for (const s of o.snapshots.filter((x) => !x.ok)) {
        assert.match(s.problems.join(' '), new RegExp(`base .*${baseA}\\.base of ${s.name.replace(/\./g, '\\.')}'s page index is ${why.source}`));
      }
      // Restoring one that uses it: refused, the database as it was.
      const before = sha(restored);
      const bad = await cli(['restore', '--db', restored, '--from', path.join(dir, onA[1]), '--json'], { cwd: tmp.path });
      assert.strictEqual(bad.code, 1, bad.stdout);
      assert.match(bad.stderr, /ARCHIVE_DAMAGED/);
      assert.match(bad.stderr, new RegExp(baseA));
      assert.strictEqual(sha(restored), before);
      // One on the other base restores.
      const ok = await cli(['restore', '--db', restored, '--from', path.join(dir, onB[0]), '--json'], { cwd: tmp.path });
      assert.strictEqual(ok.code, 0, ok.stderr);
      assert.strictEqual(sha(restored), shas.get(onB[0]));
    };
    fs.copyFileSync(path.join(dir, onB[2]), restored);
    flipByte(basePath, good.length - 100); // a page hash: its own sha256 no longer matches
    await check(/damaged \(checksum\)/);
    // Its own sha256 made right again: its bytes still are not the ones its name promises.
    const forged = Buffer.from(fs.readFileSync(basePath));
    createHash('sha256').update(forged.subarray(0, forged.length - 32)).digest().copy(forged, forged.length - 32);
    fs.writeFileSync(basePath, forged);
    await check(/damaged \(its bytes do not match its name\)/);
    fs.rmSync(basePath);
    await check(/missing/);
    // While it is missing, the pages of the snapshots on it are unknown: nothing is collected.
    const packsBefore = fs.readdirSync(archivePaths(dir).packs).sort();
    const r = await runPrune({ backupDir: dir, dbPath: db, policy: { last: 20 }, plain: 1 });
    assert.deepStrictEqual(r.archive?.archived, [onB[1]]);
    assert.ok(r.archive?.warnings.some((w) => /no pack was collected/.test(w) && w.includes(baseA)), JSON.stringify(r.archive));
    for (const pk of packsBefore) assert.ok(fs.existsSync(path.join(archivePaths(dir).packs, pk)), `${pk} kept`);
    assert.ok(bases().includes(`${heads.get(onB[0])?.base}.base`), 'no base collected either');
    // Put back, everything rebuilds again.
    fs.writeFileSync(basePath, good);
    await rebuildsAll();
  });

  it('a damaged base is never taken by the next snapshot: it writes its own, and its plain file goes only then', async () => {
    for (let i = 0; i < 4; i++) await hour(i);
    const a = await listArchived(dir);
    const base = headOf(a[a.length - 1].indexPath).base as string;
    const basePath = path.join(archivePaths(dir).bases, `${base}.base`);
    flipByte(basePath, fs.statSync(basePath).size - 100);
    const next = (await listArchived(dir)).length;
    await hour(4);
    const now = await listArchived(dir);
    assert.strictEqual(now.length, next + 1);
    const newest = now.sort((x, y) => (x.name < y.name ? 1 : -1))[0];
    const h = headOf(newest.indexPath);
    assert.notStrictEqual(h.base, base, 'not the damaged base');
    assert.strictEqual(h.changed, 0);
    const out = tmp.join('newest.db');
    assert.strictEqual((await rebuildArchived(dir, newest.name, out)).sha256, shas.get(newest.name));
  });

  it('version 1 indexes (every page\'s hash, as archives before bases were written) are still read: rebuild, verify --all, restore, retention; the next archive writes a base', async () => {
    for (let i = 0; i < 5; i++) await hour(i);
    // Rewrite every archived index as version 1: AIMIDX01, the JSON header, every page's hash, sha256.
    const v1Names: string[] = [];
    for (const a of await listArchived(dir)) {
      const { header, hashes } = await readIndex(a.indexPath);
      const json = Buffer.from(JSON.stringify({ v: 1, snapshot: header.snapshot, sha256: header.sha256, bytes: header.bytes, piece: header.piece, pieces: header.pieces }), 'utf8');
      const head = Buffer.alloc(12);
      head.write('AIMIDX01', 0, 'latin1');
      head.writeUInt32LE(json.length, 8);
      const body = Buffer.concat([head, json, hashes]);
      fs.writeFileSync(a.indexPath, Buffer.concat([body, createHash('sha256').update(body).digest()]));
      v1Names.push(a.name);
    }
    fs.rmSync(archivePaths(dir).bases, { recursive: true });
    assert.strictEqual(v1Names.length, 3);
    await rebuildsAll();
    const v = await cli(['verify', '--from', dir, '--all', '--json'], { cwd: tmp.path });
    assert.strictEqual(v.code, 0, v.stdout + v.stderr);
    const restored = tmp.join('restored.db');
    const r = await cli(['restore', '--db', restored, '--from', path.join(dir, v1Names[0]), '--json'], { cwd: tmp.path });
    assert.strictEqual(r.code, 0, r.stderr);
    assert.strictEqual(sha(restored), shas.get(v1Names[0]));
    // The next archive: its candidate is a v1 index (no base): it writes one. Then one more takes it.
    const n5 = await hour(5);
    await hour(6);
    await hour(7);
    const heads = new Map((await listArchived(dir)).map((a) => [a.name, headOf(a.indexPath)]));
    for (const n of v1Names) assert.strictEqual(heads.get(n)?.v, 1, n);
    const newer = [...heads.entries()].filter(([, h]) => h.v === 2);
    assert.ok(newer.length >= 2, JSON.stringify([...heads]));
    assert.strictEqual(new Set(newer.map(([, h]) => h.base)).size, 1, 'the second takes the first one\'s base');
    assert.ok(heads.has(n5));
    // Retention deletes the v1 ones: their packs are collected (counted from v1 and v2 indexes alike), the base stays.
    const p = await runPrune({ backupDir: dir, dbPath: db, policy: { last: 4 }, plain: 2 });
    for (const n of v1Names) assert.ok(p.pruned.includes(n), n);
    assert.deepStrictEqual(p.archive?.gc.deletedBases, []);
    assert.strictEqual(bases().length, 1);
    await rebuildsAll();
  });
});
