/**
 * The sql.js engine reads snapshot files lazily: SQLite asks for pages, we read them from
 * disk. These tests pin the mechanism (an sql.js upgrade that copies the whole file again
 * fails here, not silently in users' memory), prove memory stays flat in a child process
 * with a memory limit, and cover the edges: read-only, WAL-mode headers, files far beyond
 * 4 GiB, files beyond what we check, time budgets, damaged files.
 */
import * as assert from 'assert';
import { execFileSync, spawnSync } from 'child_process';
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { BackupError } from '../../src/core/common/errors';
import { checkFile, describeMaxCheckable, MAX_CHECKABLE_BYTES, openSnapshotFile } from '../../src/core/sqlite/sqlEngine';
import { makeSparseDatabase, SPARSE_ROWS } from '../support/sparseDb';
import { openNative } from '../support/sqlite';
import { useTempDir } from '../support/tmp';

const repoRoot = path.resolve(__dirname, '..', '..', '..');
const engineModule = path.resolve(__dirname, '..', '..', 'src', 'core', 'sqlite', 'sqlEngine.js');
const sha = (f: string) => createHash('sha256').update(fs.readFileSync(f)).digest('hex');

/** A plain database of about `mb` MB: `rows` with a 4,000-byte blob each (one overflow page per row). */
function makeDatabase(file: string, mb: number, opts: { wal?: boolean } = {}): number {
  const rows = Math.ceil((mb * 1e6) / 8192);
  const db = openNative(file);
  db.exec(`PRAGMA journal_mode = ${opts.wal ? 'WAL' : 'OFF'}; PRAGMA synchronous = OFF;`);
  db.exec('CREATE TABLE memories(id INTEGER PRIMARY KEY, title TEXT, body BLOB); CREATE INDEX memories_title ON memories(title);');
  db.exec('CREATE TABLE schema_version(version INTEGER); INSERT INTO schema_version VALUES (28);');
  db.exec(`WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c LIMIT ${rows}) INSERT INTO memories SELECT i, 'memory ' || i, zeroblob(4000) FROM c;`);
  if (opts.wal) db.exec('PRAGMA wal_checkpoint(TRUNCATE);');
  db.close();
  return rows;
}

async function rejectsCode(p: Promise<unknown>, code: string, match?: RegExp): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof BackupError, `expected a BackupError, got ${String(e)}`);
    assert.strictEqual(e.code, code, e.message);
    if (match) assert.match(e.message, match);
    return true;
  });
}

