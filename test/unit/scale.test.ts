/**
 * Size and count: a backup folder of thousands of snapshots (two years of hourly backups,
 * as ai-memory's timer leaves them) must be pruned in seconds, and what protects a
 * snapshot (a restore's pin) must still hold at that size.
 */
import * as assert from 'assert';
import { spawn } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { runBackup } from '../../src/core/ops/backup';
import { runPrune } from '../../src/core/ops/prune';
import { formatStamp, manifestNameFor, snapshotName } from '../../src/core/store/naming';
import { pinSnapshot } from '../../src/core/store/pins';
import { listPreRestoreCopies } from '../../src/core/store/preRestore';
import { preRestoreName } from '../../src/core/store/naming';
import { createAiMemoryDb } from '../support/aiMemoryDb';
import { cliBundle } from '../support/reliability';
import { useTempDir } from '../support/tmp';

/** The bundled CLI (built when missing: a clean clone has no dist/). */
let CLI = '';

describe('scale: thousands of snapshots', function () {
  before(async function () {
    this.timeout(120_000);
    CLI = await cliBundle();
  });
  this.timeout(300_000);
  const tmp = useTempDir();
  let db: string;
  let dir: string;

  /**
   * One real snapshot, then `count` more of it an hour apart going back (hard links with
   * their own manifests: real snapshots of this database, without the disk they would take).
   * Newest first.
   */
  async function hourlyFolder(count: number): Promise<string[]> {
    db = tmp.join('ai-memory.db');
    dir = tmp.join('backups');
    createAiMemoryDb(db, { memories: 3 });
    const first = await runBackup({ dbPath: db, backupDir: dir, keep: 0, now: () => new Date('2026-11-30T12:00:00Z') });
    const manifest = JSON.parse(fs.readFileSync(first.manifestPath, 'utf8')) as Record<string, unknown>;
    const names = [path.basename(first.snapshotPath)];
    for (let i = 1; i <= count; i++) {
      const at = new Date(Date.parse('2026-11-30T11:00:00Z') - (i - 1) * 3600_000);
      const name = snapshotName(formatStamp(at));
      fs.linkSync(first.snapshotPath, path.join(dir, name));
      fs.writeFileSync(path.join(dir, manifestNameFor(name)), JSON.stringify({ ...manifest, snapshot: name, created_at: at.toISOString().replace('Z', '+00:00') }, null, 2));
      names.push(name);
    }
    return names;
  }

  it('prune of 8,000 hourly snapshots down to a few takes seconds (it listed the whole folder again before each delete: minutes)', async () => {
    const names = await hourlyFolder(8000);
    const started = Date.now();
    const r = await runPrune({ backupDir: dir, dbPath: db, policy: { hourly: 48, daily: 14, weekly: 8, monthly: 24 } });
    const took = Date.now() - started;
    const kept = r.decisions.filter((d) => d.keep).map((d) => d.name);
    assert.strictEqual(r.pruned.length + kept.length, names.length);
    assert.ok(kept.length > 48 && kept.length < 120, `kept ${kept.length}`);
    const left = fs.readdirSync(dir).filter((n) => n.endsWith('.db'));
    assert.deepStrictEqual(left.sort(), [...kept].sort(), 'the folder holds exactly what the policy keeps');
    assert.ok(took < 20_000, `prune took ${took} ms`);
    assert.ok(!fs.existsSync(path.join(dir, '.ai-memory-backup.pins')), 'the pins stamp goes with the run');
  });

  it('prune of 8,000 snapshots holds no more than a few KB per snapshot (the in-use check held a pending stat of every path at once)', async () => {
    const names = await hourlyFolder(8000);
    // 80 MB of heap: the whole listing fits many times over; 8,000 × 4 pending stats needed
    // about 122 MB. (64 MB was too close: a run on a busy machine, whose collections came
    // later, once ran out at it.)
    const child = spawn(process.execPath, ['--max-old-space-size=80', CLI, 'prune', '--to', dir, '--db', db, '--keep-last', '5', '--plain', '5', '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    assert.strictEqual(code, 0, err.slice(0, 2000));
    const o = JSON.parse(out) as { deleted: string[] };
    assert.strictEqual(o.deleted.length, names.length - 5);
    assert.strictEqual(fs.readdirSync(dir).filter((n) => n.endsWith('.db')).length, 5);
  });

  it('a restore that pins a snapshot while a big prune is deleting keeps it', async () => {
    const names = await hourlyFolder(8000);
    const oldest = names[names.length - 1]; // deleted last: the plan goes newest first
    const child = spawn(process.execPath, [CLI, 'prune', '--to', dir, '--db', db, '--keep-last', '5', '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
    // Once it is deleting (a snapshot the plan lets go is gone), a restore pins the oldest.
    while (fs.existsSync(path.join(dir, names[6]))) await new Promise((r) => setTimeout(r, 5));
    const unpin = await pinSnapshot(dir, oldest);
    try {
      assert.ok(fs.existsSync(path.join(dir, oldest)), 'the prune got to the oldest before the pin: the test proves nothing');
      const code = await exited;
      assert.strictEqual(code, 0, err);
      const o = JSON.parse(out) as { deleted: string[]; kept: { name: string; reasons: string[] }[] };
      assert.ok(fs.existsSync(path.join(dir, oldest)), 'the pinned snapshot was deleted');
      assert.ok(!o.deleted.includes(oldest));
      assert.deepStrictEqual(o.kept.find((k) => k.name === oldest)?.reasons, ['pinned by a restore']);
      assert.strictEqual(o.deleted.length, names.length - 6);
      assert.ok(!fs.existsSync(path.join(dir, '.ai-memory-backup.pins')), 'the pins stamp goes with the run');
    } finally {
      await unpin();
      if (child.exitCode === null) child.kill();
    }
  });

  it('12,000 kept pre-restore copies with their sidecars (keepPreRestore 0) are listed in seconds (a search of every name per copy: quadratic)', async () => {
    const folder = tmp.join('db');
    fs.mkdirSync(folder);
    const dbFile = path.join(folder, 'ai-memory.db');
    createAiMemoryDb(dbFile, { memories: 1 });
    const n = 12_000;
    for (let i = 0; i < n; i++) {
      const name = preRestoreName('ai-memory.db', formatStamp(new Date(Date.parse('2025-01-01T00:00:00Z') + i * 60_000)));
      for (const suffix of ['', '-wal', '-shm']) fs.writeFileSync(path.join(folder, name + suffix), '');
    }
    const started = Date.now();
    const copies = await listPreRestoreCopies(dbFile);
    const took = Date.now() - started;
    assert.strictEqual(copies.length, n);
    assert.ok(copies.every((c) => c.sidecars.length === 2), 'each copy with its -wal and -shm');
    assert.ok(took < 6_000, `listing took ${took} ms`);
  });
});
