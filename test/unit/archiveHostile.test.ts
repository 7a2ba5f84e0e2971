/**
 * The page-dedup archive as hostile input: a backup folder copied from a shared drive, a
 * pulled bucket or a damaged disk, whose archive was laid out or written by someone else.
 * Real files and real databases (native SQLite writes them); the CLI in-process, or as a
 * process (cliBundle) where its peak memory is what is checked.
 */
import * as assert from 'assert';
import { spawnSync } from 'child_process';
import { createHash } from 'crypto';
import { deflateRawSync } from 'zlib';
import * as fs from 'fs';
import * as path from 'path';
import { runBackup } from '../../src/core/ops/backup';
import { archivePaths, listArchived } from '../../src/core/store/archive';
import { createAiMemoryDb, seedMemory } from '../support/aiMemoryDb';
import { cli } from '../support/cliRun';
import { cliBundle, fingerprint } from '../support/reliability';
import { useTempDir } from '../support/tmp';

const sha = (f: string) => createHash('sha256').update(fs.readFileSync(f)).digest('hex');

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest();

/** A base file as archive.ts writes one (`AIMBASE1`, header length, JSON, the hashes, its own sha256), put in `bases/`; its name. */
function writeBase(dir: string, piece: number, hashes: Buffer[]): string {
  const json = Buffer.from(JSON.stringify({ v: 1, piece, pieces: hashes.length }), 'utf8');
  const head = Buffer.alloc(12);
  head.write('AIMBASE1', 0, 'latin1');
  head.writeUInt32LE(json.length, 8);
  const body = Buffer.concat([head, json, ...hashes]);
  const file = Buffer.concat([body, sha256(body)]);
  const name = sha256(file).toString('hex');
  fs.writeFileSync(path.join(archivePaths(dir).bases, `${name}.base`), file);
  return name;
}

/** An index v2 (`AIMIDX02`, header length, JSON, (page u32, sha256) each, its own sha256) written over the snapshot's. */
function writeIndexV2(dir: string, snapshot: string, header: Record<string, unknown>, changes: { page: number; hash: Buffer }[] = []): void {
  const json = Buffer.from(JSON.stringify({ v: 2, snapshot, ...header, changed: changes.length }), 'utf8');
  const head = Buffer.alloc(12);
  head.write('AIMIDX02', 0, 'latin1');
  head.writeUInt32LE(json.length, 8);
  const entries = changes.map((c) => {
    const e = Buffer.alloc(36);
    e.writeUInt32LE(c.page, 0);
    c.hash.copy(e, 4);
    return e;
  });
  const body = Buffer.concat([head, json, ...entries]);
  fs.writeFileSync(path.join(archivePaths(dir).snapshots, snapshot.replace(/\.db$/, '.idx')), Buffer.concat([body, sha256(body)]));
}

/** The sha256 of some page a pack of `dir` holds (its trailer's first entry). */
function aStoredPageHash(dir: string): Buffer {
  const packs = archivePaths(dir).packs;
  const p = fs.readFileSync(path.join(packs, fs.readdirSync(packs)[0]));
  const count = p.readUInt32LE(p.length - 16);
  const start = p.length - 16 - count * 52;
  return Buffer.from(p.subarray(start, start + 32));
}

interface VerifyAll {
  snapshots: { name: string; ok: boolean; problems: string[] }[];
  damaged_packs: { pack: string; snapshots: string[] }[];
}

/** A pack file of `size` bytes (sparse: no disk) ending in the footer (entry count, format version, `AIMPACK1`), `data` at its start, `entries` just before the footer. */
function writeSparsePack(file: string, size: number, count: number, version: number, data: Buffer = Buffer.alloc(0), entries: Buffer = Buffer.alloc(0)): void {
  const fd = fs.openSync(file, 'w');
  try {
    fs.ftruncateSync(fd, size);
    if (data.length) fs.writeSync(fd, data, 0, data.length, 0);
    if (entries.length) fs.writeSync(fd, entries, 0, entries.length, size - 16 - entries.length);
    const foot = Buffer.alloc(16);
    foot.writeUInt32LE(count, 0);
    foot.writeUInt32LE(version, 4);
    foot.write('AIMPACK1', 8, 'latin1');
    fs.writeSync(fd, foot, 0, 16, size - 16);
  } finally {
    fs.closeSync(fd);
  }
}

