/**
 * `restore`: never lose what was there. The reference's corruption case (a leftover -wal
 * replayed into the restored file), every refusal with "nothing changed" proven by
 * hashing the whole folder, in-use detection with a real native process, dry runs, and
 * interop with ai-memory's own implementation in both directions.
 */
import * as assert from 'assert';
import { spawn, spawnSync } from 'child_process';
import { createHash, randomBytes } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { runBackup } from '../../src/core/ops/backup';
import { BackupError } from '../../src/core/common/errors';
import { runRestore } from '../../src/core/ops/restore';
import { runPrune } from '../../src/core/ops/prune';
import { newestOfThis, restoreOrder } from '../../src/core/store/ownership';
import { inspectSnapshot } from '../../src/core/ops/memory';
import { createAiMemoryDb, nativeChecks, readMemories, seedMemory } from '../support/aiMemoryDb';
import { cli } from '../support/cliRun';
import { trackChild } from '../support/procs';
import { referenceBackup, referenceRestore } from '../support/referenceCli';
import { openNative } from '../support/sqlite';
import { useTempDir } from '../support/tmp';
import { cliBundle } from '../support/reliability';

const sha = (f: string) => createHash('sha256').update(fs.readFileSync(f)).digest('hex');

/** Every file under `dir` with its hash: "nothing changed" means this is equal before and after. */
function fingerprint(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isSymbolicLink()) out[path.relative(dir, p)] = `-> ${fs.readlinkSync(p)}`;
      else out[path.relative(dir, p)] = sha(p);
    }
  };
  walk(dir);
  return out;
}

async function refused(dir: string, p: Promise<unknown>, code: string, re?: RegExp): Promise<void> {
  const before = fingerprint(dir);
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof BackupError, `a BackupError, got ${String(e)}`);
    assert.strictEqual(e.code, code, e.message);
    if (re) assert.match(e.message, re);
    assert.match(`${e.message} ${e.state ?? ''}`, /nothing was changed/i, 'a refusal says that nothing was changed');
    return true;
  });
  assert.deepStrictEqual(fingerprint(dir), before, 'nothing changed');
}

const titles = (db: string) => readMemories(db).map((m) => m.title).sort();

