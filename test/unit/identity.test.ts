/**
 * Identity: which database (on which machine) a snapshot belongs to, when two share a name.
 * Real databases, real backups and restores; "another machine's" snapshot is a real snapshot
 * whose manifest says what that machine's would (a backup folder synced between machines).
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { thisMachine } from '../../src/core/common/machine';
import { runBackup } from '../../src/core/ops/backup';
import { runPrune } from '../../src/core/ops/prune';
import { runRestore } from '../../src/core/ops/restore';
import { runMaterialize } from '../../src/core/ops/archived';
import { extract } from '../../src/core/ops/memory';
import { manifestNameFor } from '../../src/core/store/naming';
import { MirrorTarget } from '../../src/core/remote/mirrorTarget';
import { pushToTarget } from '../../src/core/remote/sync';
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { trackChild } from '../support/procs';
import * as net from 'node:net';
import { BackupError } from '../../src/core/common/errors';
import { createAiMemoryDb, seedMemory } from '../support/aiMemoryDb';
import { cliBundle } from '../support/reliability';
import { useTempDir } from '../support/tmp';

describe('identity: a backup folder synced between two machines with the same database path', () => {
  const tmp = useTempDir('aimb-identity-');

  /** A snapshot in `dir` of another machine's database at `dbPath`: its manifest names that path and that machine. */
  async function otherMachinesSnapshot(dir: string, dbPath: string, at: Date): Promise<{ name: string; sha256: string }> {
    const theirs = tmp.join('machine-b', 'ai-memory.db');
    createAiMemoryDb(theirs, { memories: 7, seed: 42 });
    const r = await runBackup({ dbPath: theirs, backupDir: dir, keep: 0, now: () => at });
    const mPath = path.join(dir, manifestNameFor(path.basename(r.snapshotPath)));
    const m = JSON.parse(fs.readFileSync(mPath, 'utf8')) as Record<string, unknown>;
    assert.equal(m.host, thisMachine().host, 'our manifests say where they were taken');
    // As machine B's backup wrote it: its database is at the same path there, on another host.
    Object.assign(m, { source_db: dbPath, host: 'machine-b', ...(m.machine_id ? { machine_id: 'f'.repeat(32) } : {}) });
    fs.writeFileSync(mPath, JSON.stringify(m, null, 2));
    fs.rmSync(path.dirname(theirs), { recursive: true });
    return { name: path.basename(r.snapshotPath), sha256: r.manifest.sha256 };
  }

  it("restore from the folder takes this machine's newest, retention never deletes the other machine's, and a restore of it says whose it is", async () => {
    const db = tmp.join('home', 'ai-memory.db');
    createAiMemoryDb(db, { memories: 20, seed: 1 });
    const dir = tmp.join('synced-backups');
    const mine = await runBackup({ dbPath: db, backupDir: dir, now: () => new Date('2026-11-20T10:00:00Z') });
    const theirs = await otherMachinesSnapshot(dir, db, new Date('2026-11-20T11:00:00Z'));

    // The newest in the folder is machine B's: restoring this machine's database takes its own.
    const r = await runRestore({ dbPath: db, from: dir, now: () => new Date('2026-11-20T12:00:00Z') });
    assert.equal(path.basename(r.from), path.basename(mine.snapshotPath), `restored ${path.basename(r.from)}, machine B's is ${theirs.name}`);
    assert.equal(r.sha256, mine.manifest.sha256);

    // This machine's backups with --keep 1, then a prune: machine B's snapshot stays.
    seedMemory(db, 'notes', 'after the restore', 'a new memory');
    const b = await runBackup({ dbPath: db, backupDir: dir, keep: 1, now: () => new Date('2026-11-20T13:00:00Z') });
    assert.deepEqual(b.pruned, [path.basename(mine.snapshotPath)], "this machine's older snapshot goes, machine B's stays");
    assert.ok(fs.existsSync(path.join(dir, theirs.name)));
    const p = await runPrune({ dbPath: db, backupDir: dir, policy: { last: 1 } });
    assert.deepEqual(p.pruned, []);
    assert.match(p.warnings.join('\n'), /another machine \(machine-b\)/);

    // Machine B's snapshot named with --from still restores, and the warning says it is another machine's.
    const named = await runRestore({ dbPath: db, from: path.join(dir, theirs.name), dryRun: true });
    assert.equal(named.plan.source.owner, 'gone');
    assert.equal(named.plan.source.host, 'machine-b');
    assert.match(named.warnings.join('\n'), /taken on another machine \(machine-b\)/);
  });

  it("a push from the synced folder never counts the other machine's snapshots as this machine's: the target's retention leaves them", async () => {
    const db = tmp.join('home2', 'ai-memory.db');
    createAiMemoryDb(db, { memories: 6, seed: 4 });
    const dir = tmp.join('synced2');
    const theirs = [await otherMachinesSnapshot(dir, db, new Date('2026-11-22T08:00:00Z')), await otherMachinesSnapshot(dir, db, new Date('2026-11-22T09:00:00Z'))].map((x) => x.name);
    const mine: string[] = [];
    for (const h of ['10', '11', '12']) {
      seedMemory(db, 'notes', `at ${h}`, 'x');
      mine.push(path.basename((await runBackup({ dbPath: db, backupDir: dir, keep: 0, now: () => new Date(`2026-11-22T${h}:00:00Z`) })).snapshotPath));
    }
    const nas = tmp.join('nas');
    fs.mkdirSync(nas);
    const t = new MirrorTarget(nas);
    assert.equal((await pushToTarget({ localDir: dir, target: t, keep: 10 })).status, 'copied');
    const o = await pushToTarget({ localDir: dir, target: t, keep: 1 });
    assert.equal(o.status, 'copied', JSON.stringify(o.error));
    assert.deepEqual(o.report?.deleted.sort(), mine.slice(0, 2).sort(), "only this machine's older copies go");
    for (const n of theirs) assert.ok(fs.existsSync(path.join(nas, n)), `${n} (machine B's) stays on the target`);
  });

  it("a folder holding only another machine's snapshots restores the newest of them, saying it is another machine's", async () => {
    const db = tmp.join('new-machine', 'ai-memory.db');
    createAiMemoryDb(db, { memories: 5, seed: 3 });
    const dir = tmp.join('pulled');
    const theirs = await otherMachinesSnapshot(dir, db, new Date('2026-11-21T09:00:00Z'));
    const r = await runRestore({ dbPath: db, from: dir, dryRun: true });
    assert.equal(path.basename(r.from), theirs.name);
    assert.match(r.warnings.join('\n'), /no snapshot in .* was taken of .* on this machine; restoring the newest one of .* on machine-b, another machine's/);
  });
});