describe('sql.js engine: lazy snapshot files', () => {
  const tmp = useTempDir('aimb-engine-');

  it('sql.js is pinned to the exact version whose MEMFS the lazy reader relies on', () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(repoRoot, 'package.json'), 'utf8')) as { devDependencies: Record<string, string> };
    assert.strictEqual(pkg.devDependencies['sql.js'], '1.16.0', 'sql.js must stay pinned exactly (no ^ or ~): see src/core/sqlEngine.ts');
    const installed = JSON.parse(fs.readFileSync(path.join(repoRoot, 'node_modules', 'sql.js', 'package.json'), 'utf8')) as { version: string };
    assert.strictEqual(installed.version, '1.16.0');
  });

  it('MEMFS adopts our lazy contents: a lookup in a 40 MB file reads a few blocks, not the file', async () => {
    const file = tmp.join('lookup.db');
    makeDatabase(file, 40);
    const size = fs.statSync(file).size;
    const db = await openSnapshotFile(file);
    try {
      const r = db.query('SELECT title FROM memories WHERE id = ?', [1234]);
      assert.deepStrictEqual(r.rows, [['memory 1234']]);
      const s = db.stats();
      assert.strictEqual(s.adopted, true, 'MEMFS did not take our object as the file: sql.js changed how new Database(data) stores data');
      assert.ok(s.bytesRead <= 1 << 20, `read ${s.bytesRead} bytes of ${size} for one lookup: the file is being read whole`);
      assert.ok(s.reads > 0 && s.reads < 20, `${s.reads} page reads`);
    } finally {
      db.close();
    }
  });

  it('checks a file like native SQLite does, every page read from disk through a bounded cache', async () => {
    const file = tmp.join('whole.db');
    const rows = makeDatabase(file, 30);
    const size = fs.statSync(file).size;
    const db = await openSnapshotFile(file);
    try {
      const c = db.check('full');
      assert.strictEqual(c.ok, true, c.result);
      assert.strictEqual(c.memories, rows);
      assert.strictEqual(c.schemaVersion, 28);
      assert.strictEqual(c.pageSize, 4096);
      assert.strictEqual(c.pages, size / 4096);
      // integrity_check walks every page: all of the file came from disk, a bounded number of times.
      const s = db.stats();
      assert.ok(s.bytesRead >= size && s.bytesRead <= 4 * size, `read ${s.bytesRead} bytes of a ${size}-byte file`);
    } finally {
      db.close();
    }
    const quick = await checkFile(file, 'quick');
    assert.strictEqual(quick.ok, true, quick.result);
  });

  it('reports a damaged file as not ok, in SQLite words', async () => {
    const file = tmp.join('damaged.db');
    makeDatabase(file, 2);
    const fd = fs.openSync(file, 'r+');
    fs.writeSync(fd, Buffer.alloc(4096, 0x5a), 0, 4096, 4096 * 3); // a b-tree page of garbage
    fs.closeSync(fd);
    const native = spawnSync('sqlite3', ['-readonly', file, 'PRAGMA quick_check'], { encoding: 'utf8' });
    assert.ok(native.status !== 0 || native.stdout.trim() !== 'ok', 'native SQLite finds the damage too');
    const c = await checkFile(file, 'quick');
    assert.strictEqual(c.ok, false);
    assert.ok(c.result.length > 0);
  });

  it('is read-only: a write statement fails, the file is unchanged', async () => {
    const file = tmp.join('ro.db');
    makeDatabase(file, 1);
    const before = sha(file);
    const db = await openSnapshotFile(file);
    try {
      assert.throws(() => db.query('INSERT INTO schema_version VALUES (29)'), /readonly/);
      // Even with SQL's read-only switch turned off, a write that reaches the file is refused loudly.
      db.query('PRAGMA query_only = 0');
      assert.throws(
        () => db.query('DELETE FROM memories'),
        (e: unknown) => e instanceof BackupError && /Refused a write/.test(e.message),
      );
    } finally {
      db.close();
    }
    assert.strictEqual(sha(file), before);
  });

  it('opens a WAL-mode file as a self-contained database and leaves its header as it was', async () => {
    const file = tmp.join('walmode.db');
    const rows = makeDatabase(file, 2, { wal: true });
    assert.ok(!fs.existsSync(`${file}-wal`) || fs.statSync(`${file}-wal`).size === 0);
    fs.rmSync(`${file}-wal`, { force: true });
    fs.rmSync(`${file}-shm`, { force: true });
    assert.strictEqual(fs.readFileSync(file)[18], 2, 'the fixture is in WAL mode');
    const before = sha(file);
    const c = await checkFile(file, 'quick');
    assert.strictEqual(c.ok, true, c.result);
    assert.strictEqual(c.memories, rows);
    assert.strictEqual(sha(file), before);
    assert.ok(!fs.existsSync(`${file}-wal`) && !fs.existsSync(`${file}-shm`), 'nothing beside the file');
  });

  it('addresses pages far beyond 4 GiB: sparse databases of 8 GiB and 1 TiB', async function () {
    this.timeout(300_000);
    for (const pages of [131_080, 2 ** 24 - 8]) {
      const file = tmp.join(`sparse-${pages}.db`);
      const size = makeSparseDatabase(file, pages);
      assert.strictEqual(execFileSync('sqlite3', ['-readonly', file, 'PRAGMA quick_check']).toString().trim(), 'ok', 'native SQLite accepts the fixture');
      const db = await openSnapshotFile(file);
      try {
        const c = db.check('quick');
        assert.strictEqual(c.ok, true, c.result);
        assert.strictEqual(c.pages, pages);
        // The last leaf sits at the very end of the file.
        assert.deepStrictEqual(db.query('SELECT count(*), sum(length(x)) FROM t').rows, [[SPARSE_ROWS.length, SPARSE_ROWS.join('').length]]);
        assert.ok(db.stats().bytesRead < size / 1000, `read ${db.stats().bytesRead} of ${size}`);
      } finally {
        db.close();
      }
      fs.rmSync(file);
    }
  });

  it(`refuses a file larger than it checks (${describeMaxCheckable()}) with "not checked: larger than …"`, async () => {
    const file = tmp.join('huge.db');
    const fd = fs.openSync(file, 'w');
    fs.ftruncateSync(fd, MAX_CHECKABLE_BYTES + 65536); // sparse: no disk used
    fs.closeSync(fd);
    await rejectsCode(openSnapshotFile(file), 'TOO_LARGE', new RegExp(`not checked: larger than the ${describeMaxCheckable()}`));
  });

  it('stops a statement past its time budget, and stays usable', async () => {
    const file = tmp.join('budget.db');
    makeDatabase(file, 20);
    const db = await openSnapshotFile(file, { timeBudgetMs: 0 });
    try {
      assert.throws(
        () => db.query('PRAGMA integrity_check'),
        (e: unknown) => e instanceof BackupError && e.code === 'TIMEOUT',
      );
    } finally {
      db.close();
    }
    const again = await openSnapshotFile(file, { timeBudgetMs: 60_000 });
    try {
      assert.strictEqual(again.check('quick').ok, true);
    } finally {
      again.close();
    }
  });

  it('fails clearly on a file that is not a database', async () => {
    const file = tmp.join('text.db');
    fs.writeFileSync(file, 'hello, this is not SQLite'.repeat(1000));
    const c = await checkFile(file, 'quick');
    assert.strictEqual(c.ok, false);
    assert.match(c.result, /not a database/);
    await rejectsCode(openSnapshotFile(file), 'NOT_A_DATABASE', /not a database/);
  });
});

