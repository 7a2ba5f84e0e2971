/**
 * `backup`: ai-memory's own test module ported, then what we promise beyond it — manifest
 * shape, same-second names, identical-snapshot skip, retention by name time, refusals,
 * encrypted databases, leftovers of crashed runs.
 */
import * as assert from 'assert';
import { execFileSync, spawnSync } from 'child_process';
import { createHash, randomBytes } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { pruneSnapshots, runBackup } from '../../src/core/ops/backup';
import { EarlyWriteback, tempPath } from '../../src/core/store/atomicFs';
import { BackupError } from '../../src/core/common/errors';
import { compareNewestFirst, parseSnapshotName } from '../../src/core/store/naming';
import { pinSnapshot } from '../../src/core/store/pins';
import { acquireFolderLock } from '../../src/core/store/folderLock';
import { runRestore } from '../../src/core/ops/restore';
import { runMaterialize } from '../../src/core/ops/archived';
import { extract } from '../../src/core/ops/memory';
import { MirrorTarget } from '../../src/core/remote/mirrorTarget';
import { pushToTarget } from '../../src/core/remote/sync';
import { createAiMemoryDb, nativeChecks, seedMemory } from '../support/aiMemoryDb';
import { cli } from '../support/cliRun';
import { openNative } from '../support/sqlite';
import { useTempDir } from '../support/tmp';

const sha = (f: string) => createHash('sha256').update(fs.readFileSync(f)).digest('hex');
const snapshots = (dir: string) => fs.readdirSync(dir).filter((n) => n.startsWith('ai-memory-') && n.endsWith('.db')).sort();
const manifests = (dir: string) => fs.readdirSync(dir).filter((n) => n.endsWith('.manifest.json')).sort();

async function rejectsCode(p: Promise<unknown>, code: string): Promise<BackupError> {
  let err: BackupError | undefined;
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof BackupError, `expected a BackupError, got ${String(e)}`);
    assert.strictEqual(e.code, code, e.message);
    err = e;
    return true;
  });
  return err as BackupError;
}

describe('backup: ai-memory cli::backup tests, ported', () => {
  const tmp = useTempDir();
  let db: string;
  beforeEach(() => {
    db = tmp.join('ai-memory.db');
  });

  it('test_backup_happy_path_creates_snapshot_and_manifest', async () => {
    seedMemory(db, 'ns', 't', 'c');
    const dir = tmp.join('backups-x1');
    const r = await cli(['backup', '--db', db, '--to', dir, '--keep', '48'], { cwd: tmp.path });
    assert.strictEqual(r.code, 0, r.stderr);
    assert.ok(snapshots(dir).length >= 1, 'expected at least one snapshot');
    assert.ok(manifests(dir).length >= 1, 'expected at least one manifest');
    assert.ok(r.stdout.includes('Snapshot:'));
  });

  it('test_backup_json_emits_manifest_with_sha256', async () => {
    seedMemory(db, 'ns', 't', 'c');
    const r = await cli(['backup', '--db', db, '--to', tmp.join('backups-x2'), '--json'], { cwd: tmp.path });
    assert.strictEqual(r.code, 0, r.stderr);
    const v = r.json<{ sha256: unknown }>();
    assert.strictEqual(typeof v.sha256, 'string');
    assert.strictEqual((v.sha256 as string).length, 64);
  });

  it('test_restore_from_directory_picks_newest', async () => {
    seedMemory(db, 'ns', 'before-backup', 'stuff');
    const dir = tmp.join('backups-x3');
    assert.strictEqual((await cli(['backup', '--db', db, '--to', dir], { cwd: tmp.path })).code, 0);
    const r = await cli(['restore', '--db', db, '--from', dir], { cwd: tmp.path });
    assert.strictEqual(r.code, 0, r.stderr);
    assert.ok(r.stdout.includes('Restored'));
  });

  it('test_restore_from_explicit_file_path', async () => {
    seedMemory(db, 'ns', 't', 'c');
    const dir = tmp.join('backups-x4');
    const b = await cli(['backup', '--db', db, '--to', dir, '--json'], { cwd: tmp.path });
    const manifest = b.json<{ snapshot: string }>();
    const r = await cli(['restore', '--db', db, '--from', path.join(dir, manifest.snapshot), '--json'], { cwd: tmp.path });
    assert.strictEqual(r.code, 0, r.stderr);
    assert.strictEqual(r.json<{ status: string }>().status, 'restored');
  });

  it('test_restore_with_skip_verify_succeeds_without_manifest', async () => {
    seedMemory(db, 'ns', 't', 'c');
    const dir = tmp.join('backups-x5');
    const manifest = (await cli(['backup', '--db', db, '--to', dir, '--json'], { cwd: tmp.path })).json<{ snapshot: string }>();
    const snap = path.join(dir, manifest.snapshot);
    fs.rmSync(path.join(dir, `${path.basename(snap, '.db')}.manifest.json`));
    const r = await cli(['restore', '--db', db, '--from', snap, '--skip-verify'], { cwd: tmp.path });
    assert.strictEqual(r.code, 0, r.stderr);
    assert.ok(r.stdout.includes('Restored'));
  });

  it('test_restore_bad_sha256_errors', async () => {
    seedMemory(db, 'ns', 't', 'c');
    const dir = tmp.join('backups-x6');
    const manifest = (await cli(['backup', '--db', db, '--to', dir, '--json'], { cwd: tmp.path })).json<Record<string, unknown>>();
    const manifestPath = path.join(dir, `${path.basename(manifest.snapshot as string, '.db')}.manifest.json`);
    const bad = { ...JSON.parse(fs.readFileSync(manifestPath, 'utf8')), sha256: '0'.repeat(64) };
    fs.writeFileSync(manifestPath, JSON.stringify(bad));
    const r = await cli(['restore', '--db', db, '--from', path.join(dir, manifest.snapshot as string)], { cwd: tmp.path });
    assert.notStrictEqual(r.code, 0);
    assert.ok(r.stderr.includes('sha256 mismatch'), r.stderr);
  });

  it('test_backup_retention_prunes_old_snapshots (without the 1 s sleeps: same-second names)', async () => {
    seedMemory(db, 'ns', 't', 'c');
    const dir = tmp.join('backups-x7');
    for (let i = 0; i < 3; i++) {
      const r = await cli(['backup', '--db', db, '--to', dir, '--keep', '1', '--json'], { cwd: tmp.path });
      assert.strictEqual(r.code, 0, r.stderr);
    }
    assert.strictEqual(snapshots(dir).length, 1, 'retention should keep exactly 1 snapshot');
    // The reference's database never changes between its backups; ours would just say
    // "unchanged". Change it each time so retention really has something to prune.
    let prunedTotal = 0;
    for (let i = 0; i < 3; i++) {
      seedMemory(db, 'ns', `t${i}`, 'c');
      const r = await cli(['backup', '--db', db, '--to', dir, '--keep', '1', '--json'], { cwd: tmp.path });
      const v = r.json<{ status: string; pruned?: string[] }>();
      assert.strictEqual(v.status, 'created');
      prunedTotal += v.pruned?.length ?? 0;
    }
    assert.strictEqual(snapshots(dir).length, 1);
    assert.strictEqual(manifests(dir).length, 1, 'manifests go with their snapshots');
    assert.strictEqual(prunedTotal, 3);
  });
});