describe('archive: hostile backup folders', function () {
  this.timeout(120_000);
  const tmp = useTempDir();
  let db: string;

  /** A backup folder `dir` with four snapshots of `db`, the three older ones archived (--plain 1). */
  async function folderWithArchive(dir: string): Promise<string[]> {
    let clock = Date.parse('2026-11-01T00:00:00Z');
    const names: string[] = [];
    for (let i = 0; i < 4; i++) {
      seedMemory(db, 'ns', `m${i}`, `memory ${i} `.repeat(50));
      clock += 3600_000;
      const r = await runBackup({ dbPath: db, backupDir: dir, keep: 0, plain: 1, now: () => new Date(clock) });
      names.push(path.basename(r.snapshotPath));
    }
    assert.strictEqual((await listArchived(dir)).length, 3);
    return names;
  }

  beforeEach(() => {
    db = tmp.join('db', 'ai-memory.db');
    fs.mkdirSync(path.dirname(db), { recursive: true });
    createAiMemoryDb(db, { memories: 150 });
  });

  it("an archive folder that is a symlink into another backup folder's archive: prune writes and deletes nothing there", async () => {
    // B: a backup folder with its archive. A: a copy of it (the same database's snapshots),
    // whose packs/ and then snapshots/ are links into B's archive, as a copied or hand-made
    // layout can have them. A's collection counted B's packs as its own and deleted those its
    // own indexes do not name; A's retention deleted B's archived snapshots.
    const B = tmp.join('B');
    const names = await folderWithArchive(B);
    const before = fingerprint(B);
    for (const sub of ['packs', 'snapshots'] as const) {
      const A = tmp.join(`A-${sub}`);
      fs.cpSync(B, A, { recursive: true });
      const pa = archivePaths(A);
      if (sub === 'packs') {
        // A keeps only its oldest archived snapshot: the packs of the two newer ones are unused from A.
        for (const n of names.slice(1, 3)) for (const ext of ['.idx', '.manifest.json']) fs.rmSync(path.join(pa.snapshots, n.replace(/\.db$/, ext)));
      }
      fs.rmSync(pa[sub], { recursive: true });
      fs.symlinkSync(archivePaths(B)[sub], pa[sub]);
      // --keep 1: with snapshots/ linked, the archived snapshots there are due for deletion.
      const r = await cli(['prune', '--to', A, '--db', db, '--keep', sub === 'packs' ? '3' : '1', '--plain', '1', '--json'], { cwd: tmp.path });
      assert.deepStrictEqual(fingerprint(B), before, `${sub}: B's archive changed through A's link (${r.stdout}${r.stderr})`);
      assert.match(r.stdout + r.stderr, /symlink/, `${sub}: the link is named`);
      const v = await cli(['verify', '--from', B, '--all', '--json'], { cwd: tmp.path });
      assert.strictEqual(v.code, 0, `${sub}: ${v.stdout}`);
    }
    // A backup into such a folder still makes its plain snapshot; nothing goes through the link.
    const A = tmp.join('A-snapshots');
    seedMemory(db, 'ns', 'later', 'a later memory');
    const b = await cli(['backup', '--db', db, '--to', A, '--keep', '1', '--plain', '1', '--json'], { cwd: tmp.path });
    assert.strictEqual(b.code, 0, b.stderr);
    assert.deepStrictEqual(fingerprint(B), before, "a backup changed B's archive through A's link");
  });

  it('an index and base stating an impossible page size (2^33, 3 bytes) fail that snapshot, naming its index; verify --all still judges every other one', async () => {
    const dir = tmp.join('backups');
    const names = await folderWithArchive(dir);
    const victim = names[0];
    const manifest = JSON.parse(fs.readFileSync(path.join(archivePaths(dir).snapshots, victim.replace(/\.db$/, '.manifest.json')), 'utf8')) as { sha256: string; bytes: number };
    const page = aStoredPageHash(dir);
    for (const piece of [2 ** 33, 3]) {
      // Self-consistent: the index's own sha256, its base's, the base's name, the page count; its sha256 and size are the manifest's.
      const pieces = Math.ceil(manifest.bytes / piece);
      const base = writeBase(dir, piece, Array.from({ length: pieces }, () => page));
      writeIndexV2(dir, victim, { sha256: manifest.sha256, bytes: manifest.bytes, piece, pieces, base, basePieces: pieces });
      const v = await cli(['verify', '--from', dir, '--all', '--json'], { cwd: tmp.path });
      assert.strictEqual(v.code, 1, `piece ${piece}: ${v.stdout}${v.stderr}`);
      const o = JSON.parse(v.stdout.trim()) as VerifyAll;
      assert.deepStrictEqual(o.snapshots.map((x) => x.name).sort(), [...names].sort(), `piece ${piece}: every snapshot judged`);
      for (const x of o.snapshots) {
        if (x.name !== victim) assert.ok(x.ok, `piece ${piece}: ${x.name} ${x.problems.join(' ')}`);
        else {
          assert.ok(!x.ok);
          assert.match(x.problems.join(' '), /page index .*\.idx is damaged/, `piece ${piece}: the index is named`);
          assert.doesNotMatch(x.problems.join(' '), /Pack [0-9a-f]{64}/, `piece ${piece}: no intact pack is blamed`);
        }
      }
      assert.deepStrictEqual(o.damaged_packs, []);
      const r = await cli(['restore', '--db', tmp.join('restored.db'), '--from', path.join(dir, victim), '--json'], { cwd: tmp.path });
      assert.strictEqual(r.code, 1);
      assert.match(r.stderr, /ARCHIVE_DAMAGED/);
      assert.ok(!fs.existsSync(tmp.join('restored.db')));
    }
  });

  it('a plain snapshot is never dropped for an archived copy of it whose index is whole and matches its manifest but rebuilds to other bytes', async () => {
    const dir = tmp.join('backups');
    const names = await folderWithArchive(dir);
    const newest = names[3];
    const snaps = archivePaths(dir).snapshots;
    // An archived twin of the newest (plain) snapshot, as a crash between archiving and dropping
    // the plain file leaves one: its manifest byte for byte, and an index that is whole (its
    // own sha256, its base's) and states the manifest's name, sha256 and size, but lists the
    // pages of the snapshot before it.
    fs.copyFileSync(path.join(dir, newest.replace(/\.db$/, '.manifest.json')), path.join(snaps, newest.replace(/\.db$/, '.manifest.json')));
    const manifest = JSON.parse(fs.readFileSync(path.join(dir, newest.replace(/\.db$/, '.manifest.json')), 'utf8')) as { sha256: string; bytes: number };
    const prev = fs.readFileSync(path.join(snaps, names[2].replace(/\.db$/, '.idx')));
    const jl = prev.readUInt32LE(8);
    const h = JSON.parse(prev.toString('utf8', 12, 12 + jl)) as Record<string, unknown>;
    assert.strictEqual(h.bytes, manifest.bytes, 'same size (the test needs it)');
    const changes: { page: number; hash: Buffer }[] = [];
    for (let at = 12 + jl; at < prev.length - 32; at += 36) changes.push({ page: prev.readUInt32LE(at), hash: Buffer.from(prev.subarray(at + 4, at + 36)) });
    writeIndexV2(dir, newest, { sha256: manifest.sha256, bytes: h.bytes, piece: h.piece, pieces: h.pieces, base: h.base, basePieces: h.basePieces }, changes);
    assert.strictEqual((await cli(['verify', '--from', path.join(dir, newest)], { cwd: tmp.path })).code, 0, 'the plain file is good');
    const plainSha = sha(path.join(dir, newest));
    // A new backup with --plain 1: the newest snapshot is now due for the archive, which holds "it" already.
    seedMemory(db, 'ns', 'later', 'a later memory');
    const b = await cli(['backup', '--db', db, '--to', dir, '--keep', '10', '--plain', '1'], { cwd: tmp.path });
    assert.strictEqual(b.code, 0, b.stderr);
    assert.ok(fs.existsSync(path.join(dir, newest)), `the plain file was dropped: ${b.stdout}${b.stderr}`);
    assert.strictEqual(sha(path.join(dir, newest)), plainSha);
    assert.match(b.stdout + b.stderr, new RegExp(`${newest.replace(/\./g, '\\.')} stays plain: its archived copy would not rebuild`));
    const v = await cli(['verify', '--from', path.join(dir, newest)], { cwd: tmp.path });
    assert.strictEqual(v.code, 0, v.stdout + v.stderr);
  });

  it('a pack that is whole (named by its own bytes) but lists pages it does not hold: a snapshot is not archived on its word, its plain file stays', async () => {
    const dir = tmp.join('backups');
    const names = await folderWithArchive(dir);
    const newest = path.join(dir, names[3]);
    // Every page of the newest (plain) snapshot listed, each pointing at one blob of zeros.
    const bytes = fs.readFileSync(newest);
    const pages = bytes.length / 4096;
    const blob = deflateRawSync(Buffer.alloc(4096));
    const entries = Buffer.alloc(52 * pages);
    for (let i = 0; i < pages; i++) {
      sha256(bytes.subarray(i * 4096, (i + 1) * 4096)).copy(entries, i * 52);
      entries.writeUInt32LE(0, i * 52 + 32);
      entries.writeUInt32LE(blob.length, i * 52 + 36);
      entries.writeUInt32LE(4096, i * 52 + 40);
      entries.writeUInt32LE(0, i * 52 + 44);
      entries.writeUInt32LE(4096, i * 52 + 48);
    }
    const foot = Buffer.alloc(16);
    foot.writeUInt32LE(pages, 0);
    foot.writeUInt32LE(2, 4);
    foot.write('AIMPACK1', 8, 'latin1');
    const pack = Buffer.concat([blob, entries, foot]);
    fs.writeFileSync(path.join(archivePaths(dir).packs, `${sha256(pack).toString('hex')}.pack`), pack);
    const plainSha = sha(newest);
    seedMemory(db, 'ns', 'later', 'a later memory');
    const b = await cli(['backup', '--db', db, '--to', dir, '--keep', '10', '--plain', '1'], { cwd: tmp.path });
    assert.strictEqual(b.code, 0, b.stderr);
    assert.ok(fs.existsSync(newest), `the plain file was dropped: ${b.stdout}${b.stderr}`);
    assert.strictEqual(sha(newest), plainSha);
    assert.match(b.stderr, /stays plain: .*would not rebuild/);
    assert.ok(!(await listArchived(dir)).some((a) => a.name === names[3]), 'no archived copy of it is left');
    assert.strictEqual((await cli(['verify', '--from', newest], { cwd: tmp.path })).code, 0);
  });

  it('packs we wrote are recorded as proven; a pack missing from the record (lost, or made elsewhere) is read entry by entry before it is trusted', async () => {
    const dir = tmp.join('backups');
    const names = await folderWithArchive(dir);
    const { root, packs } = archivePaths(dir);
    const record = path.join(root, 'proven-packs');
    const listed = () => fs.readFileSync(record, 'utf8').split('\n').slice(1).filter(Boolean);
    const onDisk = () => fs.readdirSync(packs).filter((n) => n.endsWith('.pack')).sort();
    assert.deepStrictEqual(listed(), onDisk(), 'every pack written is in the record');
    // The record gone (or never there: an archive from before it): the next archiving proves
    // the packs it shares pages with by reading them, archives, and records them again.
    fs.rmSync(record);
    const before = new Set(onDisk());
    seedMemory(db, 'ns', 'later', 'a later memory');
    const b = await cli(['backup', '--db', db, '--to', dir, '--keep', '10', '--plain', '1'], { cwd: tmp.path });
    assert.strictEqual(b.code, 0, b.stderr);
    assert.doesNotMatch(b.stderr, /stays plain/);
    assert.ok(!fs.existsSync(path.join(dir, names[3])), 'the fourth snapshot was archived');
    const written = onDisk().filter((n) => !before.has(n));
    assert.ok(written.length > 0, 'archiving wrote a pack');
    // Listed: the packs it wrote, and those it shared pages with (proven by reading them); no other.
    assert.ok(listed().length > written.length, `only the new packs are listed: ${listed().join(', ')}`);
    for (const n of written) assert.ok(listed().includes(n), `${n}, written now, is not listed`);
    for (const n of listed()) assert.ok(onDisk().includes(n), `${n} is listed but not in the folder`);
    // A record that is not one (another program's file, a damaged one) is no record.
    fs.writeFileSync(record, `something else\n${onDisk().join('\n')}\n`);
    seedMemory(db, 'ns', 'later2', 'another memory');
    const c = await cli(['backup', '--db', db, '--to', dir, '--keep', '10', '--plain', '1'], { cwd: tmp.path });
    assert.strictEqual(c.code, 0, c.stderr);
    assert.doesNotMatch(c.stderr, /stays plain/);
    assert.match(fs.readFileSync(record, 'utf8'), /^ai-memory-backup proven packs 1\n/);
    assert.strictEqual((await cli(['verify', '--from', dir, '--all'], { cwd: tmp.path })).code, 0);
  });

  it("packs whose trailer claims more than they hold (sparse files: GBs to whoever reads them, KBs on disk) cost no memory: verify --all stays small and judges every snapshot", async () => {
    const dir = tmp.join('backups');
    const names = await folderWithArchive(dir);
    const packs = archivePaths(dir).packs;
    // (a) A footer announcing 2^23 entries (v2, 52 bytes each): a 436 MB trailer of zeros.
    writeSparsePack(path.join(packs, `${'a'.repeat(64)}.pack`), 16 + 2 ** 23 * 52 + 100, 2 ** 23, 2);
    // (b) A version 1 pack, named to be read first, whose one entry is a page the snapshots
    // need with a 512 MB "deflated" blob (v1 stored no blob larger than its page plus a few bytes).
    const entry = Buffer.alloc(44);
    aStoredPageHash(dir).copy(entry, 0);
    entry.writeUInt32LE(0, 32);
    entry.writeUInt32LE(2 ** 29, 36);
    entry.writeUInt32LE(4096, 40);
    writeSparsePack(path.join(packs, `${'0'.repeat(64)}.pack`), 2 ** 29 + 44 + 16, 1, 1, Buffer.from([1, 2, 3]), entry);
    const preload = tmp.join('rss.js');
    fs.writeFileSync(preload, `process.on('exit', () => require('fs').writeFileSync(${JSON.stringify(tmp.join('rss.txt'))}, String(process.resourceUsage().maxRSS)));`);
    const r = spawnSync(process.execPath, ['--require', preload, await cliBundle(), 'verify', '--from', dir, '--all', '--json'], { cwd: tmp.path, encoding: 'utf8', env: { PATH: process.env.PATH, HOME: tmp.path }, timeout: 90_000 });
    const rssMb = Number(fs.readFileSync(tmp.join('rss.txt'), 'utf8')) / 1024;
    assert.strictEqual(r.status, 1, r.stdout + r.stderr);
    const o = JSON.parse(r.stdout.trim()) as VerifyAll;
    // Every snapshot rebuilds from the real packs; the two files are named as damaged packs no snapshot needs.
    assert.deepStrictEqual(o.snapshots.map((x) => [x.name, x.ok]).sort(), names.map((n) => [n, true]).sort(), r.stdout);
    assert.deepStrictEqual(o.damaged_packs.map((d) => d.pack).sort(), [`${'0'.repeat(64)}.pack`, `${'a'.repeat(64)}.pack`]);
    assert.ok(rssMb < 200, `peak memory ${rssMb.toFixed(0)} MB: a footer's claim was allocated`);
  });
});

