/**
 * Reliability 2: disk full. As root, a small tmpfs is mounted for the backup folder (or
 * the database's folder) and filled with a filler file, so the CLI's write hits ENOSPC;
 * elsewhere the cases are skipped with the reason. Each failure must be clear (NO_SPACE,
 * exit 1), remove its temporary file, and leave everything that was there — earlier
 * snapshots, their manifests, the live database — byte-identical.
 */
import * as assert from 'assert';
import * as fs from 'fs';
import * as path from 'path';
import { runBackup } from '../../src/core/ops/backup';
import { deleteSnapshot } from '../../src/core/store/catalog';
import { createAiMemoryDb, seedMemory } from '../support/aiMemoryDb';
import { cliBundle, expectRefusal, fillTo, freeBytes, mountTmpfs, mountUnavailable, nativeState, runCliProcess, tempFiles, type Mount } from '../support/reliability';
import { reliabilityCase, type CaseContext } from '../support/reliabilityReport';
import { useTempDir } from '../support/tmp';

const PAGE = 4096;
const roundUp = (n: number) => Math.ceil(n / PAGE) * PAGE;

describe('reliability 2: disk full', function () {
  this.timeout(120_000);
  const tmp = useTempDir('aimb-diskfull-');
  let unavailable: string | undefined;
  let mounts: Mount[] = [];

  before(async () => {
    unavailable = mountUnavailable();
    if (unavailable) console.log(`      disk-full cases skipped: ${unavailable}`);
    await cliBundle();
  });
  afterEach(() => {
    for (const m of mounts) m.unmount();
    mounts = [];
  });

  const mount = (ctx: CaseContext, bytes: number): Mount => {
    if (unavailable) ctx.skip(unavailable);
    const m = mountTmpfs(bytes);
    mounts.push(m);
    return m;
  };

  /** A backup folder on a 16 MiB tmpfs holding two earlier snapshots, and a database (elsewhere) whose -wal adds pages. */
  async function backupSetup(ctx: CaseContext) {
    const m = mount(ctx, 16 << 20);
    const earlier = tmp.join('earlier', 'ai-memory.db');
    createAiMemoryDb(earlier, { memories: 150, seed: 5 });
    await runBackup({ dbPath: earlier, backupDir: m.path });
    seedMemory(earlier, 'ns', 'later', 'a second, different snapshot');
    await runBackup({ dbPath: earlier, backupDir: m.path });
    const db = tmp.join('db', 'ai-memory.db');
    createAiMemoryDb(db, { memories: 300, seed: 6, leaveWalCommits: 60 });
    // The image's size: main file + the pages the -wal adds (measured with a backup elsewhere).
    const probe = await runBackup({ dbPath: db, backupDir: tmp.join('probe') });
    const image = probe.manifest.bytes;
    const main = fs.statSync(db).size;
    assert.ok(image > main + 8 * PAGE, `the -wal adds pages (image ${image}, main ${main})`);
    return { m, db, image, main, snapshots: fs.readdirSync(m.path).filter((n) => n.endsWith('.db')).length };
  }

  reliabilityCase(
    'disk',
    'backup: the -wal makes the snapshot larger than the free space, the database file alone would fit',
    {
      done: 'backup folder on a 16 MiB tmpfs with 2 earlier snapshots; filled so the free space is more than the database file (the first check passes) but less than the image (main + the pages its -wal adds); `backup`',
      checked: 'exit 1, NO_SPACE naming the image\'s size once it is known, before the disk is filled (it was written until ENOSPC, leaving the disk full for a moment, the ai-memory server beside it included), with a hint (text and --json); the temp file removed, no lock left; the whole folder — earlier snapshots, manifests, filler — byte-identical (fingerprint); the live database untouched',
    },
    async (ctx) => {
      const s = await backupSetup(ctx);
      fillTo(s.m.path, roundUp(s.main + (s.image - s.main) / 2));
      assert.ok(freeBytes(s.m.path) >= s.main && freeBytes(s.m.path) < s.image);
      const r = await expectRefusal(['backup', '--db', s.db, '--to', s.m.path], { code: 'NO_SPACE', message: new RegExp(`No space left for .*the database with what its -wal holds is .*\\(${s.image} bytes\\)`) }, { cwd: tmp.path, roots: [s.m.path, path.dirname(s.db)] });
      assert.deepStrictEqual(tempFiles(s.m.path), []);
      return `${r}; ${s.snapshots} earlier snapshots intact`;
    },
  );

  reliabilityCase(
    'disk',
    'backup: room for the snapshot but not for its manifest',
    {
      done: 'same folder, filled to leave exactly the image plus one page for the lock: the snapshot temp fits, the manifest does not; `backup`',
      checked: 'exit 1, NO_SPACE (text and --json); the complete snapshot temp removed too; folder byte-identical; no file under a final snapshot name without its manifest',
    },
    async (ctx) => {
      const s = await backupSetup(ctx);
      fillTo(s.m.path, s.image + PAGE);
      const r = await expectRefusal(['backup', '--db', s.db, '--to', s.m.path], { code: 'NO_SPACE', message: /No space left/ }, { cwd: tmp.path, roots: [s.m.path, path.dirname(s.db)] });
      assert.deepStrictEqual(tempFiles(s.m.path), []);
      return r;
    },
  );

  reliabilityCase(
    'disk',
    'backup: less free space than the database (refused up front)',
    {
      done: 'same folder, filled to leave half the database\'s size; `backup`',
      checked: 'exit 1, NO_SPACE naming the free and needed bytes, before anything is written (text and --json); folder byte-identical',
    },
    async (ctx) => {
      const s = await backupSetup(ctx);
      fillTo(s.m.path, roundUp(s.main / 2));
      return await expectRefusal(['backup', '--db', s.db, '--to', s.m.path], { code: 'NO_SPACE', message: /Not enough space/ }, { cwd: tmp.path, roots: [s.m.path, path.dirname(s.db)] });
    },
  );

  reliabilityCase(
    'disk',
    'backup: the next run after freeing space succeeds',
    {
      done: 'the mid-write ENOSPC case, then the filler deleted and `backup` run again',
      checked: 'exit 0; a new valid snapshot; the earlier ones still there',
    },
    async (ctx) => {
      const s = await backupSetup(ctx);
      fillTo(s.m.path, roundUp(s.main + (s.image - s.main) / 2));
      const failed = await runCliProcess(['backup', '--db', s.db, '--to', s.m.path, '--json'], { cwd: tmp.path });
      assert.strictEqual(failed.code, 1);
      fs.rmSync(path.join(s.m.path, 'filler.bin'));
      const ok = await runCliProcess(['backup', '--db', s.db, '--to', s.m.path, '--json'], { cwd: tmp.path });
      assert.strictEqual(ok.code, 0, ok.stderr);
      const out = JSON.parse(ok.stdout) as { status: string; snapshot: string };
      assert.strictEqual(out.status, 'created');
      assert.strictEqual(nativeState(path.join(s.m.path, out.snapshot)).integrity, 'ok');
      assert.strictEqual(fs.readdirSync(s.m.path).filter((n) => n.endsWith('.db')).length, s.snapshots + 1);
      return `exit 0, ${s.snapshots + 1} snapshots`;
    },
  );

  reliabilityCase(
    'disk',
    'backup: room for the snapshot and its manifest, not for recording the run',
    {
      done: 'same folder; for 1 to 4 pages of room beyond the image (the database changed each time): `backup --json`',
      checked: 'a run that published a snapshot (new file under a final name, its manifest verifying) exits 0 with status created and says in a warning that the run could not be recorded; a run that exits 1 published nothing; the folder holds no temp file',
    },
    async (ctx) => {
      const s = await backupSetup(ctx);
      let notRecorded = 0;
      for (let extra = 1; extra <= 4; extra++) {
        fs.rmSync(path.join(s.m.path, 'filler.bin'), { force: true });
        seedMemory(s.db, 'ns', `disk ${extra}`, `changed for run ${extra}`);
        fillTo(s.m.path, s.image + extra * PAGE);
        const before = new Set(fs.readdirSync(s.m.path));
        const r = await runCliProcess(['backup', '--db', s.db, '--to', s.m.path, '--json'], { cwd: tmp.path });
        const made = fs.readdirSync(s.m.path).filter((n) => !before.has(n) && /^ai-memory-.*\.db$/.test(n));
        if (made.length) {
          assert.strictEqual(r.code, 0, `room for ${extra} page(s): a snapshot (${made.join(', ')}) was published, yet the run failed: ${r.stderr}`);
          const out = JSON.parse(r.stdout) as { status: string; snapshot: string };
          assert.strictEqual(out.status, 'created');
          assert.deepStrictEqual(made, [out.snapshot]);
          const v = await runCliProcess(['verify', '--from', path.join(s.m.path, out.snapshot)], { cwd: tmp.path });
          assert.strictEqual(v.code, 0, v.stdout + v.stderr);
          if (/^warning: .*could not record/m.test(r.stderr)) notRecorded++;
        } else {
          assert.strictEqual(r.code, 1, `room for ${extra} page(s): nothing published, so the run must fail (${r.stdout})`);
        }
        assert.deepStrictEqual(tempFiles(s.m.path), []);
      }
      assert.ok(notRecorded > 0, 'one of the runs had room for the snapshot and its manifest but not for the state file');
      return `${notRecorded} run(s) published a snapshot without room to record the run: exit 0, status created, a warning`;
    },
  );

  reliabilityCase(
    'disk',
    'prune frees a backup folder that is completely full',
    {
      done: 'the backup folder on a 16 MiB tmpfs with 3 snapshots of one database, then filled to the last byte (the backup fails: no space); `prune --keep-last 1`, then a snapshot deleted the way the Snapshots view deletes one',
      checked: 'prune exits 0 and deletes the 2 older snapshots and their manifests (what frees the space must not need space); the newest is kept and verifies; no lock or temp file left; the delete works too; then a backup succeeds once the filler is gone',
    },
    async (ctx) => {
      const m = mount(ctx, 16 << 20);
      const db = tmp.join('full', 'ai-memory.db');
      createAiMemoryDb(db, { memories: 150, seed: 9 });
      const names: string[] = [];
      for (let i = 0; i < 3; i++) {
        seedMemory(db, 'ns', `full ${i}`, `snapshot ${i}`);
        const r = await runBackup({ dbPath: db, backupDir: m.path, keep: 0, now: () => new Date(Date.parse('2026-11-29T10:00:00Z') + i * 3600_000) });
        names.push(path.basename(r.snapshotPath));
      }
      fillTo(m.path, 0);
      assert.strictEqual(freeBytes(m.path), 0);
      const b = await runCliProcess(['backup', '--db', db, '--to', m.path], { cwd: tmp.path });
      assert.strictEqual(b.code, 1, 'a backup into the full folder fails');
      const p = await runCliProcess(['prune', '--db', db, '--to', m.path, '--keep-last', '1', '--json'], { cwd: tmp.path });
      assert.strictEqual(p.code, 0, `prune on a full disk: ${p.stderr}`);
      assert.deepStrictEqual((JSON.parse(p.stdout) as { deleted: string[] }).deleted.sort(), [names[0], names[1]]);
      const left = fs.readdirSync(m.path);
      for (const n of [names[0], names[1]]) assert.ok(!left.includes(n) && !left.includes(n.replace(/\.db$/, '.manifest.json')), n);
      assert.ok(!left.includes('.ai-memory-backup.lock'), 'no lock left');
      assert.deepStrictEqual(tempFiles(m.path), []);
      const v = await runCliProcess(['verify', '--from', path.join(m.path, names[2])], { cwd: tmp.path });
      assert.strictEqual(v.code, 0, v.stdout + v.stderr);
      // The Snapshots view's Delete takes the same lock.
      fillTo(m.path, 0, 'filler2.bin');
      await deleteSnapshot(m.path, names[2]);
      assert.ok(!fs.existsSync(path.join(m.path, names[2])));
      fs.rmSync(path.join(m.path, 'filler.bin'));
      fs.rmSync(path.join(m.path, 'filler2.bin'));
      const ok = await runCliProcess(['backup', '--db', db, '--to', m.path], { cwd: tmp.path });
      assert.strictEqual(ok.code, 0, ok.stderr);
      return 'prune exit 0 on a full disk, 2 older snapshots deleted, the newest kept and verified; Delete works too; the next backup succeeds';
    },
  );

  /** The database (with 30 commits in its -wal) on a 12 MiB tmpfs; a snapshot of other content elsewhere. */
  async function restoreSetup(ctx: CaseContext) {
    const m = mount(ctx, 12 << 20);
    const db = path.join(m.path, 'ai-memory.db');
    createAiMemoryDb(db, { memories: 300, seed: 7, leaveWalCommits: 30 });
    const other = tmp.join('other', 'ai-memory.db');
    createAiMemoryDb(other, { memories: 200, seed: 8 });
    const snap = await runBackup({ dbPath: other, backupDir: tmp.join('backups') });
    const oldImage = (await runBackup({ dbPath: db, backupDir: tmp.join('probe') })).manifest.bytes;
    return { m, db, snapshot: snap.snapshotPath, snapshotBytes: snap.manifest.bytes, oldImage, old: nativeState(db).digest };
  }

  reliabilityCase(
    'disk',
    'restore: the database\'s folder is full',
    {
      done: 'the database (+ -wal with 30 commits) on a 12 MiB tmpfs, filled to leave half the snapshot\'s size; `restore`',
      checked: 'exit 1, NO_SPACE (text and --json); the restore temp removed; the database folder (db, -wal, filler) and the backup folder byte-identical; the live database still opens with its old content',
    },
    async (ctx) => {
      const s = await restoreSetup(ctx);
      fillTo(s.m.path, roundUp(s.snapshotBytes / 2));
      const r = await expectRefusal(['restore', '--db', s.db, '--from', s.snapshot], { code: 'NO_SPACE', message: /No space left while writing/ }, { cwd: tmp.path, roots: [s.m.path, tmp.join('backups')] });
      assert.deepStrictEqual(tempFiles(s.m.path), []);
      assert.strictEqual(nativeState(s.db).digest, s.old);
      return r;
    },
  );

  reliabilityCase(
    'disk',
    'restore: room for the snapshot but not for folding the old WAL in',
    {
      done: 'same, filled to leave the snapshot\'s size plus a little: the restore temp fits, the consolidated copy of the old database does not; `restore`',
      checked: 'exit 1, NO_SPACE, stating that nothing was changed (text and --json); both temps and the pre-restore links removed; folders byte-identical; old content intact',
    },
    async (ctx) => {
      const s = await restoreSetup(ctx);
      fillTo(s.m.path, roundUp(s.snapshotBytes) + roundUp(s.oldImage / 2));
      const r = await expectRefusal(['restore', '--db', s.db, '--from', s.snapshot], { code: 'NO_SPACE', message: /No space left/ }, { cwd: tmp.path, roots: [s.m.path, tmp.join('backups')] });
      const j = await runCliProcess(['restore', '--db', s.db, '--from', s.snapshot, '--json'], { cwd: tmp.path });
      assert.match(JSON.parse(j.stderr.trim()).state ?? '', /Nothing was changed/);
      assert.deepStrictEqual(tempFiles(s.m.path), []);
      assert.strictEqual(nativeState(s.db).digest, s.old);
      return `${r} (state: "Nothing was changed")`;
    },
  );
});