describe('backup: what we promise beyond the reference', () => {
  const tmp = useTempDir();
  let db: string;
  let dir: string;
  beforeEach(() => {
    db = tmp.join('memories.db');
    dir = tmp.join('backups');
  });

  it('writes a manifest with the six CLI fields (and their types) plus ours, all true of the file', async () => {
    createAiMemoryDb(db, { memories: 120, leaveWalCommits: 10 });
    const r = await runBackup({ dbPath: db, backupDir: dir });
    assert.strictEqual(r.status, 'created');
    const text = fs.readFileSync(r.manifestPath, 'utf8');
    const m = JSON.parse(text) as Record<string, unknown>;
    assert.deepStrictEqual(Object.keys(m).slice(0, 6), ['snapshot', 'sha256', 'bytes', 'source_db', 'version', 'created_at']);
    assert.ok(text.startsWith('{\n  "snapshot": '), 'pretty-printed like serde_json::to_string_pretty');
    assert.strictEqual(m.snapshot, path.basename(r.snapshotPath));
    assert.strictEqual(m.sha256, sha(r.snapshotPath));
    assert.strictEqual(m.bytes, fs.statSync(r.snapshotPath).size);
    assert.strictEqual(m.source_db, db);
    assert.match(m.created_at as string, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00$/);
    assert.strictEqual(m.integrity, 'ok');
    assert.strictEqual(m.check, 'quick');
    assert.ok((m.wal_frames as number) > 0, 'the un-checkpointed WAL was merged');
    const native = nativeChecks(r.snapshotPath);
    assert.strictEqual(native.integrity, 'ok');
    assert.strictEqual(native.fts, 'ok');
    assert.strictEqual(m.memories, 120);
    assert.strictEqual(native.memories, 120, 'the 10 transactions that were only in the WAL are in the snapshot');
    assert.strictEqual(m.schema_version, 28);
    assert.strictEqual(m.pages, native.pageCount);
    assert.match(path.basename(r.snapshotPath), /^ai-memory-\d{4}-\d\d-\d\dT\d{6}Z\.db$/);
  });

  it('gives a second backup in the same second a distinct name that sorts after the first', async () => {
    seedMemory(db, 'ns', 'a', '1');
    const fixed = new Date('2026-11-24T10:34:56.789Z');
    const names: string[] = [];
    for (let i = 0; i < 3; i++) {
      seedMemory(db, 'ns', `n${i}`, String(i));
      const r = await runBackup({ dbPath: db, backupDir: dir, now: () => fixed });
      assert.strictEqual(r.status, 'created');
      names.push(path.basename(r.snapshotPath));
    }
    assert.deepStrictEqual(names, ['ai-memory-2026-11-24T103456Z.db', 'ai-memory-2026-11-24T103456Z_2.db', 'ai-memory-2026-11-24T103456Z_3.db']);
    assert.deepStrictEqual([...names].sort(), names, 'byte-wise order is creation order');
    const parsed = names.map((n) => ({ name: n, ...parseSnapshotName(n)! }));
    assert.deepStrictEqual(parsed.sort(compareNewestFirst).map((p) => p.name), [...names].reverse(), 'newest first by (time, sequence)');
    assert.strictEqual(manifests(dir).length, 3);

    // Copied back into a backup folder (pull from a mirror, materialize of archived ones), they
    // keep that order in their file times, by which ai-memory's restore picks the newest.
    const mirror = tmp.join('mirror');
    const pulled = tmp.join('pulled');
    fs.mkdirSync(mirror);
    const push = await cli(['push', '--to', dir, '--remote', mirror], { cwd: tmp.path });
    assert.strictEqual(push.code, 0, push.stderr);
    const pull = await cli(['pull', '--remote', mirror, '--to', pulled, '--all'], { cwd: tmp.path });
    assert.strictEqual(pull.code, 0, pull.stderr);
    const times = (d: string) => names.map((n) => fs.statSync(path.join(d, n)).mtimeMs);
    const strictlyRising = (t: number[]) => t.every((x, i) => i === 0 || x > t[i - 1]);
    assert.ok(strictlyRising(times(pulled)), `pulled file times ${times(pulled).join(', ')} are not in name order`);
    const arch = await cli(['prune', '--to', dir, '--db', db, '--keep', '3', '--plain', '1'], { cwd: tmp.path }); // the two older archived
    assert.strictEqual(arch.code, 0, arch.stderr);
    const out = tmp.join('materialized');
    const archived = names.slice(0, 2);
    for (const n of archived) {
      const m = await cli(['materialize', '--from', path.join(dir, n), '--out', `${out}/`], { cwd: tmp.path });
      assert.strictEqual(m.code, 0, m.stderr);
    }
    const outTimes = archived.map((n) => fs.statSync(path.join(out, n)).mtimeMs);
    assert.ok(strictlyRising(outTimes), `materialized file times ${outTimes.join(', ')} are not in name order`);
  });

  it('skips an identical snapshot: keeps the old one and says "unchanged since"', async () => {
    seedMemory(db, 'ns', 'a', '1');
    const first = await runBackup({ dbPath: db, backupDir: dir });
    const again = await cli(['backup', '--db', db, '--to', dir], { cwd: tmp.path });
    assert.strictEqual(again.code, 0, again.stderr);
    assert.match(again.stdout, new RegExp(`^Unchanged since ${first.manifest.created_at.replace(/[.+]/g, '\\$&')}`));
    const json = (await cli(['backup', '--db', db, '--to', dir, '--json'], { cwd: tmp.path })).json<Record<string, unknown>>();
    assert.strictEqual(json.status, 'unchanged');
    assert.strictEqual(json.unchanged_since, first.manifest.created_at);
    assert.strictEqual(json.snapshot, first.manifest.snapshot);
    assert.deepStrictEqual(snapshots(dir), [first.manifest.snapshot]);
    assert.deepStrictEqual(fs.readdirSync(dir).filter((n) => n.includes('.tmp')), [], 'no temp file left');
  });

  it('right after a restore of an older snapshot, the next backup is "unchanged since" that snapshot, not a duplicate (issue 15 #12)', async () => {
    seedMemory(db, 'ns', 'a', '1');
    const older = await runBackup({ dbPath: db, backupDir: dir });
    seedMemory(db, 'ns', 'b', '2');
    const newer = await runBackup({ dbPath: db, backupDir: dir, now: () => new Date(Date.now() + 2_000) });
    assert.strictEqual(newer.status, 'created');
    await runRestore({ dbPath: db, from: older.snapshotPath });
    const r = await cli(['backup', '--db', db, '--to', dir, '--json'], { cwd: tmp.path });
    assert.strictEqual(r.code, 0, r.stderr);
    const j = r.json<Record<string, unknown>>();
    assert.strictEqual(j.status, 'unchanged');
    assert.strictEqual(j.snapshot, older.manifest.snapshot);
    assert.strictEqual(j.unchanged_since, older.manifest.created_at);
    assert.deepStrictEqual(snapshots(dir), [older.manifest.snapshot, newer.manifest.snapshot].sort(), 'no byte-identical copy of the restored snapshot');
    const text = await cli(['backup', '--db', db, '--to', dir], { cwd: tmp.path });
    assert.match(text.stdout, new RegExp(`identical to the snapshot ${older.manifest.snapshot.replace(/\./g, '\\.')}`));
  });

  it('does not trust a rotted newest snapshot as "identical": it re-hashes it and writes a new one', async () => {
    seedMemory(db, 'ns', 'a', '1');
    const first = await runBackup({ dbPath: db, backupDir: dir });
    const bytes = fs.readFileSync(first.snapshotPath);
    bytes[bytes.length - 10] ^= 0xff; // bit rot; the manifest still carries the old hash
    fs.writeFileSync(first.snapshotPath, bytes);
    const r = await runBackup({ dbPath: db, backupDir: dir });
    assert.strictEqual(r.status, 'created');
    assert.strictEqual(snapshots(dir).length, 2);
  });

  it('names a snapshot by when it reads the database, after waiting for the folder: runs that waited get names in the order of what they read', async () => {
    createAiMemoryDb(db);
    let clock = Date.parse('2026-11-20T10:00:00Z');
    fs.mkdirSync(dir);
    const lock = await acquireFolderLock(dir, { purpose: 'backup' });
    let done = false;
    const waiting = runBackup({ dbPath: db, backupDir: dir, now: () => new Date(clock) }).finally(() => (done = true));
    await new Promise((res) => setTimeout(res, 400)); // it waits for the lock meanwhile
    assert.ok(!done, 'the backup waits for the folder');
    clock += 5 * 60_000; // another run read the database meanwhile, then released the folder
    await lock.release();
    const r = await waiting;
    assert.strictEqual(path.basename(r.snapshotPath), 'ai-memory-2026-11-20T100500Z.db');
  });

  it('keeps the newest N by the time in the name, not by mtime, and deletes only snapshot+manifest pairs', async () => {
    const t0 = Date.parse('2026-11-20T00:00:00Z');
    const made: string[] = [];
    for (let i = 0; i < 5; i++) {
      seedMemory(db, 'ns', `m${i}`, 'x');
      const r = await runBackup({ dbPath: db, backupDir: dir, keep: 0, now: () => new Date(t0 + i * 3600_000) });
      made.push(path.basename(r.snapshotPath));
    }
    // A sync tool rewrote the mtimes in reverse: the oldest name now has the newest mtime.
    made.forEach((n, i) => {
      const t = new Date(Date.now() - i * 86400_000);
      fs.utimesSync(path.join(dir, n), t, t);
    });
    const foreign = ['ai-memory-notes.db', 'ai-memory-2026-11-01T000000Z.db.bak', 'notes.txt', 'ai-memory-2019-01-01T000000Z.manifest.json'];
    for (const f of foreign) fs.writeFileSync(path.join(dir, f), 'not ours');
    const { pruned } = await pruneSnapshots(dir, 2, new Set(), { dbPath: fs.realpathSync(db) });
    assert.deepStrictEqual(pruned.sort(), made.slice(0, 3).sort());
    assert.deepStrictEqual(snapshots(dir).filter((n) => n !== 'ai-memory-notes.db'), made.slice(3).sort());
    for (const f of foreign) assert.ok(fs.existsSync(path.join(dir, f)), `${f} untouched`);
    assert.deepStrictEqual(manifests(dir).filter((n) => !n.startsWith('ai-memory-2019')), made.slice(3).map((n) => n.replace(/\.db$/, '.manifest.json')).sort());
  });

  it('--keep 0 keeps everything; retention never deletes a pinned snapshot (a restore is reading it)', async () => {
    const t0 = Date.parse('2026-11-20T00:00:00Z');
    const made: string[] = [];
    for (let i = 0; i < 4; i++) {
      seedMemory(db, 'ns', `m${i}`, 'x');
      made.push(path.basename((await runBackup({ dbPath: db, backupDir: dir, keep: 0, now: () => new Date(t0 + i * 1000) })).snapshotPath));
    }
    assert.strictEqual(snapshots(dir).length, 4);
    const unpin = await pinSnapshot(dir, made[0]);
    const { pruned, warnings } = await pruneSnapshots(dir, 1, new Set(), { dbPath: fs.realpathSync(db) });
    assert.deepStrictEqual(pruned.sort(), [made[1], made[2]].sort());
    assert.ok(fs.existsSync(path.join(dir, made[0])), 'the pinned oldest snapshot survived');
    assert.ok(warnings.some((w) => w.includes(made[0])));
    await unpin();
    assert.deepStrictEqual((await pruneSnapshots(dir, 1, new Set(), { dbPath: fs.realpathSync(db) })).pruned, [made[0]]);
  });

  it('refuses clearly and creates nothing: missing database, a folder, not a database, empty file', async () => {
    const e1 = await rejectsCode(runBackup({ dbPath: tmp.join('nope.db'), backupDir: dir }), 'DB_NOT_FOUND');
    assert.ok(e1.hint, 'says what to do');
    assert.ok(!fs.existsSync(tmp.join('nope.db')), 'no database was created (reference defect 6)');
    assert.ok(!fs.existsSync(dir), 'no backup folder was created either');
    fs.mkdirSync(tmp.join('folder.db'));
    await rejectsCode(runBackup({ dbPath: tmp.join('folder.db'), backupDir: dir }), 'DB_IS_DIRECTORY');
    fs.writeFileSync(tmp.join('readme.db'), '# not a database\n'.repeat(64));
    await rejectsCode(runBackup({ dbPath: tmp.join('readme.db'), backupDir: dir }), 'NOT_A_DATABASE');
    fs.writeFileSync(tmp.join('empty.db'), '');
    await rejectsCode(runBackup({ dbPath: tmp.join('empty.db'), backupDir: dir }), 'DB_EMPTY');
    const r = await cli(['backup', '--db', tmp.join('nope.db'), '--to', dir], { cwd: tmp.path });
    assert.strictEqual(r.code, 1);
    assert.match(r.stderr, /^error: Database not found: .*nope\.db\n {2}Check the path/);
  });

  it('refuses a backup folder that is a file, or inside a file', async () => {
    seedMemory(db, 'ns', 'a', '1');
    fs.writeFileSync(tmp.join('file'), 'x');
    await rejectsCode(runBackup({ dbPath: db, backupDir: tmp.join('file') }), 'TARGET_NOT_DIRECTORY');
    await rejectsCode(runBackup({ dbPath: db, backupDir: tmp.join('file', 'sub') }), 'TARGET_NOT_DIRECTORY');
    assert.strictEqual(fs.readFileSync(tmp.join('file'), 'utf8'), 'x');
  });

  it('copies an encrypted (SQLCipher-like) database consistently, marks it unverified and says so', async () => {
    fs.writeFileSync(db, randomBytes(32768));
    const r = await cli(['backup', '--db', db, '--to', dir], { cwd: tmp.path });
    assert.strictEqual(r.code, 0, r.stderr);
    assert.match(r.stdout, /NOT verified: the database is encrypted/);
    assert.match(r.stderr, /encrypted/);
    const snap = path.join(dir, snapshots(dir)[0]);
    assert.ok(fs.readFileSync(snap).equals(fs.readFileSync(db)));
    const m = JSON.parse(fs.readFileSync(snap.replace(/\.db$/, '.manifest.json'), 'utf8'));
    assert.strictEqual(m.integrity, 'encrypted');
    assert.strictEqual(m.check, 'off');
  });

  it('--verify off skips the check and records it; --verify full runs integrity_check', async () => {
    seedMemory(db, 'ns', 'a', '1');
    const off = await runBackup({ dbPath: db, backupDir: dir, verify: 'off' });
    assert.strictEqual(off.manifest.integrity, 'unverified');
    assert.strictEqual(off.manifest.check, 'off');
    seedMemory(db, 'ns', 'b', '2');
    const full = await runBackup({ dbPath: db, backupDir: dir, verify: 'full' });
    assert.strictEqual(full.manifest.integrity, 'ok');
    assert.strictEqual(full.manifest.check, 'full');
  });

  it('`verify --verify full` says integrity_check, not quick_check (issue 15 #4)', async () => {
    seedMemory(db, 'ns', 'a', '1');
    const r = await runBackup({ dbPath: db, backupDir: dir });
    const full = await cli(['verify', '--from', r.snapshotPath, '--verify', 'full'], { cwd: tmp.path });
    assert.strictEqual(full.code, 0, full.stderr);
    assert.match(full.stdout, /integrity_check ok/);
    assert.doesNotMatch(full.stdout, /quick_check/);
    const quick = await cli(['verify', '--from', r.snapshotPath], { cwd: tmp.path });
    assert.match(quick.stdout, /quick_check ok/);
    const j = (await cli(['verify', '--from', r.snapshotPath, '--verify', 'full', '--json'], { cwd: tmp.path })).json<{ snapshots: { check: string }[] }>();
    assert.strictEqual(j.snapshots[0].check, 'full');
  });

  it('cleans leftovers of a crashed run: temp files of dead processes and our manifests without a snapshot', async () => {
    seedMemory(db, 'ns', 'a', '1');
    fs.mkdirSync(dir);
    // A pid that cannot be running (beyond pid_max), on this machine.
    const deadTemp = tempPath(dir, 'snapshot').replace(`-${process.pid}-`, '-4194999-');
    fs.writeFileSync(deadTemp, 'half a snapshot');
    const orphan = path.join(dir, 'ai-memory-2026-01-01T000000Z.manifest.json');
    fs.writeFileSync(orphan, JSON.stringify({ snapshot: 'ai-memory-2026-01-01T000000Z.db', tool: 'ai-memory-backup 0.1.0' }));
    const theirs = path.join(dir, 'ai-memory-2026-01-02T000000Z.manifest.json');
    fs.writeFileSync(theirs, JSON.stringify({ snapshot: 'ai-memory-2026-01-02T000000Z.db', version: '0.7.0' }));
    const r = await runBackup({ dbPath: db, backupDir: dir });
    assert.ok(!fs.existsSync(deadTemp), 'temp removed');
    assert.ok(!fs.existsSync(orphan), 'our orphan manifest removed');
    assert.ok(fs.existsSync(theirs), "a manifest that is not ours is left alone");
    assert.deepStrictEqual(r.cleaned.sort(), [path.basename(deadTemp), path.basename(orphan)].sort());
  });

  it('a usage error exits 2 and says how to get help', async () => {
    const huge = '99999999999999999999999'; // past what a number holds exactly: "1e+23 last" before
    for (const args of [['backup', '--keep', 'many'], ['backup', '--keep', huge], ['prune', '--keep-daily', huge], ['backup', '--plain', huge], ['backup', '--verify', 'sometimes'], ['list', '--plain', '3'], ['frobnicate'], ['backup', '--bogus']]) {
      const r = await cli(args, { cwd: tmp.path });
      assert.strictEqual(r.code, 2, args.join(' '));
      assert.match(r.stderr, /--help/);
    }
  });
});

