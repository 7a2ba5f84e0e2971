/**
 * The folder lock on a full disk: an empty lock (no block for the owner's line) with its
 * holder's temp file as a second name. Every empty lock reads the same, so whose it is comes
 * from that second name (host and pid), never from its age alone: a live holder slowed past
 * a heartbeat keeps its lock. The locks are made here as the holder leaves them (the disk-full
 * path itself runs on a real tmpfs in the reliability suite's 'prune frees a backup folder
 * that is completely full').
 */
import * as assert from 'assert';
import { spawn } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { HOST_TAG } from '../../src/core/store/atomicFs';
import { acquireFolderLock, LOCK_NAME } from '../../src/core/store/folderLock';
import { fillTo, mountTmpfs, mountUnavailable } from '../support/reliability';
import { useTempDir } from '../support/tmp';

/** An empty lock held (as a full disk leaves it) by `pid`: the lock and its holder's temp file, one inode, dated `ageMs` ago. */
function emptyLockOf(dir: string, pid: number, ageMs: number): { lock: string; second: string } {
  const lock = path.join(dir, LOCK_NAME);
  const second = path.join(dir, `.ai-memory-backup-${HOST_TAG}-${pid}-0badf00d.lock.tmp`);
  fs.writeFileSync(second, '');
  fs.linkSync(second, lock);
  const then = new Date(Date.now() - ageMs);
  fs.utimesSync(lock, then, then);
  return { lock, second };
}

describe('folder lock: a full disk\'s empty lock is judged by whose it is', function () {
  this.timeout(30_000);
  const tmp = useTempDir();

  it('a live holder\'s empty lock is kept however old its heartbeat, and the waiter is told the folder is busy', async () => {
    const dir = tmp.join(`live-${Date.now()}`);
    fs.mkdirSync(dir);
    const holder = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { stdio: 'ignore' });
    try {
      const { lock, second } = emptyLockOf(dir, holder.pid as number, 5 * 60_000); // a heartbeat 5 minutes late (a stalled holder)
      await assert.rejects(acquireFolderLock(dir, { purpose: 'test', waitMs: 600 }), (e: Error & { code?: string }) => e.code === 'LOCKED');
      assert.ok(fs.existsSync(lock) && fs.existsSync(second), 'the live holder\'s lock is still there');
      assert.strictEqual(fs.statSync(lock).ino, fs.statSync(second).ino);
    } finally {
      holder.kill('SIGKILL');
    }
  });

  it('a dead holder\'s empty lock is taken over at once, whatever its age', async () => {
    const dir = tmp.join(`dead-${Date.now()}`);
    fs.mkdirSync(dir);
    const gone = spawn(process.execPath, ['-e', '0'], { stdio: 'ignore' });
    await new Promise((r) => gone.once('exit', r));
    const { lock } = emptyLockOf(dir, gone.pid as number, 0); // just touched: age says nothing
    const started = Date.now();
    const l = await acquireFolderLock(dir, { purpose: 'test', waitMs: 5_000 });
    assert.ok(Date.now() - started < 3_000, 'taken at once, not after a timeout');
    assert.ok(fs.readFileSync(lock, 'utf8').includes(`"pid":${process.pid}`), 'the lock is ours now');
    await l.release();
    assert.ok(!fs.existsSync(lock));
  });

  it('on a full disk: the lock is taken empty, and releasing never removes another holder\'s empty lock that replaced it', function (done) {
    const why = mountUnavailable();
    if (why) {
      this.skip(); // needs root and a tmpfs mount (the CI container has both)
      return;
    }
    void (async () => {
      const m = mountTmpfs(256 << 10);
      const holder = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { stdio: 'ignore' });
      try {
        fillTo(m.path, 0);
        const l = await acquireFolderLock(m.path, { purpose: 'test' });
        const lock = path.join(m.path, LOCK_NAME);
        assert.strictEqual(fs.readFileSync(lock, 'utf8'), '', 'a full disk: the lock is empty');
        // Judged stale elsewhere (its heartbeat late) and replaced by another holder's empty lock.
        fs.unlinkSync(lock);
        const theirs = emptyLockOf(m.path, holder.pid as number, 0);
        await l.release();
        assert.ok(fs.existsSync(theirs.lock), 'the other holder\'s empty lock stays');
        assert.deepStrictEqual(fs.readdirSync(m.path).filter((n) => n.startsWith('.ai-memory-backup-') && !n.includes(`-${holder.pid}-`)), [], 'our second name of the lock is gone');
        done();
      } catch (e) {
        done(e);
      } finally {
        holder.kill('SIGKILL');
        m.unmount();
      }
    })();
  });
});
