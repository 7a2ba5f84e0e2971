/**
 * Getting memories and snapshots back without clobbering or shadowing anything (adversarial
 * review): materialize into a folder that holds another database's snapshots, extract's
 * fidelity to the snapshot's JSON.
 */
import * as assert from 'assert';
import * as fs from 'fs';
import * as path from 'path';
import { runBackup } from '../../src/core/ops/backup';
import { runMaterialize } from '../../src/core/ops/archived';
import { pullFromTarget } from '../../src/core/ops/pull';
import { MirrorTarget } from '../../src/core/remote/mirrorTarget';
import { pushToTarget } from '../../src/core/remote/sync';
import { listArchived } from '../../src/core/store/archive';
import { listSnapshots } from '../../src/core/store/catalog';
import { createAiMemoryDb, openLikeServer, seedMemory } from '../support/aiMemoryDb';
import { forget, importDocument, type ImportDocument } from '../support/aiMemoryOps';
import { cli } from '../support/cliRun';
import { openNative } from '../support/sqlite';
import { useTempDir } from '../support/tmp';

describe('recovery without collisions (materialize, extract)', function () {
  this.timeout(120_000);
  const tmp = useTempDir('aimb-recovery-');

  /** Three hourly backups of `db` into `dir` (same clock for every database), the newest one plain. */
  async function backups(db: string, dir: string): Promise<string[]> {
    let clock = Date.parse('2026-11-20T00:00:00Z');
    const names: string[] = [];
    for (let i = 0; i < 3; i++) {
      clock += 3600_000;
      seedMemory(db, 'ns', `m${clock}`, `memory at ${clock} `.repeat(10));
      const r = await runBackup({ dbPath: db, backupDir: dir, keep: 0, plain: 1, now: () => new Date(clock), signing: { key: null } });
      names.push(path.basename(r.snapshotPath));
    }
    return names;
  }

  /** A database (found.db) with one memory, backed up by the CLI into bk. */
  async function backedUpMemory(content: string): Promise<{ db: string; id: string; dir: string }> {
    const db = tmp.join('found.db');
    const id = seedMemory(db, 'proj/a', 'deploy steps', content);
    const dir = tmp.join('bk');
    assert.equal((await cli(['backup', '--db', db, '--to', dir], { cwd: tmp.path })).code, 0);
    return { db, id, dir };
  }

  it('materialize never puts a snapshot under a name the target folder\'s archive holds with other content (another database\'s folder)', async () => {
    const a = tmp.join('a.db');
    const b = tmp.join('b.db');
    createAiMemoryDb(a, { memories: 20 });
    createAiMemoryDb(b, { memories: 25 });
    const dirA = tmp.join('bkA');
    const dirB = tmp.join('bkB');
    const namesA = await backups(a, dirA);
    const namesB = await backups(b, dirB);
    const name = namesA[0];
    assert.strictEqual(namesB[0], name, 'same times, same names');
    assert.ok((await listArchived(dirB)).some((x) => x.name === name), "B's snapshot of that name is archived");
    for (const out of [`${dirB}/`, dirB, path.join(dirB, name)]) {
      await assert.rejects(runMaterialize({ from: path.join(dirA, name), out }), (e: Error & { code?: string }) => {
        assert.match(e.message, /archive/);
        return true;
      });
    }
    assert.ok(!fs.existsSync(path.join(dirB, name)), 'no plain file shadows B\'s archived snapshot');
    const listed = (await listSnapshots(dirB, { archived: true })).find((e) => e.name === name);
    assert.strictEqual(listed?.manifest?.source_db, b, "B's own snapshot is still the one of that name");
    assert.deepStrictEqual(fs.readdirSync(dirB).filter((n) => n.includes('.tmp')), [], 'no temp left');
    // Into its own folder (the same snapshot, a twin): still allowed.
    const r = await runMaterialize({ from: path.join(dirA, name), out: dirA });
    assert.strictEqual(r.out, path.join(dirA, name));
  });

  it('extract warns when a memory it writes has the title and namespace of another memory now (ai-memory\'s import matches on them and would overwrite that one)', async () => {
    const db = tmp.join('ai-memory.db');
    const gone = seedMemory(db, 'proj/a', 'deploy steps', 'the old steps, deleted since');
    const kept = seedMemory(db, 'proj/a', 'other', 'unrelated');
    const dir = tmp.join('bk');
    assert.equal((await cli(['backup', '--db', db, '--to', dir, '--json'], { cwd: tmp.path })).code, 0);
    // Since the backup: the memory was forgotten, and a new one took its title in that namespace.
    const n = openLikeServer(db);
    forget(n, gone);
    n.close();
    const now = seedMemory(db, 'proj/a', 'deploy steps', 'the CURRENT steps, written after the delete');
    assert.notEqual(now, gone);
    const out = tmp.join('back.json');
    const r = await cli(['extract', '--from', dir, '--removed-since-db', db, '--out', out], { cwd: tmp.path });
    assert.equal(r.code, 0, r.stderr);
    const doc = JSON.parse(fs.readFileSync(out, 'utf8')) as ImportDocument;
    assert.deepEqual(doc.memories.map((m) => m.id), [gone]);
    // What the import would do (upsert on title + namespace): the current memory's text is replaced.
    const probe = tmp.join('probe.db');
    fs.copyFileSync(db, probe);
    const p = openLikeServer(probe);
    importDocument(p, doc);
    const after = p.prepare('SELECT id, content FROM memories WHERE id = ?').get(now) as { content: string };
    p.close();
    assert.equal(after.content, 'the old steps, deleted since', 'the stand-in import overwrites the current memory');
    // So extract says so, naming both memories.
    assert.match(r.stderr, /title and namespace/);
    assert.ok(r.stderr.includes(gone) && r.stderr.includes(now), r.stderr);
    assert.ok(kept);
    // --json carries it too.
    const j = await cli(['extract', '--from', dir, '--removed-since-db', db, '--out', tmp.join('back2.json'), '--json'], { cwd: tmp.path });
    assert.equal(j.code, 0, j.stderr);
    assert.ok(j.json<{ warnings: string[] }>().warnings.some((w) => w.includes(now)));
  });

  it('extract without --db checks title clashes against the database found as backup finds it ($AI_MEMORY_DB), or says they were not checked', async () => {
    const { db, id: gone, dir } = await backedUpMemory('the old steps, deleted since');
    const n = openLikeServer(db);
    forget(n, gone);
    n.close();
    const now = seedMemory(db, 'proj/a', 'deploy steps', 'written after the delete');
    const snap = fs.readdirSync(dir).find((f) => f.endsWith('.db')) as string;
    // Found through $AI_MEMORY_DB: the import command names it, and the clash with it is said.
    const r = await cli(['extract', '--from', path.join(dir, snap), '--ids', gone, '--out', tmp.join('x.json')], { cwd: tmp.path, env: { AI_MEMORY_DB: db } });
    assert.equal(r.code, 0, r.stderr);
    assert.ok(r.stdout.includes(`--db ${db} import`), r.stdout);
    assert.match(r.stderr, /title and namespace of another memory/);
    assert.ok(r.stderr.includes(now), r.stderr);
    // Nothing found (no ai-memory.db here, no $AI_MEMORY_DB): said plainly, with what to pass.
    const none = await cli(['extract', '--from', path.join(dir, snap), '--ids', gone, '--out', tmp.join('y.json'), '--json'], { cwd: tmp.path });
    assert.equal(none.code, 0, none.stderr);
    const w = none.json<{ warnings: string[] }>().warnings.join('\n');
    assert.match(w, /title clashes were not checked/);
    assert.match(w, /pass --db PATH/);
  });

  it('extract without --db still writes the memories when the database it found cannot be read (damaged: when memories are extracted), saying clashes were not checked', async () => {
    const { db, id, dir } = await backedUpMemory('the steps to get back');
    // The live database damaged since: its header overwritten (as a bad disk or a stray write would).
    const fd = fs.openSync(db, 'r+');
    fs.writeSync(fd, Buffer.alloc(100, 0x61), 0, 100, 0);
    fs.closeSync(fd);
    const damaged = fs.readFileSync(db);
    const out = tmp.join('back.json');
    const r = await cli(['extract', '--from', dir, '--ids', id, '--out', out, '--json'], { cwd: tmp.path, env: { AI_MEMORY_DB: db } });
    assert.equal(r.code, 0, r.stderr);
    const doc = JSON.parse(fs.readFileSync(out, 'utf8')) as { memories: { id: string }[] };
    assert.deepStrictEqual(doc.memories.map((m) => m.id), [id]);
    const w = r.json<{ warnings: string[] }>().warnings.join('\n');
    assert.match(w, /title clashes were not checked/);
    assert.match(w, /could not be read/);
    assert.ok(fs.readFileSync(db).equals(damaged), 'the damaged database is left as it was');
    // Named with --db, a database that cannot be read is still an error: the user asked for it.
    const named = await cli(['extract', '--from', dir, '--db', db, '--ids', id, '--out', tmp.join('named.json')], { cwd: tmp.path });
    assert.notEqual(named.code, 0);
    assert.ok(!fs.existsSync(tmp.join('named.json')));
  });

  it('extract keeps a metadata number written as a float a float (1.0, 1e16, -0.0): JSON.parse made them integers, which ai-memory\'s import reads as another type', async () => {
    const db = tmp.join('floats.db');
    const id = seedMemory(db, 'global', 'weights', 'a memory with float metadata');
    const META = '{"agent_id":"test-agent","big":1e16,"score":1.0,"tiny":-0.0,"ratio":0.25,"n":3,"list":[2.0,7]}';
    const n = openNative(db);
    n.prepare('UPDATE memories SET metadata = ? WHERE id = ?').run(META, id);
    n.close();
    const dir = tmp.join('bk');
    assert.equal((await cli(['backup', '--db', db, '--to', dir], { cwd: tmp.path })).code, 0);
    const r = await cli(['extract', '--from', dir, '--db', db, '--ids', id], { cwd: tmp.path });
    assert.equal(r.code, 0, r.stderr);
    assert.ok(r.stdout.includes(`"metadata":${META}`), r.stdout);
    const out = tmp.join('x.json');
    assert.equal((await cli(['extract', '--from', dir, '--db', db, '--ids', id, '--out', out], { cwd: tmp.path })).code, 0);
    const text = fs.readFileSync(out, 'utf8');
    assert.match(text, /"big": 1e16,/);
    assert.match(text, /"score": 1\.0,/);
    assert.match(text, /"tiny": -0\.0,/);
    assert.match(text, /2\.0,\s*7/);
    assert.match(text, /"n": 3,/);
  });

  it('two materializes of one snapshot into one folder at once: one places it, and its manifest stays beside it (the loser removed the winner\'s manifest)', async () => {
    const a = tmp.join('a.db');
    createAiMemoryDb(a, { memories: 20 });
    const dir = tmp.join('bk');
    const [name] = await backups(a, dir);
    for (let k = 0; k < 6; k++) {
      const out = tmp.join(`out${k}`);
      const rs = await Promise.allSettled([runMaterialize({ from: path.join(dir, name), out: `${out}/` }), runMaterialize({ from: path.join(dir, name), out: `${out}/` })]);
      const won = rs.filter((r): r is PromiseFulfilledResult<Awaited<ReturnType<typeof runMaterialize>>> => r.status === 'fulfilled');
      assert.equal(won.length, 1, `exactly one places it (${rs.map((r) => (r.status === 'rejected' ? String(r.reason) : 'ok')).join('; ')})`);
      assert.ok(fs.existsSync(won[0].value.out), 'the snapshot');
      assert.ok(fs.existsSync(won[0].value.manifest), `its manifest, as the winner said (${fs.readdirSync(out).join(', ')})`);
      const m = JSON.parse(fs.readFileSync(won[0].value.manifest, 'utf8')) as { snapshot: string; sha256: string };
      assert.equal(m.snapshot, name);
      assert.equal(m.sha256, won[0].value.sha256);
      assert.deepEqual(fs.readdirSync(out).filter((f) => f.includes('.tmp')), [], 'no temp left');
    }
  });

  it('extract warns when a memory it writes exists now under another title or namespace (the import would add a second row with its id, which fails)', async () => {
    const db = tmp.join('ai-memory.db');
    const id = seedMemory(db, 'proj/a', 'old title', 'the version in the snapshot');
    const dir = tmp.join('bk');
    assert.equal((await cli(['backup', '--db', db, '--to', dir], { cwd: tmp.path })).code, 0);
    const n = openNative(db);
    n.prepare("UPDATE memories SET title = 'new title', content = 'edited since' WHERE id = ?").run(id);
    n.close();
    const out = tmp.join('one.json');
    const r = await cli(['extract', '--from', dir, '--db', db, '--ids', id, '--out', out], { cwd: tmp.path });
    assert.equal(r.code, 0, r.stderr);
    const doc = JSON.parse(fs.readFileSync(out, 'utf8')) as ImportDocument;
    // What the import would do: no memory has (old title, proj/a), so it inserts — with an id that exists.
    const probe = tmp.join('probe.db');
    fs.copyFileSync(db, probe);
    const p = openLikeServer(probe);
    assert.throws(() => importDocument(p, doc), /UNIQUE|PRIMARY/);
    p.close();
    assert.match(r.stderr, /another title or namespace/);
    assert.ok(r.stderr.includes(id) && r.stderr.includes('new title'), r.stderr);
  });
});