describe('EarlyWriteback: a failed early fdatasync is never swallowed', () => {
  const tmp = useTempDir();
  const isEinval = (e: NodeJS.ErrnoException) => e.code === 'EINVAL';

  /** An EarlyWriteback (threshold 1024) on a FIFO: fdatasync(2) fails there with EINVAL, a real failing handle, no mock. */
  async function onFifo(name: string, use: (wb: EarlyWriteback) => Promise<void>): Promise<void> {
    const fifo = tmp.join(name);
    execFileSync('mkfifo', [fifo]);
    const fh = await fs.promises.open(fifo, fs.constants.O_RDWR);
    try {
      await use(new EarlyWriteback(fh, 1024));
    } finally {
      await fh.close();
    }
  }

  it('throws it from settle(), before the final fsync could report success for lost data', async function () {
    if (process.platform === 'win32') this.skip(); // no FIFOs
    await onFifo('fifo', async (wb) => {
      wb.wrote(100);
      await wb.settle(); // below the threshold: nothing started, nothing to report
      wb.wrote(2048);
      await assert.rejects(wb.settle(), isEinval);
      await assert.rejects(wb.settle(), isEinval); // still, on every call
    });
  });

  it('owes no fdatasync for bytes a truncation dropped (a read retried from the start), and counts again from there', async function () {
    if (process.platform === 'win32') this.skip(); // no FIFOs
    // Every fdatasync fails there: settle() resolving means none was started.
    await onFifo('fifo2', async (wb) => {
      wb.wrote(900);
      wb.truncated();
      wb.wrote(900); // 1800 written in all, but only 900 since the truncation
      await wb.settle();
      wb.wrote(200); // 1100 since the truncation
      await assert.rejects(wb.settle(), isEinval);
    });
  });
});

