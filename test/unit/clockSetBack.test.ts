/**
 * A clock set back a little between two backups (NTP stepping back a clock that ran a few
 * minutes ahead): real CLI processes, the first one's clock ahead through Debian's libfaketime.
 */
import * as assert from 'assert';
import * as fs from 'fs';
import * as path from 'path';
import { parseSnapshotName } from '../../src/core/store/naming';
import { createAiMemoryDb, readMemories, seedMemory } from '../support/aiMemoryDb';
import { referenceRestore } from '../support/referenceCli';
import { runCliProcess } from '../support/reliability';
import { useTempDir } from '../support/tmp';

const LIBFAKETIME = '/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1';

describe('a clock set back a few minutes between two backups', function () {
  this.timeout(120_000);
  const tmp = useTempDir();

  it('the snapshot taken after it still sorts after the one before it: restore (ours and ai-memory\'s, by file time) takes it as the newest, list calls it newest', async function () {
    if (!fs.existsSync(LIBFAKETIME)) this.skip(); // Debian's faketime package
    const db = tmp.join('ai-memory.db');
    const dir = tmp.join('backups');
    createAiMemoryDb(db, { memories: 20 });
    // Taken while the clock ran 5 minutes ahead (under the 10 minutes that make a snapshot "future").
    const ahead = await runCliProcess(['backup', '--db', db, '--to', dir, '--json'], { cwd: tmp.path, env: { LD_PRELOAD: LIBFAKETIME, FAKETIME: '+300s' } });
    assert.strictEqual(ahead.code, 0, ahead.stderr);
    const first = JSON.parse(ahead.stdout) as { snapshot: string; created_at: string };
    // libfaketime moves the process's clock, not the kernel's, which dates the file: dated here
    // as the system clock 5 minutes ahead dated it (the file time ai-memory orders snapshots by).
    const aheadTime = new Date(Date.now() + 300_000);
    fs.utimesSync(path.join(dir, first.snapshot), aheadTime, aheadTime);
    // The clock put right; a memory written; backed up again.
    seedMemory(db, 'ns', 'after the clock was put right', 'only the second snapshot has this');
    const expected = readMemories(db);
    const right = await runCliProcess(['backup', '--db', db, '--to', dir, '--json'], { cwd: tmp.path });
    assert.strictEqual(right.code, 0, right.stderr);
    const second = JSON.parse(right.stdout) as { snapshot: string; created_at: string };
    const a = parseSnapshotName(first.snapshot);
    const b = parseSnapshotName(second.snapshot);
    assert.ok(a && b);
    assert.ok(b.time > a.time || (b.time === a.time && b.seq > a.seq), `${second.snapshot} sorts after ${first.snapshot}`);
    assert.ok(Date.parse(second.created_at) < Date.parse(first.created_at), 'the manifest keeps the clock\'s own time');
    const list = await runCliProcess(['list', '--to', dir, '--db', db, '--json'], { cwd: tmp.path });
    assert.strictEqual(list.code, 0, list.stderr);
    assert.strictEqual((JSON.parse(list.stdout) as { name: string }[])[0].name, second.snapshot, 'list: the newest is the one taken last');
    // ai-memory's own restore from the folder (its newest by file time) takes it too.
    const theirs = tmp.join('theirs.db');
    assert.strictEqual(path.basename(referenceRestore(theirs, dir).from), second.snapshot, "ai-memory's restore (newest by file time) takes the one taken last");
    assert.deepStrictEqual(readMemories(theirs), expected);
    // Restore from the folder (its newest): the database keeps the memory written after the clock was put right.
    seedMemory(db, 'ns', 'a mistake', 'to be undone by the restore');
    const r = await runCliProcess(['restore', '--db', db, '--from', dir, '--json'], { cwd: tmp.path });
    assert.strictEqual(r.code, 0, r.stderr);
    assert.strictEqual(path.basename((JSON.parse(r.stdout) as { from: string }).from), second.snapshot);
    assert.deepStrictEqual(readMemories(db), expected, 'restored to the last backup, not to the one before it');
  });
});