describe('pull places its manifest without replacing one', function () {
  this.timeout(120_000);
  const tmp = useTempDir('aimb-pull-race-');

  it('a backup here that names the same snapshot while the pull downloads keeps its manifest (the pull renamed its own over it: that snapshot then failed its manifest)', async () => {
    const clock = Date.parse('2026-11-20T05:00:00Z');
    const a = tmp.join('a.db');
    const b = tmp.join('b.db');
    createAiMemoryDb(a, { memories: 20 });
    createAiMemoryDb(b, { memories: 25 });
    const dirA = tmp.join('bkA');
    const dirB = tmp.join('bkB');
    const ra = await runBackup({ dbPath: a, backupDir: dirA, keep: 0, now: () => new Date(clock), signing: { key: null } });
    const rb = await runBackup({ dbPath: b, backupDir: dirB, keep: 0, now: () => new Date(clock), signing: { key: null } });
    const name = path.basename(ra.snapshotPath);
    assert.equal(path.basename(rb.snapshotPath), name, 'same time, same name');
    const mirror = tmp.join('mirror');
    fs.mkdirSync(mirror);
    await pushToTarget({ localDir: dirA, target: new MirrorTarget(mirror), keep: 48 });
    const into = tmp.join('here');
    const mName = name.replace(/\.db$/, '.manifest.json');
    // While the pull checks its download, a backup here publishes B's snapshot of that name (manifest first).
    const pulled = pullFromTarget({
      target: new MirrorTarget(mirror),
      toDir: into,
      names: [name],
      onProgress: (p) => {
        if (p.phase !== 'checking') return;
        fs.copyFileSync(path.join(dirB, mName), path.join(into, mName));
        fs.copyFileSync(path.join(dirB, name), path.join(into, name));
      },
    });
    await assert.rejects(pulled, (e: Error & { code?: string }) => {
      assert.equal(e.code, 'LOCKED', e.message);
      return true;
    });
    assert.deepEqual(fs.readFileSync(path.join(into, mName)), fs.readFileSync(path.join(dirB, mName)), "the local snapshot's own manifest");
    assert.deepEqual(fs.readFileSync(path.join(into, name)), fs.readFileSync(path.join(dirB, name)), 'the local snapshot');
    assert.deepEqual(fs.readdirSync(into).filter((n) => n.includes('.tmp')), [], 'no temp left');
    // Two pulls of one snapshot at once: it arrives once, with its manifest.
    const both = tmp.join('both');
    const rs = await Promise.allSettled([0, 1].map(() => pullFromTarget({ target: new MirrorTarget(mirror), toDir: both, names: [name] })));
    assert.ok(rs.some((r) => r.status === 'fulfilled'), rs.map((r) => (r.status === 'rejected' ? String(r.reason) : 'ok')).join('; '));
    assert.deepEqual(fs.readFileSync(path.join(both, name)), fs.readFileSync(ra.snapshotPath));
    assert.deepEqual(fs.readFileSync(path.join(both, mName)), fs.readFileSync(ra.manifestPath));
  });
});