describe('regularFile: what is read is the descriptor that was checked', () => {
  const tmp = useTempDir();
  const compiled = path.join(__dirname, '..', '..', 'src', 'core', 'common', 'regularFile.js');
  /** Runs `call` on `target` in a child (a blocked open must fail the test, not hang it): the error message, or 'opened'. */
  const attempt = (call: string, target: string): string => {
    const script = `const r = require(${JSON.stringify(compiled)});
      Promise.resolve().then(() => r.${call}(${JSON.stringify(target)}, { noFollow: process.argv[1] === 'nofollow' }))
        .then(() => console.log('opened'), (e) => console.log(e.message)).finally(() => process.exit(0));`;
    return execFileSync(process.execPath, ['-e', script, 'nofollow'], { timeout: 10_000, encoding: 'utf8' }).trim();
  };

  it('a FIFO never blocks the open (async and sync); a link is refused when links are not followed', function () {
    if (process.platform === 'win32') this.skip(); // no FIFOs
    const fifo = tmp.join('swapped-in.idx');
    execFileSync('mkfifo', [fifo]);
    assert.match(attempt('openRegular', fifo), /is a FIFO \(named pipe\), not a regular file/);
    assert.match(attempt('openRegularSync', fifo), /is a FIFO \(named pipe\), not a regular file/);
    const real = tmp.join('real.idx');
    fs.writeFileSync(real, 'x');
    const link = tmp.join('link.idx');
    fs.symlinkSync(real, link);
    assert.match(attempt('openRegular', link), /is a symbolic link, not a regular file/);
    assert.match(attempt('openRegularSync', link), /is a symbolic link, not a regular file/);
    assert.strictEqual(attempt('openRegular', real), 'opened');
  });
});