describe('restore', () => {
  const tmp = useTempDir();
  let db: string;
  let dir: string;
  beforeEach(() => {
    db = tmp.join('ai-memory.db');
    dir = tmp.join('backups');
  });

  it('a manifest naming its database by a relative path (ai-memory\'s CLI) is a guess: never pruned on it, and restore prefers snapshots known to be this database\'s', async () => {
    // Two projects back up into one folder; the other one with ai-memory's CLI, run in its own
    // folder: its manifest says "ai-memory.db", which read from beside the folder is this database.
    const proj = tmp.join('proj');
    fs.mkdirSync(proj);
    const projDb = path.join(proj, 'ai-memory.db');
    createAiMemoryDb(db, { memories: 10 });
    createAiMemoryDb(projDb, { memories: 40, seed: 5 });
    const t0 = Date.parse('2026-11-20T10:00:00Z');
    const mine = await runBackup({ dbPath: db, backupDir: dir, keep: 0, now: () => new Date(t0) });
    const theirs = referenceBackup(projDb, dir, 0);
    const theirsManifest = path.join(dir, String(theirs.snapshot).replace(/\.db$/, '.manifest.json'));
    fs.writeFileSync(theirsManifest, JSON.stringify({ ...theirs, source_db: 'ai-memory.db' }, null, 2));
    // Restore: this database's own snapshot, though the guess is newer; the guess is named.
    const r = await runRestore({ dbPath: db, from: dir, dryRun: true });
    assert.strictEqual(r.from, mine.snapshotPath);
    assert.ok(r.warnings.some((w) => w.includes(String(theirs.snapshot)) && w.includes('relative')), r.warnings.join('\n'));
    // Retention: a backup keeping 1 prunes nothing on the guess.
    seedMemory(db, 'ns', 'later', 'x');
    const b = await runBackup({ dbPath: db, backupDir: dir, keep: 1 });
    assert.deepStrictEqual(b.pruned.map((p) => path.basename(p)), [path.basename(mine.snapshotPath)]);
    assert.ok(fs.existsSync(path.join(dir, String(theirs.snapshot))), 'the other project\'s snapshot is kept');
    // prune says which it leaves alone, and why.
    const pr = await runPrune({ backupDir: dir, dbPath: db, policy: { last: 1 }, dryRun: true });
    assert.ok(pr.warnings.some((w) => /^1 snapshot is left alone: .*relative path/.test(w)), pr.warnings.join('\n'));
    // list says why it stays, as prune decides (never "the next backup deletes it").
    const listed = await cli(['list', '--to', dir, '--db', db, '--keep-last', '1', '--json'], { cwd: tmp.path });
    const row = listed.json<{ name: string; retention?: string; source_guessed?: boolean }[]>().find((x) => x.name === theirs.snapshot);
    assert.strictEqual(row?.source_guessed, true);
    assert.match(row?.retention ?? '', /relative path/);
    // Named with --from, it restores, saying whose it is taken to be.
    const named = await runRestore({ dbPath: db, from: path.join(dir, String(theirs.snapshot)), dryRun: true });
    assert.ok(named.warnings.some((w) => w.includes('"ai-memory.db"')), named.warnings.join('\n'));
  });

  it('the newest to restore (the CLI\'s folder restore and the extension\'s Restore Latest): restorable, properly named, known to be this database\'s first', () => {
    type E = { name: string; unsafe: boolean; timeSource: 'name' | 'mtime'; owner: 'this' | 'other' | 'gone' | 'unknown'; guessed?: boolean };
    const e = (name: string, o: Partial<E> = {}): E => ({ name, unsafe: false, timeSource: 'name', owner: 'this', ...o });
    const listed = [e('link-out', { unsafe: true }), e('conflict-copy', { timeSource: 'mtime' }), e('other', { owner: 'other' }), e('guess', { guessed: true }), e('known'), e('older')];
    assert.strictEqual(newestOfThis(restoreOrder(listed))?.name, 'known');
    // Whose it is weighs first: a known one, even oddly named, before a guess.
    assert.strictEqual(newestOfThis(restoreOrder(listed.filter((x) => x.name !== 'known' && x.name !== 'older')))?.name, 'conflict-copy');
    assert.strictEqual(newestOfThis(restoreOrder(listed.filter((x) => !['known', 'older', 'conflict-copy'].includes(x.name))))?.name, 'guess');
    assert.strictEqual(newestOfThis(restoreOrder([e('conflict-copy', { timeSource: 'mtime' }), e('old')]))?.name, 'old');
    assert.strictEqual(newestOfThis(restoreOrder([e('link-out', { unsafe: true })]))?.name, 'link-out', 'nothing else: the list as it is (restore says why)');
  });

  it('a newer snapshot passed over for want of a usable manifest is named, never passed in silence', async () => {
    createAiMemoryDb(db, { memories: 20 });
    const older = await runBackup({ dbPath: db, backupDir: dir, now: () => new Date('2026-11-20T10:00:00Z') });
    seedMemory(db, 'ns', 'newer', 'x');
    const newer = await runBackup({ dbPath: db, backupDir: dir, now: () => new Date('2026-11-20T11:00:00Z') });
    fs.rmSync(newer.manifestPath); // a sync tool delivered the file before its manifest
    const r = await runRestore({ dbPath: db, from: dir, dryRun: true });
    assert.strictEqual(r.from, older.snapshotPath);
    assert.ok(r.warnings.some((w) => w.includes(path.basename(newer.snapshotPath)) && /manifest missing/.test(w)), r.warnings.join('\n'));
  });

  it('the newest of a folder (with and without --latest) is this database\'s, properly named and restorable: not another database\'s, a conflict copy or a link out of the folder', async () => {
    const t0 = Date.parse('2026-11-20T10:00:00Z');
    createAiMemoryDb(db, { memories: 30 });
    const mine = await runBackup({ dbPath: db, backupDir: dir, now: () => new Date(t0) });
    // Another database shares the folder, with a newer snapshot.
    const other = tmp.join('other.db');
    createAiMemoryDb(other, { memories: 50, seed: 3 });
    await runBackup({ dbPath: other, backupDir: dir, now: () => new Date(t0 + 3600_000) });
    // A sync tool's conflict copy of my snapshot, copied in now (newest by file time), and a
    // link with the newest name leading out of the folder.
    fs.copyFileSync(mine.snapshotPath, path.join(dir, 'ai-memory-2026-11-20T100000Z.sync-conflict-20261130-AB12.db'));
    fs.symlinkSync(other, path.join(dir, 'ai-memory-2026-11-20T130000Z.db'));
    for (const latest of [false, true]) {
      const r = await runRestore({ dbPath: db, from: dir, latest, dryRun: true });
      assert.strictEqual(path.basename(r.from), path.basename(mine.snapshotPath), `latest: ${latest}`);
    }
  });

  it('over a database whose server died leaving a -wal: the restored file holds exactly the snapshot (the reference replays the old WAL)', async () => {
    // State 1, backed up.
    createAiMemoryDb(db, { memories: 60 });
    const snap = await runBackup({ dbPath: db, backupDir: dir });
    const expected = titles(snap.snapshotPath);
    // The server goes on, then dies: 25 committed transactions are only in its -wal.
    fs.rmSync(db);
    createAiMemoryDb(db, { memories: 90, seed: 7, leaveWalCommits: 25 });
    assert.ok(fs.statSync(`${db}-wal`).size > 32);
    const live = titles(db);
    assert.notDeepStrictEqual(live, expected);

    // ai-memory's own restore, on a copy of the same files: the old -wal is replayed into the restored file.
    fs.mkdirSync(tmp.join('ref'));
    for (const s of ['', '-wal']) fs.copyFileSync(db + s, tmp.join('ref', `ai-memory.db${s}`));
    referenceRestore(tmp.join('ref', 'ai-memory.db'), snap.snapshotPath);
    let refState: string;
    try {
      const t = titles(tmp.join('ref', 'ai-memory.db'));
      refState = JSON.stringify(t) === JSON.stringify(expected) ? 'snapshot' : 'mixed';
    } catch (e) {
      refState = `unreadable: ${e instanceof Error ? e.message : String(e)}`;
    }
    assert.notStrictEqual(refState, 'snapshot', 'the reference really is broken here (else this test proves nothing)');

    // Ours.
    const r = await runRestore({ dbPath: db, from: dir });
    assert.strictEqual(r.status, 'restored');
    assert.ok(!fs.existsSync(`${db}-wal`) && !fs.existsSync(`${db}-shm`), 'no old -wal/-shm beside the restored file');
    assert.deepStrictEqual(titles(db), expected, 'exactly the snapshot');
    assert.strictEqual(sha(db), snap.manifest.sha256);
    const native = nativeChecks(db);
    assert.strictEqual(native.integrity, 'ok');
    assert.strictEqual(native.fts, 'ok');
    // The kept copy is complete: main file + its -wal, with the 25 late transactions.
    assert.ok(r.previous && fs.existsSync(r.previous) && fs.existsSync(`${r.previous}-wal`));
    assert.match(path.basename(r.previous), /^ai-memory\.pre-restore-\d{4}-\d\d-\d\dT\d{6}Z\.db$/);
    assert.deepStrictEqual(titles(r.previous), live, 'the pre-restore copy opens with everything that was there');
  });

  it('a kept pre-restore copy with its -wal: restoring the file alone is refused (SOURCE_HAS_WAL), reading it takes the WAL, and its snapshot brings everything back', async () => {
    createAiMemoryDb(db, { memories: 40 });
    const snap = await runBackup({ dbPath: db, backupDir: dir });
    fs.rmSync(db);
    createAiMemoryDb(db, { memories: 70, seed: 9, leaveWalCommits: 20 });
    const live = titles(db);
    const r = await runRestore({ dbPath: db, from: snap.snapshotPath });
    const copy = r.previous as string;
    assert.ok(fs.existsSync(`${copy}-wal`), 'the copy has its -wal with the late transactions');
    // The file alone is an older state: a byte copy of it would silently drop 20 transactions.
    await refused(tmp.path, runRestore({ dbPath: db, from: copy }), 'SOURCE_HAS_WAL', /-wal holding committed transactions/);
    // Open / Compare read it as SQLite would: with its WAL.
    const seen = await inspectSnapshot({ from: copy, query: { limit: 1 } });
    assert.strictEqual(seen.overview.facts?.memories, live.length);
    // Undo that restore: a snapshot of the copy (read consistently), restored.
    const undo = await runBackup({ dbPath: copy, backupDir: tmp.join('undo') });
    await runRestore({ dbPath: db, from: undo.snapshotPath });
    assert.deepStrictEqual(titles(db), live, 'exactly what was there before the restore');
  });

  it('restores into a place with no database yet, and moves a stray -wal out of the way first', async () => {
    seedMemory(db, 'ns', 'a', '1');
    const snap = await runBackup({ dbPath: db, backupDir: dir });
    fs.rmSync(db);
    fs.writeFileSync(`${db}-wal`, randomBytes(5000)); // a stray log with nothing to do with the snapshot
    const r = await runRestore({ dbPath: db, from: snap.snapshotPath, createIfMissing: true });
    assert.strictEqual(r.previous, undefined);
    assert.ok(!fs.existsSync(`${db}-wal`));
    assert.strictEqual(sha(db), snap.manifest.sha256);
    assert.ok(fs.readdirSync(tmp.path).some((n) => n.endsWith('.db-wal') && n.includes('pre-restore')), 'the stray -wal was kept aside, not deleted');
  });

  it('into a folder that does not exist yet: made, and written once there; a refused restore leaves no folder behind', async () => {
    seedMemory(db, 'ns', 'a', '1');
    const snap = await runBackup({ dbPath: db, backupDir: dir });
    const target = tmp.join('new-machine', 'home', 'ai-memory.db');
    const messages: string[] = [];
    const r = await runRestore({ dbPath: target, from: snap.snapshotPath, createIfMissing: true, onProgress: (p) => p.message && messages.push(p.message) });
    assert.strictEqual(r.status, 'restored');
    assert.strictEqual(sha(target), snap.manifest.sha256);
    assert.ok(!messages.some((m) => /writing the snapshot beside/.test(m)), `one write (the checked copy is the placed file): ${messages.join(' | ')}`);
    assert.deepStrictEqual(fs.readdirSync(path.dirname(target)).filter((n) => n.endsWith('.tmp')), []);

    // Refused (the snapshot tampered): the folders it would have made are not left behind.
    const b = fs.readFileSync(snap.snapshotPath);
    b[5000] ^= 1;
    fs.writeFileSync(snap.snapshotPath, b);
    const other = tmp.join('elsewhere', 'deeper', 'ai-memory.db');
    await refused(tmp.path, runRestore({ dbPath: other, from: snap.snapshotPath, createIfMissing: true }), 'SHA_MISMATCH');
    assert.ok(!fs.existsSync(tmp.join('elsewhere')), 'no folder left by a refused restore');
    // A dry run makes none.
    b[5000] ^= 1;
    fs.writeFileSync(snap.snapshotPath, b);
    const plan = await runRestore({ dbPath: other, from: snap.snapshotPath, createIfMissing: true, dryRun: true });
    assert.strictEqual(plan.status, 'dry-run');
    assert.ok(!fs.existsSync(tmp.join('elsewhere')), 'a dry run makes no folder');
  });

  it('folders it makes are no wider than the snapshot; a path it cannot make leaves none of them, and says nothing was changed', async function () {
    seedMemory(db, 'ns', 'a', '1');
    fs.chmodSync(db, 0o600);
    const snap = await runBackup({ dbPath: db, backupDir: dir });
    const target = tmp.join('m1', 'sub', 'ai-memory.db');
    await runRestore({ dbPath: target, from: snap.snapshotPath, createIfMissing: true });
    for (const d of [tmp.join('m1'), tmp.join('m1', 'sub')]) assert.strictEqual(fs.statSync(d).mode & 0o077, 0, `${d} is not readable by others (the snapshot is 0600)`);
    assert.strictEqual(fs.statSync(target).mode & 0o777, 0o600);
    // A level that cannot be made (a name too long), under levels that could: none is left.
    const tooLong = tmp.join('n2', 'n3', 'x'.repeat(300), 'ai-memory.db');
    await assert.rejects(runRestore({ dbPath: tooLong, from: snap.snapshotPath, createIfMissing: true }), (e: BackupError) => /Nothing was changed/.test(`${e.message} ${e.state ?? ''}`));
    assert.ok(!fs.existsSync(tmp.join('n2')), 'the levels made before the failure are removed');
    // A file on the way: the same error for a dry run as for the real thing, nothing made.
    fs.writeFileSync(tmp.join('afile'), 'x');
    for (const dryRun of [true, false]) {
      await assert.rejects(runRestore({ dbPath: tmp.join('afile', 'sub', 'ai-memory.db'), from: snap.snapshotPath, createIfMissing: true, dryRun }), (e: BackupError) => e.code === 'TARGET_NOT_DIRECTORY' && /part of that path \(.*afile\) is a file/.test(e.message));
    }
    // A path ending in a separator names a folder: refused, nothing made.
    await assert.rejects(runRestore({ dbPath: tmp.join('ts', 'a') + path.sep, from: snap.snapshotPath, createIfMissing: true }), (e: BackupError) => e.code === 'DB_IS_DIRECTORY');
    assert.ok(!fs.existsSync(tmp.join('ts')));
  });

  it('a database that appears at the path during the restore is never replaced: refused, it stays; a sidecar that appears is kept aside', async () => {
    seedMemory(db, 'ns', 'a', '1');
    const snap = await runBackup({ dbPath: db, backupDir: dir });
    const target = tmp.join('fresh', 'ai-memory.db');
    // While the snapshot is checked, another process makes (and closes) its own database there.
    const theirs = tmp.join('theirs.db');
    seedMemory(theirs, 'other', 'theirs', 'made during the restore');
    const appear = (file: string, from: string) => (p: { phase: string; message?: string }) => {
      if (p.phase === 'hashing' && p.message?.startsWith('checking ') && !fs.existsSync(file)) fs.copyFileSync(from, file);
    };
    await assert.rejects(runRestore({ dbPath: target, from: snap.snapshotPath, createIfMissing: true, onProgress: appear(target, theirs) }), (e: BackupError) => e.code === 'IN_USE' && /appeared during the restore/.test(e.message));
    assert.strictEqual(sha(target), sha(theirs), 'their database is untouched');
    assert.deepStrictEqual(fs.readdirSync(tmp.join('fresh')), ['ai-memory.db'], 'no temp left');
    // Over an existing database: a -wal that appears meanwhile is kept aside with it, never deleted unkept.
    const wal = `${db}-wal`;
    assert.ok(!fs.existsSync(wal));
    const stray = tmp.join('stray-wal');
    fs.writeFileSync(stray, randomBytes(4096));
    const before = sha(db);
    const r = await runRestore({ dbPath: db, from: snap.snapshotPath, onProgress: appear(wal, stray) });
    assert.strictEqual(sha(db), snap.manifest.sha256);
    assert.strictEqual(sha(r.previous as string), before);
    assert.strictEqual(sha(`${r.previous as string}-wal`), sha(stray), 'the -wal that appeared is kept beside the previous database');
  });

  it('`..` after a symbolic link is taken from the link\'s target, as SQLite and the kernel take it', async () => {
    seedMemory(db, 'ns', 'a', '1');
    const snap = await runBackup({ dbPath: db, backupDir: dir });
    fs.mkdirSync(tmp.join('phys', 'el', 'deep'), { recursive: true });
    fs.mkdirSync(tmp.join('lexi'));
    fs.symlinkSync(tmp.join('phys', 'el', 'deep'), tmp.join('lexi', 'lk'));
    const given = `${tmp.join('lexi', 'lk')}/../new/ai-memory.db`;
    const r = await runRestore({ dbPath: given, from: snap.snapshotPath, createIfMissing: true });
    assert.strictEqual(r.to, path.join(fs.realpathSync(tmp.join('phys', 'el')), 'new', 'ai-memory.db'));
    assert.strictEqual(sha(r.to), snap.manifest.sha256);
    assert.ok(!fs.existsSync(tmp.join('lexi', 'new')), 'nothing beside the link');
    // The same through the CLI, where --db is expanded (~, relative paths) before the engine sees it.
    const viaCli = await cli(['restore', '--db', 'lexi/lk/../cli/ai-memory.db', '--from', snap.snapshotPath, '--json'], { cwd: tmp.path });
    assert.strictEqual(viaCli.code, 0, viaCli.stderr);
    assert.strictEqual(sha(path.join(fs.realpathSync(tmp.join('phys', 'el')), 'cli', 'ai-memory.db')), snap.manifest.sha256);
    assert.ok(!fs.existsSync(tmp.join('lexi', 'cli')));
    const slash = await cli(['restore', '--db', 'folder-like/', '--from', snap.snapshotPath], { cwd: tmp.path });
    assert.strictEqual(slash.code, 1, slash.stderr);
    assert.match(slash.stderr, /ends with a path separator: it names a folder/);
    assert.ok(!fs.existsSync(tmp.join('folder-like')));
  });

  it('refuses while another process has the database open, naming it; --force restores anyway', async function () {
    this.timeout(60_000);
    createAiMemoryDb(db, { memories: 20 });
    const snap = await runBackup({ dbPath: db, backupDir: dir });
    seedMemory(db, 'ns', 'later', 'x');
    // A real native connection in another process, like the ai-memory server.
    const holder = spawn(process.execPath, ['-e', `
      const D = require(${JSON.stringify(require.resolve('better-sqlite3'))});
      const db = new D(${JSON.stringify(db)}); db.pragma('journal_mode = WAL');
      db.prepare('select count(*) from memories').get();
      globalThis.keep = db; process.stdout.write('ready\\n'); setInterval(() => {}, 1000);`], { stdio: ['ignore', 'pipe', 'inherit'] });
    trackChild(holder, 'db holder');
    try {
      await new Promise<void>((res, rej) => {
        holder.stdout?.once('data', () => res());
        holder.once('exit', (c) => rej(new Error(`holder exited ${c}`)));
      });
      await refused(tmp.path, runRestore({ dbPath: db, from: snap.snapshotPath }), 'IN_USE', new RegExp(`pid ${holder.pid}`));
      const r = await cli(['restore', '--db', db, '--from', snap.snapshotPath], { cwd: tmp.path });
      assert.strictEqual(r.code, 1);
      assert.match(r.stderr, /in use by pid \d+ \(.*node/);
      assert.match(r.stderr, /Stop your agent/);
      // --dry-run on a database in use: the whole plan, then what the restore would refuse, exit 1 (issue 15 #14).
      const before = fingerprint(tmp.path);
      const dry = await cli(['restore', '--db', db, '--from', snap.snapshotPath, '--dry-run'], { cwd: tmp.path });
      assert.strictEqual(dry.code, 1, dry.stderr);
      assert.match(dry.stdout, /^Dry run: nothing was changed\./);
      assert.match(dry.stdout, /checked: sha256 and size match/);
      assert.match(dry.stdout, /ai-memory\.db → .*ai-memory\.pre-restore-.*\.db/);
      assert.match(dry.stdout, new RegExp(`would refuse: in use by pid ${holder.pid} \\(`));
      const dryJson = await cli(['restore', '--db', db, '--from', snap.snapshotPath, '--dry-run', '--json'], { cwd: tmp.path });
      assert.strictEqual(dryJson.code, 1);
      const dj = dryJson.json<{ status: string; would_refuse: { code: string; error: string }; plan: { keep: unknown[] } }>();
      assert.strictEqual(dj.status, 'dry-run');
      assert.strictEqual(dj.would_refuse.code, 'IN_USE');
      assert.ok(dj.plan.keep.length >= 1);
      assert.deepStrictEqual(fingerprint(tmp.path), before, 'the dry run changed nothing');
      const forced = await runRestore({ dbPath: db, from: snap.snapshotPath, force: true });
      assert.strictEqual(forced.status, 'restored');
      assert.ok(forced.warnings.some((w) => w.includes('--force')));
    } finally {
      holder.kill('SIGKILL');
    }
  });

  it('--force-in-use (VS Code\'s Restore Anyway) overrides only "in use": another program\'s database held open by it is still refused; ai-memory\'s restores', async function () {
    this.timeout(60_000);
    createAiMemoryDb(db, { memories: 5, embeddingDim: 0, seed: 4 });
    const snap = await runBackup({ dbPath: db, backupDir: dir });
    const places = tmp.join('places.sqlite');
    const n = openNative(places);
    n.exec("CREATE TABLE moz_places (id INTEGER PRIMARY KEY, url TEXT); INSERT INTO moz_places (url) VALUES ('https://example.com/');");
    n.close();
    // Both held open by a running program, as a browser holds its history and the server its database.
    const holder = spawn(process.execPath, ['-e', `
      const D = require(${JSON.stringify(require.resolve('better-sqlite3'))});
      const a = new D(${JSON.stringify(db)}); a.prepare('select count(*) from memories').get();
      const b = new D(${JSON.stringify(places)}); b.prepare('select count(*) from moz_places').get();
      globalThis.keep = [a, b]; process.stdout.write('ready\\n'); setInterval(() => {}, 1000);`], { stdio: ['ignore', 'pipe', 'inherit'] });
    trackChild(holder, 'db holder');
    try {
      await new Promise<void>((res, rej) => {
        holder.stdout?.once('data', () => res());
        holder.once('exit', (c) => rej(new Error(`holder exited ${c}`)));
      });
      const before = fingerprint(tmp.path);
      const other = await cli(['restore', '--db', places, '--from', snap.snapshotPath, '--force-in-use', '--json'], { cwd: tmp.path });
      assert.strictEqual(other.code, 1, other.stdout);
      assert.match(other.stderr, /NOT_AI_MEMORY/);
      assert.deepStrictEqual(fingerprint(tmp.path), before, 'nothing changed');
      const ours = await cli(['restore', '--db', db, '--from', snap.snapshotPath, '--force-in-use', '--json'], { cwd: tmp.path });
      assert.strictEqual(ours.code, 0, ours.stderr);
      assert.strictEqual(sha(db), snap.manifest.sha256);
      assert.match(ours.stderr, /restoring while the database is open by .*--force-in-use/);
    } finally {
      holder.kill('SIGKILL');
    }
  });

  it('a -wal left by a crashed server is not "in use"', async () => {
    createAiMemoryDb(db, { memories: 30, leaveWalCommits: 5 });
    const snap = await runBackup({ dbPath: db, backupDir: dir });
    const r = await runRestore({ dbPath: db, from: snap.snapshotPath });
    assert.strictEqual(r.status, 'restored');
  });

  it('--dry-run prints the plan and changes nothing', async () => {
    createAiMemoryDb(db, { memories: 30, leaveWalCommits: 5 });
    await runBackup({ dbPath: db, backupDir: dir });
    const before = fingerprint(tmp.path);
    const r = await cli(['restore', '--db', db, '--from', dir, '--dry-run'], { cwd: tmp.path });
    assert.strictEqual(r.code, 0, r.stderr);
    assert.match(r.stdout, /^Dry run: nothing was changed\./);
    assert.match(r.stdout, /checked: sha256 and size match/);
    assert.match(r.stdout, /ai-memory\.db-wal → .*ai-memory\.pre-restore-.*\.db-wal/);
    assert.match(r.stdout, /holds committed transactions/);
    assert.deepStrictEqual(fingerprint(tmp.path), before);
    const j = await cli(['restore', '--db', db, '--from', dir, '--dry-run', '--json'], { cwd: tmp.path });
    const plan = j.json<{ status: string; plan: { keep: unknown[]; consolidate: boolean } }>();
    assert.strictEqual(plan.status, 'dry-run');
    const present = ['', '-wal', '-shm'].filter((s) => fs.existsSync(db + s)).length;
    assert.ok(present >= 2);
    assert.strictEqual(plan.plan.keep.length, present, 'the database and each sidecar that exists');
    assert.strictEqual(plan.plan.consolidate, true);
    assert.deepStrictEqual(fingerprint(tmp.path), before);
  });

  describe('refuses bad snapshots, changing nothing', () => {
    let snapPath: string;
    let manifestPath: string;
    let manifest: Record<string, unknown>;
    beforeEach(async () => {
      seedMemory(db, 'ns', 'a', 'content');
      const r = await runBackup({ dbPath: db, backupDir: dir });
      snapPath = r.snapshotPath;
      manifestPath = r.manifestPath;
      manifest = JSON.parse(fs.readFileSync(manifestPath, 'utf8'));
      seedMemory(db, 'ns', 'b', 'the live database differs from the snapshot');
    });
    const writeManifest = (m: unknown) => fs.writeFileSync(manifestPath, typeof m === 'string' ? m : JSON.stringify(m, null, 2));

    it('snapshot bytes tampered', async () => {
      const b = fs.readFileSync(snapPath);
      b[5000] ^= 1;
      fs.writeFileSync(snapPath, b);
      await refused(tmp.path, runRestore({ dbPath: db, from: snapPath }), 'SHA_MISMATCH', /sha256 mismatch/);
    });
    it('manifest sha256 tampered', async () => {
      writeManifest({ ...manifest, sha256: 'f'.repeat(64) });
      await refused(tmp.path, runRestore({ dbPath: db, from: snapPath }), 'SHA_MISMATCH');
    });
    it('manifest byte count wrong', async () => {
      writeManifest({ ...manifest, bytes: (manifest.bytes as number) + 4096 });
      await refused(tmp.path, runRestore({ dbPath: db, from: snapPath }), 'SIZE_MISMATCH');
    });
    it('manifest bytes that are not UTF-8 (ai-memory reads it with read_to_string: refused), in a field it reads or one it skips', async () => {
      for (const field of ['source_db', 'host']) {
        const text = Buffer.from(JSON.stringify({ ...manifest, [field]: 'caf\u00e9' }, null, 2));
        const at = text.indexOf(Buffer.from('\u00e9', 'utf8'));
        const bad = Buffer.concat([text.subarray(0, at), Buffer.from([0xe9]), text.subarray(at + 2)]); // Latin-1 é: not UTF-8
        fs.writeFileSync(manifestPath, bad);
        // Before: read as "caf\uFFFD", and restored.
        await refused(tmp.path, runRestore({ dbPath: db, from: snapPath }), 'MANIFEST_INVALID', /is not UTF-8 text/);
        const listed = await cli(['list', '--to', path.dirname(snapPath), '--json'], { cwd: tmp.path });
        assert.strictEqual(listed.json<{ manifest: string }[]>()[0].manifest, 'invalid', listed.stdout);
      }
    });
    it('manifest missing (and --skip-verify restores anyway)', async () => {
      fs.rmSync(manifestPath);
      await refused(tmp.path, runRestore({ dbPath: db, from: snapPath }), 'MANIFEST_MISSING', /not found/);
      assert.strictEqual((await runRestore({ dbPath: db, from: snapPath, skipVerify: true })).status, 'restored');
    });
    it('manifest not JSON', async () => {
      writeManifest('{"snapshot": "ai-memory-');
      await refused(tmp.path, runRestore({ dbPath: db, from: snapPath }), 'MANIFEST_INVALID', /not valid JSON/);
    });
    it('manifest missing a field, or a field of the wrong type', async () => {
      const { version: _v, ...noVersion } = manifest;
      writeManifest(noVersion);
      await refused(tmp.path, runRestore({ dbPath: db, from: snapPath }), 'MANIFEST_INVALID', /no "version" field/);
      writeManifest({ ...manifest, bytes: String(manifest.bytes) });
      await refused(tmp.path, runRestore({ dbPath: db, from: snapPath }), 'MANIFEST_INVALID', /"bytes" should be a number/);
    });
    it('manifest naming another file', async () => {
      writeManifest({ ...manifest, snapshot: 'ai-memory-2020-01-01T000000Z.db' });
      await refused(tmp.path, runRestore({ dbPath: db, from: snapPath }), 'MANIFEST_FOREIGN', /describes/);
    });
    it('manifest naming a path outside the folder (../, absolute)', async () => {
      for (const bad of [`../${manifest.snapshot}`, path.join(tmp.path, 'x.db'), 'C:\\x.db']) {
        writeManifest({ ...manifest, snapshot: bad });
        await refused(tmp.path, runRestore({ dbPath: db, from: snapPath }), 'MANIFEST_FOREIGN', /outside its folder/);
      }
    });
    it('zero-byte snapshot', async () => {
      fs.writeFileSync(snapPath, '');
      writeManifest({ ...manifest, bytes: 0, sha256: sha(snapPath) });
      await refused(tmp.path, runRestore({ dbPath: db, from: snapPath }), 'NOT_A_DATABASE', /empty/);
    });
    it('truncated snapshot, even with a manifest that matches the truncated bytes', async () => {
      const b = fs.readFileSync(snapPath);
      fs.writeFileSync(snapPath, b.subarray(0, b.length - 4096));
      await refused(tmp.path, runRestore({ dbPath: db, from: snapPath }), 'SIZE_MISMATCH');
      writeManifest({ ...manifest, bytes: b.length - 4096, sha256: sha(snapPath) });
      await refused(tmp.path, runRestore({ dbPath: db, from: snapPath }), 'INTEGRITY_FAILED', /truncated|quick_check/);
      fs.writeFileSync(snapPath, b.subarray(0, b.length - 100));
      await refused(tmp.path, runRestore({ dbPath: db, from: snapPath, skipVerify: true }), 'INTEGRITY_FAILED', /not a whole number/);
    });
    it('a page damaged inside (same size, consistent manifest): quick_check catches it', async () => {
      const b = fs.readFileSync(snapPath);
      b.fill(0x5a, 2 * 4096 + 8, 3 * 4096); // wreck the b-tree content of page 3
      fs.writeFileSync(snapPath, b);
      writeManifest({ ...manifest, sha256: sha(snapPath) });
      await refused(tmp.path, runRestore({ dbPath: db, from: snapPath }), 'INTEGRITY_FAILED', /quick_check/);
    });
    it('not an SQLite file', async () => {
      fs.writeFileSync(snapPath, 'PK\u0003\u0004 this is a zip file, not a database'.repeat(200));
      writeManifest({ ...manifest, bytes: fs.statSync(snapPath).size, sha256: sha(snapPath) });
      await refused(tmp.path, runRestore({ dbPath: db, from: snapPath }), 'NOT_A_DATABASE', /not an SQLite database/);
    });
    it('an encrypted (SQLCipher-like) file: refused unless --skip-integrity', async () => {
      fs.writeFileSync(snapPath, randomBytes(8192));
      writeManifest({ ...manifest, bytes: 8192, sha256: sha(snapPath) });
      await refused(tmp.path, runRestore({ dbPath: db, from: snapPath }), 'UNVERIFIABLE', /encrypted/);
      const r = await runRestore({ dbPath: db, from: snapPath, skipIntegrity: true });
      assert.strictEqual(r.status, 'restored');
      assert.ok(fs.readFileSync(db).equals(fs.readFileSync(snapPath)));
    });
    it('a snapshot that is a symlink leading outside the folder', async () => {
      const outside = tmp.join('outside.db');
      fs.copyFileSync(snapPath, outside);
      fs.rmSync(snapPath);
      fs.symlinkSync(outside, snapPath);
      await refused(tmp.path, runRestore({ dbPath: db, from: snapPath }), 'UNSAFE_SNAPSHOT_PATH', /outside its folder/);
      await refused(tmp.path, runRestore({ dbPath: db, from: dir }), 'UNSAFE_SNAPSHOT_PATH');
    });
    it('a database path that is a directory', async () => {
      fs.mkdirSync(tmp.join('dir.db'));
      await refused(tmp.path, runRestore({ dbPath: tmp.join('dir.db'), from: snapPath }), 'DB_IS_DIRECTORY');
    });
    it('an empty backup folder, and a --from that does not exist', async () => {
      fs.mkdirSync(tmp.join('empty'));
      await refused(tmp.path, runRestore({ dbPath: db, from: tmp.join('empty') }), 'NO_SNAPSHOTS');
      await refused(tmp.path, runRestore({ dbPath: db, from: tmp.join('nowhere') }), 'SNAPSHOT_NOT_FOUND');
    });
  });

  it('an ai-memory snapshot over another program\'s SQLite database is refused (nothing changed); --force restores it; a snapshot of that database itself restores', async () => {
    createAiMemoryDb(db, { memories: 4, embeddingDim: 0, seed: 3 });
    const snap = await runBackup({ dbPath: db, backupDir: dir });
    // A browser's history, where a wrong --db (a workspace's MCP file, a mistyped path) leads.
    fs.mkdirSync(tmp.join('firefox'));
    const places = tmp.join('firefox', 'places.sqlite');
    const n = openNative(places);
    n.exec("CREATE TABLE moz_places (id INTEGER PRIMARY KEY, url TEXT); INSERT INTO moz_places (url) VALUES ('https://example.com/'), ('https://example.org/');");
    n.close();
    const before = fingerprint(tmp.join('firefox'));
    for (const args of [[], ['--dry-run']]) {
      const r = await cli(['restore', '--db', places, '--from', snap.snapshotPath, '--json', ...args], { cwd: tmp.path });
      assert.strictEqual(r.code, 1, `${args.join(' ')}: ${r.stdout}${r.stderr}`);
      assert.match(r.stderr, /NOT_AI_MEMORY/);
      assert.match(r.stderr, /moz_places/, 'names what the database holds');
      assert.match(r.stderr, /Nothing was changed/);
      assert.deepStrictEqual(fingerprint(tmp.join('firefox')), before, 'the database is as it was, nothing kept aside or written');
    }
    // Its own snapshot restores, as ever (the tool backs up any SQLite file).
    const own = await runBackup({ dbPath: places, backupDir: tmp.join('firefox-backups') });
    await runRestore({ dbPath: places, from: own.snapshotPath });
    // --force: restored, the replaced database kept aside.
    const forced = await cli(['restore', '--db', places, '--from', snap.snapshotPath, '--force', '--json'], { cwd: tmp.path });
    assert.strictEqual(forced.code, 0, forced.stderr);
    assert.strictEqual(sha(places), snap.manifest.sha256);
    assert.match(forced.stderr, /moz_places/, 'the warning says what was replaced');
  });

  it('another program\'s database of any size is refused (its schema read from a few pages, not copied: over 256 MiB it was replaced with a warning); an ai-memory database as large still restores', async function () {
    this.timeout(180_000);
    createAiMemoryDb(db, { memories: 4, embeddingDim: 0, seed: 3 });
    const snap = await runBackup({ dbPath: db, backupDir: dir });
    fs.mkdirSync(tmp.join('chrome'));
    const history = tmp.join('chrome', 'History');
    // 300 MiB of visits (overflow pages), in WAL mode; the last table created in the WAL and not checkpointed.
    const n = openNative(history);
    n.pragma('journal_mode = WAL');
    n.exec('CREATE TABLE urls (id INTEGER PRIMARY KEY, url TEXT); CREATE TABLE visits (id INTEGER PRIMARY KEY, url INTEGER, data BLOB);');
    n.exec('WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 300) INSERT INTO visits (url, data) SELECT x, zeroblob(1048576) FROM c;');
    n.pragma('wal_checkpoint(TRUNCATE)');
    n.pragma('wal_autocheckpoint = 0');
    n.exec('CREATE TABLE keyword_search_terms (keyword_id INTEGER, term TEXT)');
    assert.ok(fs.statSync(history).size > 300 << 20);
    assert.ok(fs.statSync(`${history}-wal`).size > 0, 'the last schema change is in the WAL only');
    try {
      const before = fingerprint(tmp.join('chrome'));
      const t0 = Date.now();
      for (const args of [[], ['--dry-run']]) {
        const r = await cli(['restore', '--db', history, '--from', snap.snapshotPath, '--json', ...args], { cwd: tmp.path });
        assert.strictEqual(r.code, 1, `${args.join(' ')}: ${r.stdout}${r.stderr}`);
        assert.match(r.stderr, /NOT_AI_MEMORY/);
        assert.match(r.stderr, /urls, visits, keyword_search_terms/, 'names what it holds, the WAL\'s table too');
      }
      console.log(`      (two refusals of a ${fs.statSync(history).size >> 20} MiB database: ${Date.now() - t0} ms)`);
      assert.deepStrictEqual(fingerprint(tmp.join('chrome')), before, 'nothing changed');
    } finally {
      n.close();
    }
    fs.rmSync(tmp.join('chrome'), { recursive: true });
    // ai-memory's own database that large (a big table beside its own): restored, schema compared.
    const big = openNative(db);
    big.exec('CREATE TABLE attachments (id INTEGER PRIMARY KEY, data BLOB); WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 300) INSERT INTO attachments (data) SELECT zeroblob(1048576) FROM c;');
    big.close();
    const r = await runRestore({ dbPath: db, from: snap.snapshotPath });
    assert.strictEqual(r.status, 'restored');
    assert.strictEqual(sha(db), snap.manifest.sha256);
  });

  it('an encrypted file (whose tables cannot be read without its key) is not replaced by a plain ai-memory snapshot unless --force: it may be another program\'s', async () => {
    createAiMemoryDb(db, { memories: 4, embeddingDim: 0, seed: 3 });
    const snap = await runBackup({ dbPath: db, backupDir: dir });
    fs.mkdirSync(tmp.join('signal'));
    const enc = tmp.join('signal', 'db.sqlite');
    fs.writeFileSync(enc, randomBytes(64 * 1024));
    const before = fingerprint(tmp.join('signal'));
    await refused(tmp.join('signal'), runRestore({ dbPath: enc, from: snap.snapshotPath }), 'NOT_AI_MEMORY', /encrypted/);
    const r = await runRestore({ dbPath: enc, from: snap.snapshotPath, force: true });
    assert.strictEqual(r.status, 'restored');
    assert.ok(r.warnings.some((w) => /encrypted/.test(w) && /--force/.test(w)), r.warnings.join('\n'));
    assert.ok(Object.keys(before).length === 1);
    // An encrypted snapshot (SQLCipher's) over an encrypted database: its owner's own restore, not refused.
    const theirs = tmp.join('signal', 'theirs.db');
    fs.writeFileSync(theirs, randomBytes(8192));
    fs.writeFileSync(enc, randomBytes(64 * 1024));
    const encSnap = await runBackup({ dbPath: theirs, backupDir: tmp.join('signal-backups') });
    const same = await runRestore({ dbPath: enc, from: encSnap.snapshotPath, skipIntegrity: true });
    assert.strictEqual(same.status, 'restored');
    assert.ok(fs.readFileSync(enc).equals(fs.readFileSync(theirs)));
  });

  it('a file that is no database at all (a wrong --db: a shell profile, a config) is refused, nothing changed; what is left of a damaged database is still replaced and kept; --force restores over the file', async () => {
    createAiMemoryDb(db, { memories: 4, embeddingDim: 0, seed: 3 });
    const snap = await runBackup({ dbPath: db, backupDir: dir });
    fs.mkdirSync(tmp.join('home'));
    const profile = tmp.join('home', '.bashrc');
    const config = tmp.join('home', 'settings.json');
    fs.writeFileSync(profile, 'export PATH="$HOME/bin:$PATH"\nalias ll="ls -l"\n');
    fs.writeFileSync(config, `{"editor": "${'x'.repeat(1024 - 14)}"}`); // exactly 1024 bytes: a whole number of 512-byte pages, but text
    assert.strictEqual(fs.statSync(config).size, 1024);
    for (const target of [profile, config]) {
      const before = fingerprint(tmp.join('home'));
      for (const args of [[], ['--dry-run']]) {
        const r = await cli(['restore', '--db', target, '--from', snap.snapshotPath, '--json', ...args], { cwd: tmp.path });
        assert.strictEqual(r.code, 1, `${target} ${args.join(' ')}: ${r.stdout}${r.stderr}`);
        assert.match(r.stderr, /NOT_AI_MEMORY/);
        assert.match(r.stderr, /not a database, nor what is left of one/);
        assert.match(r.stderr, /Nothing was changed/);
        assert.deepStrictEqual(fingerprint(tmp.join('home')), before, 'the file is as it was, nothing kept aside or written');
      }
    }
    // What a destroyed header leaves (whole pages, binary) and an empty file: damaged databases, which a restore is for.
    const wrecked = tmp.join('home', 'wrecked.db');
    fs.copyFileSync(db, wrecked);
    const fd = fs.openSync(wrecked, 'r+');
    fs.writeSync(fd, Buffer.from('2026-12-01T01:00:00Z INFO a log line written to the wrong descriptor\n'), 0, undefined, 0);
    fs.closeSync(fd);
    const empty = tmp.join('home', 'empty.db');
    fs.writeFileSync(empty, '');
    for (const target of [wrecked, empty]) {
      const was = fs.readFileSync(target);
      const r = await runRestore({ dbPath: target, from: snap.snapshotPath });
      assert.strictEqual(sha(target), snap.manifest.sha256);
      assert.match(r.warnings.join('\n'), /the current database is damaged/);
      assert.ok(r.previous && fs.readFileSync(r.previous).equals(was), 'kept aside as it was');
    }
    // --force: the file replaced, kept aside, said so.
    const text = fs.readFileSync(profile);
    const forced = await cli(['restore', '--db', profile, '--from', snap.snapshotPath, '--force', '--json'], { cwd: tmp.path });
    assert.strictEqual(forced.code, 0, forced.stderr);
    assert.strictEqual(sha(profile), snap.manifest.sha256);
    assert.match(forced.stderr, /was not a database .*--force/);
    const kept = fs.readdirSync(tmp.join('home')).filter((n) => n.startsWith('.bashrc.pre-restore-'));
    assert.strictEqual(kept.length, 1);
    assert.ok(fs.readFileSync(tmp.join('home', kept[0])).equals(text));
  });

  it('follows a symlinked database path and replaces the real file', async () => {
    fs.mkdirSync(tmp.join('real'));
    const real = tmp.join('real', 'memories.db');
    seedMemory(real, 'ns', 'a', '1');
    fs.symlinkSync(real, db);
    const snap = await runBackup({ dbPath: db, backupDir: dir });
    seedMemory(real, 'ns', 'b', '2');
    await runRestore({ dbPath: db, from: snap.snapshotPath });
    assert.ok(fs.lstatSync(db).isSymbolicLink(), 'the link is still a link');
    assert.strictEqual(sha(real), snap.manifest.sha256);
  });

  it('two restores in the same second keep both previous databases', async () => {
    seedMemory(db, 'ns', 'a', '1');
    const snap = await runBackup({ dbPath: db, backupDir: dir });
    const now = () => new Date('2026-11-24T12:00:00Z');
    const a = await runRestore({ dbPath: db, from: snap.snapshotPath, now });
    seedMemory(db, 'ns', 'b', '2');
    const b = await runRestore({ dbPath: db, from: snap.snapshotPath, now });
    assert.notStrictEqual(a.previous, b.previous);
    assert.match(b.previous ?? '', /pre-restore-2026-11-24T120000Z_2\.db$/);
    assert.ok(fs.existsSync(a.previous ?? '') && fs.existsSync(b.previous ?? ''));
  });

  it('two restores of one database at once (a double click, two windows, a window reloaded mid-restore): one restores, the other is refused at once and changes nothing', async () => {
    createAiMemoryDb(db, { memories: 200 });
    const a = await runBackup({ dbPath: db, backupDir: dir, now: () => new Date('2026-11-24T10:00:00Z') });
    seedMemory(db, 'ns', 'in b', 'only in snapshot b');
    const b = await runBackup({ dbPath: db, backupDir: dir, now: () => new Date('2026-11-24T11:00:00Z') });
    seedMemory(db, 'ns', 'live', 'only in the live database');
    const live = titles(db);
    const results = await Promise.allSettled([runRestore({ dbPath: db, from: a.snapshotPath }), runRestore({ dbPath: db, from: b.snapshotPath })]);
    const done = results.filter((r): r is PromiseFulfilledResult<Awaited<ReturnType<typeof runRestore>>> => r.status === 'fulfilled');
    const refusedOnes = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    // Before: both "restored", one over the other; the user was told of two restores and had the second's.
    assert.strictEqual(done.length, 1, `exactly one restore ran: ${results.map((r) => (r.status === 'fulfilled' ? `restored ${path.basename(r.value.from)}` : String(r.reason))).join(' | ')}`);
    const e = refusedOnes[0].reason as BackupError;
    assert.strictEqual(e.code, 'LOCKED', e.message);
    assert.match(e.message, /Another restore of .* is running \(restore by pid \d+ on this machine/);
    assert.match(`${e.message} ${e.state ?? ''}`, /nothing was changed/i);
    // The database is the snapshot that one restored; what it held before is kept, once.
    assert.strictEqual(sha(db), (done[0].value.from === a.snapshotPath ? a : b).manifest.sha256);
    const kept = fs.readdirSync(tmp.path).filter((n) => /^ai-memory\.pre-restore-.*\.db$/.test(n));
    assert.deepStrictEqual(kept, [path.basename(done[0].value.previous ?? '')]);
    assert.deepStrictEqual(titles(path.join(tmp.path, kept[0])), live);
    assert.deepStrictEqual(fs.readdirSync(tmp.path).filter((n) => /lock/.test(n)), [], 'the lock is gone');
  });

  it('a restore killed mid-way (its window closed, its host gone) leaves a lock that the next restore takes over', async function () {
    this.timeout(60_000);
    createAiMemoryDb(db, { memories: 50 });
    const snap = await runBackup({ dbPath: db, backupDir: dir });
    seedMemory(db, 'ns', 'live', 'only in the live database');
    const killed = spawnSync(process.execPath, [await cliBundle(), 'restore', '--db', db, '--from', snap.snapshotPath], { encoding: 'utf8', env: { ...process.env, HOME: tmp.path, AI_MEMORY_BACKUP_CRASH_AT: 'restore:after-keep' } });
    assert.strictEqual(killed.signal, 'SIGKILL', killed.stderr);
    const r = await runRestore({ dbPath: db, from: snap.snapshotPath });
    assert.strictEqual(r.status, 'restored');
    assert.strictEqual(sha(db), snap.manifest.sha256);
    assert.deepStrictEqual(fs.readdirSync(tmp.path).filter((n) => /lock/.test(n)), [], 'the dead restore\'s lock is gone');
  });

  it('a killed restore\'s lock whose pid the system gave to another process is taken over, not read as a restore still running', async function () {
    this.timeout(60_000);
    createAiMemoryDb(db, { memories: 50 });
    const snap = await runBackup({ dbPath: db, backupDir: dir });
    const killed = spawnSync(process.execPath, [await cliBundle(), 'restore', '--db', db, '--from', snap.snapshotPath], { encoding: 'utf8', env: { ...process.env, HOME: tmp.path, AI_MEMORY_BACKUP_CRASH_AT: 'restore:after-pin' } });
    assert.strictEqual(killed.signal, 'SIGKILL', killed.stderr);
    const lockPath = tmp.join('.ai-memory.db.ai-memory-restore.lock');
    const left = JSON.parse(fs.readFileSync(lockPath, 'utf8')) as { pid: number };
    assert.strictEqual(left.pid, killed.pid);
    // The pid reused: the system gives it to another process (here a sleep, started after the restore died).
    const other = spawn('sleep', ['60'], { stdio: 'ignore' });
    trackChild(other, 'the process that got the pid');
    try {
      fs.writeFileSync(lockPath, JSON.stringify({ ...left, pid: other.pid }));
      // Before: refused 'Another restore of … is running (restore by pid <the sleep's>…)' for as long as that process ran.
      const r = await runRestore({ dbPath: db, from: snap.snapshotPath });
      assert.strictEqual(r.status, 'restored');
      assert.ok(!fs.existsSync(lockPath), 'the dead restore\'s lock is gone');
    } finally {
      other.kill('SIGKILL');
    }
  });

  it('a restore running in a sandbox or container of this machine (another pid namespace) holds its lock: another restore is refused', async function () {
    this.timeout(120_000);
    if (spawnSync('unshare', ['-pf', '--mount-proc', 'true']).status !== 0) this.skip(); // needs the right to make a pid namespace
    createAiMemoryDb(db, { memories: 50 });
    const pad = spawnSync('sqlite3', [db, 'CREATE TABLE pad(b); WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x<60) INSERT INTO pad SELECT randomblob(1000000) FROM c;'], { encoding: 'utf8' });
    assert.strictEqual(pad.status, 0, pad.stderr);
    const snap = await runBackup({ dbPath: db, backupDir: dir });
    const sandboxed = spawn('unshare', ['-pf', '--mount-proc', process.execPath, await cliBundle(), 'restore', '--db', db, '--from', snap.snapshotPath], { env: { ...process.env, HOME: tmp.path }, stdio: ['ignore', 'pipe', 'pipe'] });
    trackChild(sandboxed, 'sandboxed restore');
    let said = '';
    sandboxed.stdout.on('data', (d: Buffer) => (said += d.toString()));
    sandboxed.stderr.on('data', (d: Buffer) => (said += d.toString()));
    const exited = new Promise<number | null>((r) => sandboxed.on('exit', (code) => r(code)));
    const lockPath = tmp.join('.ai-memory.db.ai-memory-restore.lock');
    const t0 = Date.now();
    while (!fs.existsSync(lockPath)) {
      assert.ok(Date.now() - t0 < 60_000 && sandboxed.exitCode === null, `no lock: ${said}`);
      await new Promise((r) => setTimeout(r, 1));
    }
    // The restore itself, pid 1 in its namespace: this side knows it by unshare's child.
    const inner = Number(fs.readFileSync(`/proc/${sandboxed.pid}/task/${sandboxed.pid}/children`, 'utf8').trim().split(' ')[0]);
    process.kill(inner, 'SIGSTOP');
    try {
      assert.strictEqual((JSON.parse(fs.readFileSync(lockPath, 'utf8')) as { pid: number }).pid, 1);
      // Pid 1 here is another process (init, started long before): the lock is not taken over for that.
      await refused(tmp.path, runRestore({ dbPath: db, from: snap.snapshotPath }), 'LOCKED', /Another restore of .* is running \(restore by pid 1 /);
    } finally {
      process.kill(inner, 'SIGCONT');
    }
    assert.strictEqual(await exited, 0, said);
    assert.strictEqual(sha(db), snap.manifest.sha256);
    assert.ok(!fs.existsSync(lockPath), 'no lock left');
  });

  it('a restore to a folder that does not exist yet: once it has made the folder, a second restore of that database is still refused, and a database of that name in the folder above is not', async function () {
    this.timeout(120_000);
    createAiMemoryDb(db, { memories: 50 });
    // ~60 MB, so the first restore is still copying when it is stopped.
    const pad = spawnSync('sqlite3', [db, 'CREATE TABLE pad(b); WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x<60) INSERT INTO pad SELECT randomblob(1000000) FROM c;'], { encoding: 'utf8' });
    assert.strictEqual(pad.status, 0, pad.stderr);
    const snap = await runBackup({ dbPath: db, backupDir: dir });
    const target = tmp.join('new', 'sub', 'ai-memory.db');
    const first = spawn(process.execPath, [await cliBundle(), 'restore', '--db', target, '--from', snap.snapshotPath], { env: { ...process.env, HOME: tmp.path }, stdio: ['ignore', 'pipe', 'pipe'] });
    trackChild(first, 'first restore');
    let said = '';
    first.stdout.on('data', (d: Buffer) => (said += d.toString()));
    first.stderr.on('data', (d: Buffer) => (said += d.toString()));
    const exited = new Promise<number | null>((r) => first.on('exit', (code) => r(code)));
    const t0 = Date.now();
    while (!fs.existsSync(path.dirname(target))) {
      assert.ok(Date.now() - t0 < 60_000 && first.exitCode === null, `the first restore made no folder: ${said}`);
      await new Promise((r) => setTimeout(r, 1));
    }
    process.kill(first.pid as number, 'SIGSTOP');
    try {
      // Before: the first held its lock in tmp/ (the folder that existed) under the bare name; this
      // one found the database's folder made, took the free lock there and ran alongside.
      await refused(tmp.path, runRestore({ dbPath: target, from: snap.snapshotPath, createIfMissing: true }), 'LOCKED', /Another restore of .*new\/sub\/ai-memory\.db is running \(restore by pid \d+/);
      // Another database of that name, in the folder above: its own restore (before: refused as "Another restore of …").
      const other = await runRestore({ dbPath: db, from: snap.snapshotPath });
      assert.strictEqual(other.status, 'restored');
    } finally {
      process.kill(first.pid as number, 'SIGCONT');
    }
    assert.strictEqual(await exited, 0, said);
    assert.strictEqual(sha(target), snap.manifest.sha256);
    const locks: string[] = [];
    const walk = (d: string) => fs.readdirSync(d, { withFileTypes: true }).forEach((e) => (e.isDirectory() ? walk(path.join(d, e.name)) : /lock/.test(e.name) && locks.push(path.join(d, e.name))));
    walk(tmp.path);
    assert.deepStrictEqual(locks, [], 'no lock left');
  });

  describe('interop with ai-memory\'s own backup/restore', () => {
    it('a snapshot made by ai-memory restores with ours (folder and file)', async () => {
      createAiMemoryDb(db, { memories: 40 });
      const m = referenceBackup(db, dir);
      const expected = titles(path.join(dir, m.snapshot as string));
      seedMemory(db, 'ns', 'after', 'x');
      const r = await cli(['restore', '--db', db, '--from', dir, '--json'], { cwd: tmp.path });
      assert.strictEqual(r.code, 0, r.stderr);
      assert.strictEqual(r.json<{ status: string }>().status, 'restored');
      assert.deepStrictEqual(titles(db), expected);
      const listed = await cli(['list', '--to', dir, '--json'], { cwd: tmp.path });
      assert.strictEqual(listed.json<{ manifest: string }[]>()[0].manifest, 'ok');
    });

    it('a snapshot made by ours restores with ai-memory\'s restore (manifest accepted, sha256 matches)', async () => {
      createAiMemoryDb(db, { memories: 40, leaveWalCommits: 8 });
      const ours = await runBackup({ dbPath: db, backupDir: dir });
      const expected = titles(ours.snapshotPath);
      fs.mkdirSync(tmp.join('elsewhere'));
      const target = tmp.join('elsewhere', 'ai-memory.db');
      const r = referenceRestore(target, dir);
      assert.strictEqual(r.status, 'restored');
      assert.deepStrictEqual(titles(target), expected);
      assert.strictEqual(nativeChecks(target).integrity, 'ok');
    });

    it('a folder holding both tools\' snapshots: newest by the time in the name, whatever the mtimes', async () => {
      seedMemory(db, 'ns', 'a', '1');
      const m = referenceBackup(db, dir);
      seedMemory(db, 'ns', 'b', '2');
      const ours = await runBackup({ dbPath: db, backupDir: dir, now: () => new Date(Date.now() + 120_000) }); // later, within the clock skew allowed (catalog.ts FUTURE_SKEW_MS)
      const old = new Date(Date.now() - 86400_000);
      fs.utimesSync(ours.snapshotPath, old, old); // a copy tool reset our mtime
      const r = await runRestore({ dbPath: db, from: dir, dryRun: true });
      assert.strictEqual(path.basename(r.from), path.basename(ours.snapshotPath));
      assert.notStrictEqual(path.basename(r.from), m.snapshot);
    });
  });

  it('the restored database opens natively and the server can write to it again (back to WAL)', async () => {
    createAiMemoryDb(db, { memories: 25, leaveWalCommits: 3 });
    const snap = await runBackup({ dbPath: db, backupDir: dir });
    await runRestore({ dbPath: db, from: snap.snapshotPath });
    const w = openNative(db);
    try {
      assert.strictEqual(w.pragma('journal_mode = WAL', { simple: true }), 'wal');
      w.prepare("UPDATE memories SET access_count = access_count + 1 WHERE rowid = 1").run();
    } finally {
      w.close();
    }
    assert.strictEqual(nativeChecks(db).fts, 'ok');
  });
});
