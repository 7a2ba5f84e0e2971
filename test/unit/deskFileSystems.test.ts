/**
 * Backup folders, mirrors and databases on the file systems users really have: FAT32 and
 * exFAT (USB drives, SD cards: no hard links, no symbolic links, no Unix modes, 2-second
 * times, case-insensitive names, 4 GiB files on FAT32), mounted for real on loop devices
 * (test/support/mounts.ts; skipped, saying why, without root or the tools).
 */
import * as assert from 'assert';
import { spawn, spawnSync } from 'child_process';
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { createAiMemoryDb } from '../support/aiMemoryDb';
import { cli } from '../support/cliRun';
import { mountFs, type Mounted } from '../support/mounts';
import { cliBundle } from '../support/reliability';
import { trackChild } from '../support/procs';
import { openNative } from '../support/sqlite';
import { useTempDir } from '../support/tmp';

const sha = (f: string) => createHash('sha256').update(fs.readFileSync(f)).digest('hex');

/** Copies by bytes (fs.copyFile gives the copy the source's mode, which these drives refuse). */
const put = (from: string, to: string) => {
  fs.rmSync(to, { force: true }); // (fusefat cannot truncate a file in place)
  fs.writeFileSync(to, fs.readFileSync(from));
};

describe('desk file systems (FAT32, exFAT on loop devices)', function () {
  this.timeout(120_000);
  const tmp = useTempDir();
  const mounts: Partial<Record<'vfat' | 'exfat', Mounted | string>> = {};
  before(() => {
    mounts.vfat = mountFs('vfat', 96);
    mounts.exfat = mountFs('exfat', 96);
  });
  after(() => {
    for (const m of Object.values(mounts)) if (typeof m === 'object') m.cleanup();
  });

  for (const kind of ['vfat', 'exfat'] as const) {
    const drive = (ctx: Mocha.Context): string => {
      const m = mounts[kind];
      if (typeof m !== 'object') {
        console.log(`      skipped: ${m}`);
        ctx.skip();
      }
      return (m as Mounted).dir;
    };

    it(`${kind}: backup with archiving, verify --all, push/pull through a mirror there, materialize to it, restore a database living there (kept copies beside it)`, async function () {
      const d = drive(this);
      const db = tmp.join(`${kind}-ai.db`);
      createAiMemoryDb(db, { memories: 60, embeddingDim: 0, seed: 2 });
      fs.chmodSync(db, 0o600);
      const backups = path.join(d, 'backups');
      for (let i = 0; i < 3; i++) {
        const b = await cli(['backup', '--db', db, '--to', backups, '--plain', '1', '--keep', '10'], { cwd: tmp.path });
        assert.strictEqual(b.code, 0, b.stderr);
        const n = openNative(db);
        n.prepare('UPDATE memories SET priority = priority + 1 WHERE rowid % 3 = ?').run(i);
        n.close();
      }
      const v = await cli(['verify', '--from', backups, '--all'], { cwd: tmp.path });
      assert.strictEqual(v.code, 0, v.stdout + v.stderr);
      assert.match(v.stdout, /3 of 3 snapshots ok; every pack intact/);

      // The mirror: a folder on the drive (an off-machine copy on a USB stick).
      const mirror = path.join(d, 'mirror');
      fs.mkdirSync(mirror);
      const push = await cli(['push', '--to', backups, '--remote', mirror], { cwd: tmp.path });
      assert.strictEqual(push.code, 0, push.stderr);
      assert.match(push.stdout, /3 uploaded/);
      // A drive that lets everyone read its files (exFAT here: 0777) is said to, once.
      const copied = fs.readdirSync(mirror).find((n) => n.endsWith('.db')) as string;
      if (fs.statSync(path.join(mirror, copied)).mode & 0o044 & ~fs.statSync(db).mode) assert.strictEqual(push.stderr.match(/keeps no permissions/g)?.length, 1, push.stderr);
      const pulled = tmp.join(`${kind}-pulled`);
      fs.mkdirSync(pulled);
      const pull = await cli(['pull', '--remote', mirror, '--to', pulled, '--all'], { cwd: tmp.path });
      assert.strictEqual(pull.code, 0, pull.stderr);
      assert.strictEqual(fs.readdirSync(pulled).filter((n) => n.endsWith('.db')).length, 3);

      // An archived snapshot rebuilt onto the drive.
      const list = (await cli(['list', '--to', backups, '--json'], { cwd: tmp.path })).json<{ name: string; archived: boolean }[]>();
      const old = list.find((s) => s.archived);
      assert.ok(old, 'an archived snapshot');
      const outDir = path.join(d, 'out');
      fs.mkdirSync(outDir);
      const mat = await cli(['materialize', '--from', path.join(backups, old.name), '--out', `${outDir}/`], { cwd: tmp.path });
      assert.strictEqual(mat.code, 0, mat.stderr);
      assert.ok(fs.existsSync(path.join(outDir, old.name)));

      // A database that lives on the drive, with a -wal beside it: restored, the old one kept beside it.
      const home = path.join(d, 'db');
      fs.mkdirSync(home);
      const live = path.join(home, 'ai-memory.db');
      put(db, live);
      fs.writeFileSync(`${live}-wal`, '');
      const was = sha(live);
      const newest = list.find((s) => !s.archived) as { name: string };
      const r = await cli(['restore', '--db', live, '--from', path.join(backups, newest.name), '--yes', '--json'], { cwd: tmp.path });
      assert.strictEqual(r.code, 0, r.stderr);
      const res = r.json<{ kept_aside: string[]; sha256: string }>();
      assert.strictEqual(sha(live), res.sha256);
      assert.strictEqual(sha(res.kept_aside[0]), was, 'the replaced database is kept, as it was');
      assert.ok(res.kept_aside.some((k) => k.endsWith('-wal')));
    });

    it(`${kind}: snapshots made within one file-time tick (FAT: 2 s) get file times in their order, as ai-memory's restore and --keep go by file time`, async function () {
      const d = drive(this);
      const db = tmp.join(`${kind}-burst.db`);
      createAiMemoryDb(db, { memories: 5, embeddingDim: 0, seed: 5 });
      const dir = path.join(d, 'burst');
      for (let i = 0; i < 4; i++) {
        const n = openNative(db);
        n.prepare('UPDATE memories SET priority = ?').run(i);
        n.close();
        const b = await cli(['backup', '--db', db, '--to', dir, '--plain', '9'], { cwd: tmp.path });
        assert.strictEqual(b.code, 0, b.stderr);
      }
      const list = (await cli(['list', '--to', dir, '--json'], { cwd: tmp.path })).json<{ name: string }[]>();
      assert.strictEqual(list.length, 4);
      const times = list.map((s) => fs.statSync(path.join(dir, s.name)).mtimeMs); // newest first
      for (let i = 1; i < times.length; i++) assert.ok(times[i - 1] > times[i], `${list[i - 1].name} (${times[i - 1]}) is dated after ${list[i].name} (${times[i]})`);
    });

    it(`${kind}: one database reached by paths that differ in case only (the drive ignores case) is one database: restore takes its newest, retention counts them all`, async function () {
      const d = drive(this);
      const home = path.join(d, 'Work');
      fs.mkdirSync(home);
      const db = path.join(home, 'Memory.db');
      const src = tmp.join(`${kind}-case.db`);
      createAiMemoryDb(src, { memories: 5, embeddingDim: 0, seed: 7 });
      const dir = tmp.join(`${kind}-case-backups`);
      const spellings = [path.join(d, 'work', 'memory.db'), path.join(d, 'WORK', 'MEMORY.DB'), db];
      const made: string[] = [];
      for (const [i, given] of spellings.entries()) {
        const n = openNative(src);
        n.prepare('UPDATE memories SET priority = ?').run(i);
        n.close();
        put(src, db); // the server's database, changed between backups
        const b = await cli(['backup', '--db', given, '--to', dir, '--keep', '2', '--json'], { cwd: tmp.path });
        assert.strictEqual(b.code, 0, b.stderr);
        made.push(path.join(dir, b.json<{ snapshot: string }>().snapshot));
        await new Promise((r) => setTimeout(r, 1100)); // names a second apart
      }
      // --keep 2 of one database: the first is gone.
      assert.ok(fs.existsSync(made[1]) && fs.existsSync(made[2]));
      assert.ok(!fs.existsSync(made[0]), 'retention counted every spelling as this database');
      for (const given of spellings) {
        const r = await cli(['restore', '--db', given, '--from', dir, '--dry-run', '--json'], { cwd: tmp.path });
        assert.strictEqual(r.code, 0, r.stderr);
        assert.strictEqual(r.json<{ from: string }>().from, made[2], `restore --db ${given} takes the newest`);
      }
    });

    it(`${kind}: a server that opened the database by another spelling of its path holds it: restore refuses (in use), nothing changed`, async function () {
      const d = drive(this);
      fs.mkdirSync(path.join(d, 'Srv'));
      const db = path.join(d, 'Srv', 'Memory.db');
      const src = tmp.join(`${kind}-held.db`);
      createAiMemoryDb(src, { memories: 5, embeddingDim: 0, seed: 8 });
      put(src, db);
      const snap = tmp.join(`${kind}-held-backups`);
      assert.strictEqual((await cli(['backup', '--db', db, '--to', snap], { cwd: tmp.path })).code, 0);
      // The server, configured with another spelling (SQLite opens it: the drive ignores case).
      const holder = spawn(process.execPath, ['-e', `
        const D = require(${JSON.stringify(require.resolve('better-sqlite3'))});
        try {
          const a = new D(${JSON.stringify(path.join(d, 'SRV', 'MEMORY.DB'))}); a.prepare('select count(*) from memories').get();
          globalThis.keep = a; process.stdout.write('ready\\n');
        } catch (e) { process.stdout.write('cannot: ' + e.message + '\\n'); }
        setInterval(() => {}, 1000);`], { stdio: ['ignore', 'pipe', 'inherit'] });
      trackChild(holder, 'db holder');
      try {
        const said = await new Promise<string>((res, rej) => {
          holder.stdout?.once('data', (b: Buffer) => res(String(b)));
          holder.once('exit', (c) => rej(new Error(`holder exited ${c}`)));
        });
        if (!said.startsWith('ready')) {
          console.log(`      skipped: SQLite cannot open a database on this ${kind} mount (${said.trim()})`);
          this.skip();
        }
        const was = sha(db);
        for (const given of [db, path.join(d, 'srv', 'memory.db')]) {
          const r = await cli(['restore', '--db', given, '--from', snap, '--yes'], { cwd: tmp.path });
          assert.strictEqual(r.code, 1, `--db ${given}: ${r.stdout}${r.stderr}`);
          assert.match(r.stderr, /in use by pid/);
          assert.strictEqual(sha(db), was, 'nothing changed');
        }
      } finally {
        holder.kill('SIGKILL');
      }
    });

    it(`${kind}: a backup folder whose drive lets others read what the database's mode would not says so`, async function () {
      const d = drive(this);
      const db = tmp.join(`${kind}-private.db`);
      createAiMemoryDb(db, { memories: 5, embeddingDim: 0, seed: 3 });
      fs.chmodSync(db, 0o600);
      const dir = path.join(d, 'private');
      const b = await cli(['backup', '--db', db, '--to', dir], { cwd: tmp.path });
      assert.strictEqual(b.code, 0, b.stderr);
      const snap = fs.readdirSync(dir).find((n) => n.endsWith('.db')) as string;
      const mode = fs.statSync(path.join(dir, snap)).mode & 0o777;
      if (mode & 0o044) assert.match(b.stderr, /keeps no permissions .*\(0\d+\), not 0600/, b.stderr);
      else assert.doesNotMatch(b.stderr, /keeps no permissions/);
    });
  }

  it('a backup folder on a drive mounted read-only: backup says so and what to do; verify, list, pull and restore from it work', async function () {
    const m = mountFs('tmpfs', 32);
    if (typeof m !== 'object') {
      console.log(`      skipped: ${m}`);
      this.skip();
    }
    try {
      const db = tmp.join('ro.db');
      createAiMemoryDb(db, { memories: 20, embeddingDim: 0, seed: 6 });
      const dir = path.join(m.dir, 'backups');
      const mirror = path.join(m.dir, 'mirror');
      fs.mkdirSync(mirror);
      assert.strictEqual((await cli(['backup', '--db', db, '--to', dir, '--remote', mirror], { cwd: tmp.path })).code, 0);
      spawnSync('mount', ['-o', 'remount,ro', m.dir]);
      const b = await cli(['backup', '--db', db, '--to', dir], { cwd: tmp.path });
      assert.strictEqual(b.code, 1);
      assert.match(b.stderr, /read-only file system/, b.stderr);
      assert.match(b.stderr, /mount it writable/);
      assert.doesNotMatch(b.stderr, /Fix its permissions/);
      assert.strictEqual((await cli(['verify', '--from', dir, '--all'], { cwd: tmp.path })).code, 0);
      assert.strictEqual((await cli(['list', '--to', dir], { cwd: tmp.path })).code, 0);
      const pulled = tmp.join('ro-pulled');
      fs.mkdirSync(pulled);
      assert.strictEqual((await cli(['pull', '--remote', mirror, '--to', pulled], { cwd: tmp.path })).code, 0);
      const r = await cli(['restore', '--db', db, '--from', dir, '--yes'], { cwd: tmp.path });
      assert.strictEqual(r.code, 0, r.stderr);
    } finally {
      m.cleanup();
    }
  });

  it('a snapshot larger than the file system takes (FAT32: 4 GiB; here a file-size limit) fails saying so and what to do, nothing left behind', async function () {
    if (spawnSync('prlimit', ['--version']).status !== 0) this.skip();
    const db = tmp.join('big.db');
    createAiMemoryDb(db, { memories: 400, seed: 4 });
    assert.ok(fs.statSync(db).size > 1 << 20);
    const dir = tmp.join('limited');
    const r = spawnSync('prlimit', ['--fsize=1048576', process.execPath, await cliBundle(), 'backup', '--db', db, '--to', dir], { encoding: 'utf8', cwd: tmp.path, env: { ...process.env, HOME: tmp.path } });
    assert.strictEqual(r.status, 1, r.stdout + r.stderr);
    assert.match(r.stderr, /larger than that file system .* allows; a FAT32 drive holds no file of 4 GiB or more/);
    assert.match(r.stderr, /exFAT, NTFS, APFS or ext4/);
    assert.deepStrictEqual(fs.readdirSync(dir).filter((n) => !n.startsWith('.ai-memory-backup.')), [], 'no snapshot nor temp left');
  });
});