describe('backup: an image that is mostly WAL is streamed, not held', () => {
  const tmp = useTempDir();

  it('a small main file with a large WAL (a server whose checkpoints are held off): peak RSS well under the image', function () {
    if (process.platform !== 'linux') this.skip(); // /proc/self/status
    this.timeout(240_000);
    const db = tmp.join('ai-memory.db');
    const n = openNative(db);
    try {
      n.pragma('journal_mode = WAL');
      n.pragma('wal_autocheckpoint = 0');
      n.exec('CREATE TABLE t(b BLOB)');
      const ins = n.prepare('INSERT INTO t VALUES (?)');
      const blob = randomBytes(64 << 10);
      n.transaction(() => {
        for (let i = 0; i < 6400; i++) ins.run(blob); // ~420 MB, all of it in the WAL
      })();
      const main = fs.statSync(db).size;
      const wal = fs.statSync(`${db}-wal`).size;
      assert.ok(main < 1 << 20 && wal > 400e6, `main ${main}, wal ${wal}`);
      // The backup in a child (its own peak RSS), while this connection keeps the WAL as it is.
      const script = `
        const { runBackup } = require(${JSON.stringify(path.resolve(__dirname, '..', '..', 'src', 'core', 'ops', 'backup.js'))});
        runBackup({ dbPath: ${JSON.stringify(db)}, backupDir: ${JSON.stringify(tmp.join('backups'))}, verify: 'quick' }).then((r) => {
          const hwm = parseInt(require('fs').readFileSync('/proc/self/status', 'utf8').match(/VmHWM:\\s+(\\d+)/)[1], 10);
          console.log(JSON.stringify({ bytes: r.manifest.bytes, integrity: r.manifest.integrity, hwm }));
        }, (e) => { console.error(e.stack); process.exit(3); });`;
      const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 200_000 });
      assert.strictEqual(r.status, 0, r.stderr);
      const o = JSON.parse(r.stdout.trim()) as { bytes: number; integrity: string; hwm: number };
      assert.ok(o.bytes > 400e6, `the snapshot holds the WAL pages: ${o.bytes}`);
      assert.strictEqual(o.integrity, 'ok');
      assert.ok(o.hwm * 1024 < o.bytes * 0.4, `peak RSS ${Math.round(o.hwm / 1024)} MB for a ${Math.round(o.bytes / 1e6)} MB image`);
    } finally {
      n.close();
    }
  });
});