describe('identity: which machine a manifest says it was taken on', () => {
  it('compares machine ids where both have one (a renamed host is the same machine), else host names; says nothing without either', async () => {
    const { takenElsewhere } = await import('../../src/core/common/machine');
    const here = { host: 'laptop', machine_id: 'a'.repeat(32) };
    assert.equal(takenElsewhere({ host: 'laptop-renamed', machine_id: 'a'.repeat(32) }, here), false);
    assert.equal(takenElsewhere({ host: 'laptop', machine_id: 'b'.repeat(32) }, here), true);
    assert.equal(takenElsewhere({ host: 'desktop' }, here), true);
    assert.equal(takenElsewhere({ host: 'laptop' }, here), false);
    assert.equal(takenElsewhere({}, here), false, "ai-memory's own manifests: told by the path, as before");
    assert.equal(takenElsewhere({ host: 'desktop', machine_id: 'b'.repeat(32) }, { host: 'laptop' }), true);
    assert.equal(takenElsewhere({ host: 'desktop' }, {}), false);
  });
});

describe('identity: a database path that names no regular file', () => {
  const tmp = useTempDir('aimb-identity-special-');

  it('a FIFO or a socket at --db is refused, named, and left where it is (it was moved aside as a "damaged database" and a file put in its place)', async () => {
    const src = tmp.join('src', 'ai-memory.db');
    createAiMemoryDb(src, { memories: 5 });
    const snap = await runBackup({ dbPath: src, backupDir: tmp.join('backups') });
    const dir = tmp.join('live');
    fs.mkdirSync(dir);
    const fifo = path.join(dir, 'pipe.db');
    execFileSync('mkfifo', [fifo]);
    const sock = path.join(dir, 'sock.db');
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(sock, resolve));
    try {
      for (const [at, what] of [[fifo, /named pipe/], [sock, /socket/]] as const) {
        for (const dryRun of [true, false]) {
          await assert.rejects(runRestore({ dbPath: at, from: snap.snapshotPath, dryRun }), (e: unknown) => {
            assert.ok(e instanceof BackupError, String(e));
            assert.equal(e.code, 'DB_IS_DIRECTORY', e.message);
            assert.match(e.message, what);
            assert.match(`${e.message} ${e.state ?? ''}`, /nothing was changed/i);
            return true;
          });
        }
      }
      assert.ok(fs.lstatSync(fifo).isFIFO(), 'the FIFO is where it was');
      assert.ok(fs.lstatSync(sock).isSocket(), 'the socket is where it was');
      assert.deepEqual(fs.readdirSync(dir).sort(), ['pipe.db', 'sock.db'], 'nothing kept aside, nothing placed');
    } finally {
      server.close();
    }
  });
});

