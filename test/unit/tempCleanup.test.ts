/**
 * Whole copies of a database in the system's temp folder (the live reads behind the schema
 * guard and the memory views) never outlive a process that died: the next one removes them,
 * and leaves a running process's alone.
 */
import * as assert from 'assert';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import { tmpdir } from 'os';
import * as path from 'path';
import { cleanStaleTemps, tempPath } from '../../src/core/store/atomicFs';
import { consistentTempCopy } from '../../src/core/store/fileSink';
import { createAiMemoryDb } from '../support/aiMemoryDb';
import { useTempDir } from '../support/tmp';

describe('temp copies in the system temp folder', () => {
  const tmp = useTempDir();

  it("a copy left by a process that died is removed by the next one; a running process's is kept", async () => {
    const db = tmp.join('ai-memory.db');
    createAiMemoryDb(db, { memories: 5 });
    // A pid that no longer runs: a child that has exited (and been reaped).
    const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' }).stdout;
    const name = (pid: number) => path.basename(tempPath(tmpdir(), 'schema')).replace(`-${process.pid}-`, `-${pid}-`);
    const left = path.join(tmpdir(), name(Number(dead)));
    const live = path.join(tmpdir(), name(process.ppid));
    fs.writeFileSync(left, 'a whole database', { mode: 0o600 });
    fs.writeFileSync(live, 'in use', { mode: 0o600 });
    // Both look a day old: only a dead process's copy goes, whatever its age.
    const old = new Date(Date.now() - 2 * 24 * 3600_000);
    fs.utimesSync(left, old, old);
    fs.utimesSync(live, old, old);
    try {
      const sink = await consistentTempCopy(db, 'schema');
      await sink.discard();
      assert.ok(!fs.existsSync(left), 'the dead process\'s copy was removed');
      assert.ok(fs.existsSync(live), 'the running process\'s copy was kept');
    } finally {
      fs.rmSync(left, { force: true });
      fs.rmSync(live, { force: true });
    }
  });
  it("a running pull's work folder is kept while its download writes into it, though the folder itself is a day old", async () => {
    const dir = tmp.join('backups');
    fs.mkdirSync(dir);
    // Named as a running process's (our parent) work folder; made 25 h ago, its snapshot file written to just now.
    const work = path.join(dir, path.basename(tempPath(dir, 'pull')).replace(`-${process.pid}-`, `-${process.ppid}-`));
    fs.mkdirSync(work);
    fs.writeFileSync(path.join(work, 'ai-memory-2025-01-01T00-00-00Z.db'), 'half downloaded');
    const old = new Date(Date.now() - 25 * 3600_000);
    fs.utimesSync(work, old, old);
    assert.deepStrictEqual(await cleanStaleTemps(dir), []);
    assert.ok(fs.existsSync(work), 'the live download was kept');
    // Nothing written in it for a day: removed (another machine's, or a reused pid).
    fs.utimesSync(path.join(work, 'ai-memory-2025-01-01T00-00-00Z.db'), old, old);
    assert.strictEqual((await cleanStaleTemps(dir)).length, 1);
    assert.ok(!fs.existsSync(work));
  });
});