describe('backup: what we make of a database is no more readable than its folders let it be', () => {
  const tmp = useTempDir();
  const mode = (p: string) => fs.statSync(p).mode & 0o777;

  it('a 0644 database in a 0700 folder: a backup folder elsewhere, its files, a mirror copy, an export and a materialized snapshot are private; in a 0755 folder they stay 0644', async function () {
    if (process.platform === 'win32') this.skip();
    const old = process.umask(0o022);
    try {
      fs.chmodSync(tmp.path, 0o755); // the test's own folder is searchable: only `home` decides
      const home = tmp.join('home');
      fs.mkdirSync(home, { mode: 0o700 });
      fs.chmodSync(home, 0o700);
      const db = path.join(home, 'ai-memory.db');
      createAiMemoryDb(db, { memories: 20 });
      fs.chmodSync(db, 0o644);
      const out = tmp.join('elsewhere', 'backups');
      const made: string[] = [];
      for (let i = 0; i < 3; i++) {
        seedMemory(db, 'ns', `m${i}`, `content ${i}`);
        const r = await runBackup({ dbPath: db, backupDir: out, keep: 0, plain: 1, now: () => new Date(Date.UTC(2026, 0, 1, 10, i)) });
        made.push(path.basename(r.snapshotPath));
      }
      assert.strictEqual(mode(out), 0o700, 'the backup folder we created');
      for (const n of fs.readdirSync(out)) {
        if (n === '.ai-memory-archive') continue;
        assert.strictEqual(mode(path.join(out, n)) & 0o077, 0, `${n} is ${mode(path.join(out, n)).toString(8)}`);
      }
      // A mirror: a snapshot that is 0644 (made before, or by ai-memory) inside a folder only its owner can enter.
      const inside = path.join(home, 'backups');
      const r = await runBackup({ dbPath: db, backupDir: inside, keep: 0 });
      fs.chmodSync(r.snapshotPath, 0o644);
      fs.chmodSync(r.manifestPath, 0o644);
      const nas = tmp.join('nas');
      fs.mkdirSync(nas, { mode: 0o755 });
      assert.strictEqual((await pushToTarget({ localDir: inside, target: new MirrorTarget(nas), keep: 48 })).status, 'copied');
      for (const n of fs.readdirSync(nas)) assert.strictEqual(mode(path.join(nas, n)) & 0o077, 0, `mirror ${n} is ${mode(path.join(nas, n)).toString(8)}`);
      // An export of that snapshot, and that snapshot archived (its pages and manifest 0644 as it was) then materialized, written outside.
      const x = await extract({ from: r.snapshotPath, select: { namespace: 'ns' }, out: tmp.join('export.json') });
      assert.strictEqual(mode(x.out as string) & 0o077, 0, 'the export');
      for (let i = 0; i < 2; i++) {
        seedMemory(db, 'ns', `later ${i}`, `content ${i}`);
        await runBackup({ dbPath: db, backupDir: inside, keep: 0, plain: 1, now: () => new Date(Date.now() + (i + 1) * 60_000) });
      }
      assert.ok(!fs.existsSync(r.snapshotPath), 'archived');
      const m = await runMaterialize({ from: r.snapshotPath, out: tmp.join('plain') + path.sep });
      assert.strictEqual(mode(m.out) & 0o077, 0, 'the materialized snapshot');
      assert.strictEqual(mode(m.manifest) & 0o077, 0, 'its manifest');
      // The same database in a folder others can enter: its mode is what it is.
      fs.chmodSync(home, 0o755);
      const open = tmp.join('open');
      const r2 = await runBackup({ dbPath: db, backupDir: open, keep: 0 });
      assert.strictEqual(mode(open), 0o755);
      assert.strictEqual(mode(r2.snapshotPath), 0o644);
    } finally {
      process.umask(old);
    }
  });

  it("a 0640 database of another group: copies made where new files get our group are 0600; of its own group (a set-group-ID folder) 0640; a restore gives the group bits only to that group", async function () {
    // Changing a file's group to one we are not a member of takes root (CI runs as root).
    if (process.platform === 'win32' || process.getuid?.() !== 0) this.skip();
    const other = 54321; // no one's group: members of ours must not read what only its members could
    const ours = process.getegid?.() as number;
    const old = process.umask(0o022);
    try {
      fs.chmodSync(tmp.path, 0o755);
      const db = tmp.join('db', 'ai-memory.db');
      fs.mkdirSync(path.dirname(db), { mode: 0o755 });
      createAiMemoryDb(db, { memories: 10 });
      fs.chownSync(db, 0, other);
      fs.chmodSync(db, 0o640);
      const gidMode = (p: string) => `${(fs.statSync(p).gid === other ? 'theirs' : fs.statSync(p).gid === ours ? 'ours' : fs.statSync(p).gid)} ${mode(p).toString(8)}`;
      // A backup folder whose new files are of our group.
      const plainDir = tmp.join('backups');
      const r = await runBackup({ dbPath: db, backupDir: plainDir, keep: 0 });
      assert.strictEqual(gidMode(r.snapshotPath), 'ours 600');
      assert.strictEqual(gidMode(r.manifestPath), 'ours 600');
      assert.strictEqual(mode(plainDir), 0o700);
      // A set-group-ID folder of the database's group: its files get that group, and may keep its bits.
      const shared = tmp.join('shared');
      fs.mkdirSync(shared);
      fs.chownSync(shared, 0, other);
      fs.chmodSync(shared, 0o2750);
      const s = await runBackup({ dbPath: db, backupDir: path.join(shared, 'backups'), keep: 0 });
      assert.strictEqual(gidMode(s.snapshotPath), 'theirs 640');
      // A mirror of that snapshot into a folder of ours: 0600.
      const nas = tmp.join('nas');
      fs.mkdirSync(nas, { mode: 0o755 });
      assert.strictEqual((await pushToTarget({ localDir: path.join(shared, 'backups'), target: new MirrorTarget(nas), keep: 48 })).status, 'copied');
      for (const n of fs.readdirSync(nas)) assert.strictEqual(gidMode(path.join(nas, n)), 'ours 600', `mirror ${n}`);
      // Restore of that 0640 snapshot into a new database in a folder of ours: 0600; over the
      // existing 0640 database of the other group (as root, the group is given back): 0640 theirs.
      const fresh = tmp.join('new', 'ai-memory.db');
      await runRestore({ dbPath: fresh, from: s.snapshotPath, createIfMissing: true });
      assert.strictEqual(gidMode(fresh), 'ours 600');
      await runRestore({ dbPath: db, from: s.snapshotPath });
      assert.strictEqual(gidMode(db), 'theirs 640');
    } finally {
      process.umask(old);
    }
  });
});