describe("identity: a folder made at a database's sidecar name", () => {
  const tmp = useTempDir('aimb-identity-sidecar-');

  it('backup --to ai-memory.db-wal (and a database to restore under ai-memory.db-journal/) is refused before the folder is made: SQLite could no longer open the database (the folder was made, then the backup failed on it)', async () => {
    const db = tmp.join('ai-memory.db');
    createAiMemoryDb(db, { memories: 5 });
    const src = tmp.join('elsewhere', 'ai-memory.db');
    createAiMemoryDb(src, { memories: 3, seed: 5 });
    const snap = await runBackup({ dbPath: src, backupDir: tmp.join('elsewhere', 'backups') });
    const before = fs.readdirSync(tmp.path).sort();
    const refusedHere = (p: Promise<unknown>, at: string) =>
      assert.rejects(p, (e: unknown) => {
        assert.ok(e instanceof BackupError, String(e));
        assert.equal(e.code, 'TARGET_NOT_DIRECTORY', e.message);
        assert.ok(e.message.includes(at) && /would stop SQLite .* from opening that database/.test(e.message), e.message);
        return true;
      });
    await refusedHere(runBackup({ dbPath: db, backupDir: `${db}-wal` }), `${db}-wal`);
    await refusedHere(runBackup({ dbPath: db, backupDir: path.join(`${db}-shm`, 'backups') }), `${db}-shm`);
    await refusedHere(runRestore({ dbPath: path.join(`${db}-journal`, 'new.db'), from: snap.snapshotPath, createIfMissing: true }), `${db}-journal`);
    assert.deepEqual(fs.readdirSync(tmp.path).sort(), before, 'no folder was made');
    // The database opens and takes a write as before (a folder at its -wal: "unable to open database file").
    seedMemory(db, 'notes', 'still opens', 'yes');
    // Nor a file we write: an export at its -journal (SQLite plays a "hot" one back and deletes
    // it), a materialized snapshot at its -wal (SQLite overwrites an invalid WAL).
    const arch = tmp.join('arch');
    const first = await runBackup({ dbPath: src, backupDir: arch, plain: 1, now: () => new Date('2026-11-20T10:00:00Z') });
    seedMemory(src, 'notes', 'second', 'x');
    await runBackup({ dbPath: src, backupDir: arch, plain: 1, now: () => new Date('2026-11-20T11:00:00Z') });
    assert.ok(!fs.existsSync(first.snapshotPath), 'the first is archived');
    const refusedFile = (p: Promise<unknown>, at: string) =>
      assert.rejects(p, (e: unknown) => {
        assert.ok(e instanceof BackupError, String(e));
        assert.ok(e.message.includes(at) && /SQLite would take the file for that database's/.test(e.message), e.message);
        return true;
      });
    const before2 = fs.readdirSync(tmp.path).sort();
    await refusedFile(runMaterialize({ from: first.snapshotPath, out: `${db}-wal` }), `${db}-wal`);
    await refusedFile(extract({ from: snap.snapshotPath, select: { namespace: 'notes' }, out: `${db}-journal`, dbPath: src }), `${db}-journal`);
    assert.deepEqual(fs.readdirSync(tmp.path).sort(), before2, 'nothing was written');
    // A folder name that only looks like a sidecar, with no database beside it, is fine.
    const ok = await runBackup({ dbPath: db, backupDir: tmp.join('other.db-wal') });
    assert.ok(fs.existsSync(ok.snapshotPath));
  });
});

describe('identity: a restore run as root into another user\'s folder', () => {
  const tmp = useTempDir('aimb-identity-owner-');

  it("a new database (and the folders made for it) belongs to the folder's owner, who can open and write it; never wider than the snapshot", async function () {
    if (process.platform === 'win32' || process.geteuid?.() !== 0) this.skip(); // needs root to act for another user
    const uid = 42421;
    const gid = 42421;
    const src = tmp.join('src', 'ai-memory.db');
    createAiMemoryDb(src, { memories: 4 });
    const snap = await runBackup({ dbPath: src, backupDir: tmp.join('backups') });
    // The user's home: theirs, 0700; the database goes two levels below it, which do not exist yet.
    const home = tmp.join('home-of-42421');
    fs.mkdirSync(home, { mode: 0o700 });
    fs.chownSync(home, uid, gid);
    fs.chmodSync(tmp.path, 0o755);
    const db = path.join(home, '.claude', 'memory', 'ai-memory.db');
    const r = await runRestore({ dbPath: db, from: snap.snapshotPath, createIfMissing: true });
    assert.equal(r.created, true);
    for (const p of [path.dirname(path.dirname(db)), path.dirname(db), db]) {
      const st = fs.statSync(p);
      assert.equal(`${st.uid}:${st.gid}`, `${uid}:${gid}`, `${p} belongs to the folder's owner`);
      assert.equal(st.mode & 0o077, 0, `${p} is no wider than the snapshot (0600)`);
    }
    // The user's own process (their ai-memory server) opens it and writes: a WAL beside it in the folder made.
    const out = execFileSync('sqlite3', [db, 'PRAGMA journal_mode=WAL; INSERT INTO memories (id, tier, namespace, title, content, tags, priority, confidence, source, access_count, created_at, updated_at) VALUES (\'x\', \'long\', \'n\', \'t\', \'c\', \'[]\', 5, 1.0, \'user\', 0, \'2026-01-01T00:00:00+00:00\', \'2026-01-01T00:00:00+00:00\'); SELECT count(*) FROM memories;'], { uid, gid, encoding: 'utf8' });
    assert.match(out, /^wal\n5\n$/, out);
  });
});

describe('identity: a machine without a machine id whose host name changes (macOS on another network, a container made anew)', () => {
  const tmp = useTempDir('aimb-identity-hostname-');
  /** The bundled CLI (built when missing: a clean clone has no dist/). */
  let CLI = '';
  before(async function () {
    this.timeout(120_000);
    CLI = await cliBundle();
  });

  /** The CLI as this machine runs it under host name `host`, without a machine id (its own mount and UTS namespaces: real files, nothing mocked). */
  function cliAs(host: string, args: string[]): { code: number | null; stdout: string; stderr: string } {
    const empty = tmp.join('no-machine-id');
    fs.writeFileSync(empty, '');
    const script = 'for f in /etc/machine-id /var/lib/dbus/machine-id; do [ -e "$f" ] && mount --bind "$0" "$f"; done; hostname "$1" && shift 2 && exec "$@"';
    const r = spawnSync('unshare', ['-m', '-u', 'sh', '-c', script, empty, host, 'x', process.execPath, CLI, ...args], { cwd: tmp.path, encoding: 'utf8' });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  }

  it('restore from the folder names the newer snapshot it passes over as another host\'s, judged by host names alone', function () {
    if (process.getuid?.() !== 0 || spawnSync('unshare', ['-m', '-u', 'true']).status !== 0) this.skip(); // needs root (unshare -m -u)
    const db = tmp.join('ai-memory.db');
    createAiMemoryDb(db, { memories: 6 });
    const dir = tmp.join('backups');
    const first = cliAs('office', ['backup', '--db', db, '--to', dir, '--json']);
    assert.equal(first.code, 0, first.stderr);
    assert.equal((JSON.parse(first.stdout) as { machine_id?: string }).machine_id, undefined, 'no machine id to record');
    seedMemory(db, 'notes', 'written at the office', 'only the newer snapshot has it');
    const later = new Date(Date.parse((JSON.parse(first.stdout) as { created_at: string }).created_at) + 2000);
    while (Date.now() < later.getTime()) execFileSync('sleep', ['0.2']); // the next second: another name
    const second = cliAs('home', ['backup', '--db', db, '--to', dir, '--json']);
    assert.equal(second.code, 0, second.stderr);
    const newer = (JSON.parse(second.stdout) as { snapshot: string }).snapshot;
    // Called "office" again: the newest snapshot under that name is older; the newer one is named.
    const r = cliAs('office', ['restore', '--db', db, '--from', dir, '--dry-run']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, new RegExp(`${newer.replace(/\./g, '\\.')} is newer.*taken on home`));
    assert.match(r.stderr, /If this machine was called home then/);
  });
});

describe('identity: a database file with two names (a hard link)', () => {
  const tmp = useTempDir('aimb-identity-link-');

  it('a restore says the other name keeps the current contents (the agent configured with it would not see the restore)', async () => {
    const db = tmp.join('a.db');
    createAiMemoryDb(db, { memories: 6 });
    const snap = await runBackup({ dbPath: db, backupDir: tmp.join('backups') });
    seedMemory(db, 'notes', 'after the snapshot', 'x');
    const other = tmp.join('b.db');
    fs.linkSync(db, other);
    const plan = await runRestore({ dbPath: db, from: snap.snapshotPath, dryRun: true });
    assert.match(plan.warnings.join('\n'), /has 1 other name \(hard link\): the restore replaces only this name/);
    const r = await runRestore({ dbPath: db, from: snap.snapshotPath });
    assert.match(r.warnings.join('\n'), /other name/);
    // As said: the other name still holds the database as it was (the memory written after the snapshot).
    assert.notEqual(fs.statSync(other).ino, fs.statSync(db).ino);
    assert.equal(fs.statSync(other).ino, fs.statSync(r.previous ?? '').ino);
  });
});

describe('identity: a snapshot in use as a database', () => {
  const tmp = useTempDir('aimb-identity-inuse-');

  /** A real process (native SQLite) that opens `file`, runs `statement` on it and keeps it open; resolves once it has. */
  async function holdOpen(file: string, statement: string): Promise<ChildProcess> {
    const holder = spawn(process.execPath, ['-e', `
      const D = require(${JSON.stringify(require.resolve('better-sqlite3'))});
      const db = new D(${JSON.stringify(file)});
      const st = db.prepare(${JSON.stringify(statement)});
      if (st.reader) st.get(); else st.run();
      globalThis.keep = db; process.stdout.write('ready\\n'); setInterval(() => {}, 1000);`], { stdio: ['ignore', 'pipe', 'inherit'] });
    trackChild(holder, 'snapshot holder');
    await new Promise<void>((res, rej) => {
      holder.stdout?.once('data', () => res());
      holder.once('exit', (c) => rej(new Error(`holder exited ${c}`)));
    });
    return holder;
  }

  /** While a process holds `snapshot` open (holdOpen), a backup with --keep 1 keeps it, and says so. */
  async function keptWhileOpen(db: string, dir: string, snapshot: string, statement: string): Promise<void> {
    const holder = await holdOpen(snapshot, statement);
    try {
      seedMemory(db, 'notes', 'newer', 'x');

      const b = await runBackup({ dbPath: db, backupDir: dir, keep: 1, now: () => new Date('2026-11-20T11:00:00Z') });
      assert.deepEqual(b.pruned, [], 'the snapshot in use stays');
      assert.ok(fs.existsSync(snapshot));
      assert.match(b.warnings.join('\n'), new RegExp(`kept ${path.basename(snapshot)}: it is open in pid ${holder.pid}`));
      // prune --dry-run says what prune would do: keep it (it said "deleted").
      const dry = await runPrune({ backupDir: dir, dbPath: db, policy: { last: 1 }, dryRun: true });
      const d = dry.decisions.find((x) => x.name === path.basename(snapshot));
      assert.equal(d?.keep, true, 'prune --dry-run: kept');
      assert.match(d?.why ?? '', new RegExp(`^in use by pid ${holder.pid} `));
    } finally {
      holder.kill('SIGKILL');
      await new Promise((r) => holder.once('exit', r));
    }
  }

  it('retention never deletes a snapshot a process has open (an agent pointed at it): it would take every write since with it', async () => {
    const db = tmp.join('ai-memory.db');
    createAiMemoryDb(db, { memories: 8 });
    const dir = tmp.join('backups');
    const old = await runBackup({ dbPath: db, backupDir: dir, now: () => new Date('2026-11-20T10:00:00Z') });
    // The user's agent runs on the snapshot itself, a real native connection in another process, and writes.
    await keptWhileOpen(db, dir, old.snapshotPath, "UPDATE memories SET content = 'written while in use' WHERE rowid = 1");
    // Once nothing has it open, the next backup prunes it as the policy says.
    seedMemory(db, 'notes', 'newest', 'y');
    const c = await runBackup({ dbPath: db, backupDir: dir, keep: 1, now: () => new Date('2026-11-20T12:00:00Z') });
    assert.ok(c.pruned.includes(path.basename(old.snapshotPath)), c.pruned.join(', '));
  });

  it('a backup folder reached through a symbolic link: a snapshot open in a process (no lock, only its descriptor) is still seen and kept', async () => {
    const db = tmp.join('linked', 'ai-memory.db');
    createAiMemoryDb(db, { memories: 8, walMode: false });
    const real = tmp.join('linked', 'real-backups');
    fs.mkdirSync(real);
    const dir = tmp.join('linked', 'backups');
    fs.symlinkSync(real, dir);
    const old = await runBackup({ dbPath: db, backupDir: dir, keep: 0, now: () => new Date('2026-11-20T10:00:00Z') });
    // An idle reader: a rollback-journal connection holds no lock, only the open file (named by its real path in /proc).
    await keptWhileOpen(db, dir, old.snapshotPath, 'SELECT count(*) FROM memories');
  });

  it('archiving never removes the plain file of a snapshot a process has open: kept plain, said, archived once nothing has it open', async () => {
    const db = tmp.join('arch', 'ai-memory.db');
    createAiMemoryDb(db, { memories: 8 });
    const dir = tmp.join('arch', 'backups');
    const old = await runBackup({ dbPath: db, backupDir: dir, keep: 0, now: () => new Date('2026-11-20T10:00:00Z') });
    // The agent on the snapshot has opened it and not written yet (its bytes still match the
    // manifest, so only its being open tells): unlinked now, what it writes next goes with it.
    const holder = await holdOpen(old.snapshotPath, 'SELECT count(*) FROM memories');
    const name = path.basename(old.snapshotPath);
    try {
      assert.equal(fs.statSync(old.snapshotPath).size, old.manifest.bytes);
      seedMemory(db, 'notes', 'newer', 'x');
      const b = await runBackup({ dbPath: db, backupDir: dir, keep: 0, plain: 1, now: () => new Date('2026-11-20T11:00:00Z') });
      assert.deepEqual(b.archived, [], 'the snapshot in use stays plain');
      assert.ok(fs.existsSync(old.snapshotPath));
      assert.match(b.warnings.join('\n'), new RegExp(`${name} stays plain: it is open in pid ${holder.pid}`));
    } finally {
      holder.kill('SIGKILL');
      await new Promise((r) => holder.once('exit', r));
    }
    // Once nothing has it open, the next backup archives it.
    seedMemory(db, 'notes', 'newest', 'y');
    const c = await runBackup({ dbPath: db, backupDir: dir, keep: 0, plain: 1, now: () => new Date('2026-11-20T12:00:00Z') });
    assert.ok(c.archived.includes(name), c.archived.join(', '));
  });
});