/**
 * Flat memory, proven in a child process given a memory limit far below the file: its
 * address space is capped with `ulimit -v` (V8's WASM trap handler is switched off, since
 * it reserves ~10 GiB of address space up front) and its JS heap with
 * --max-old-space-size. The same limits make allocating one buffer of the file's size
 * fail — what the engine did before it read lazily.
 */
describe('sql.js engine: memory stays flat', () => {
  const tmp = useTempDir('aimb-engine-mem-');

  function child(script: string, limitKiB: number | undefined): { code: number | null; out: string; err: string } {
    const file = tmp.join(`child-${Math.random().toString(16).slice(2)}.js`);
    fs.writeFileSync(file, script);
    const node = ['--disable-wasm-trap-handler', '--max-old-space-size=64', file].map((a) => `'${a}'`).join(' ');
    const sh = `${limitKiB ? `ulimit -v ${limitKiB} && ` : ''}exec '${process.execPath}' ${node}`;
    const r = spawnSync('/bin/sh', ['-c', sh], { encoding: 'utf8', timeout: 240_000 });
    return { code: r.status, out: r.stdout, err: r.stderr };
  }

  const checkScript = (db: string, mode: string) => `
    const { checkFile } = require(${JSON.stringify(engineModule)});
    const status = () => Object.fromEntries(require('fs').readFileSync('/proc/self/status', 'utf8').split('\\n').filter((l) => /^Vm(HWM|Peak)/.test(l)).map((l) => [l.split(':')[0], parseInt(l.split(':')[1], 10)]));
    checkFile(${JSON.stringify(db)}, ${JSON.stringify(mode)}).then(
      (c) => console.log(JSON.stringify({ ok: c.ok, result: c.result, pages: c.pages, ...status() })),
      (e) => { console.error(e.stack); process.exit(3); });`;

  before(function () {
    if (process.platform !== 'linux') this.skip();
    const probe = spawnSync(process.execPath, ['--disable-wasm-trap-handler', '-e', '0']);
    if (probe.status !== 0) this.skip(); // a Node without the flag: ulimit -v cannot be used with WASM
  });

  it('a 400 MB database, every page read: peak RSS of the whole process stays under 100 MB', function () {
    this.timeout(300_000);
    const db = tmp.join('dense.db');
    makeDatabase(db, 400);
    const size = fs.statSync(db).size;
    const r = child(checkScript(db, 'quick'), undefined);
    assert.strictEqual(r.code, 0, r.err);
    const o = JSON.parse(r.out.trim()) as { ok: boolean; result: string; pages: number; VmHWM: number };
    assert.strictEqual(o.ok, true, o.result);
    assert.strictEqual(o.pages, size / 4096);
    assert.ok(o.VmHWM < 100 * 1024, `peak RSS ${Math.round(o.VmHWM / 1024)} MB for a ${Math.round(size / 1e6)} MB file`);
  });

  it('an 8 GiB database checks in a process limited to 1.5 GiB of address space, where one buffer of its size cannot even be allocated', function () {
    this.timeout(300_000);
    const db = tmp.join('sparse-8g.db');
    const size = makeSparseDatabase(db, 131_080);
    const limitKiB = 1536 * 1024;
    assert.ok(size > 4 * limitKiB * 1024, 'the file is several times the limit');
    const control = child(`try { new Uint8Array(${size}); console.log('allocated'); } catch (e) { console.log('refused: ' + e.message); }`, limitKiB);
    assert.match(control.out, /^refused/, `the limit does not bite: ${control.out}${control.err}`);
    const r = child(checkScript(db, 'full'), limitKiB);
    assert.strictEqual(r.code, 0, r.err);
    const o = JSON.parse(r.out.trim()) as { ok: boolean; result: string; pages: number; VmHWM: number; VmPeak: number };
    assert.strictEqual(o.ok, true, o.result);
    assert.strictEqual(o.pages, 131_080);
    assert.ok(o.VmPeak <= limitKiB);
    assert.ok(o.VmHWM < 100 * 1024, `peak RSS ${Math.round(o.VmHWM / 1024)} MB`);
  });
});
