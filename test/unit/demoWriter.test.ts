/**
 * The demo's live writer (scripts/demo-writer.mjs, `npm start`) behaves like a server the
 * user restarts after a restore (issue 15 #6): when "Restore Anyway" replaces the database
 * under it, it starts again on the restored file instead of writing into the kept
 * pre-restore copy, so later backups see its changes.
 */
import * as assert from 'assert';
import { fork } from 'child_process';
import * as path from 'path';
import { runBackup } from '../../src/core/ops/backup';
import { runRestore } from '../../src/core/ops/restore';
import { createAiMemoryDb, readMemories } from '../support/aiMemoryDb';
import { trackChild } from '../support/procs';
import { useTempDir } from '../support/tmp';

const script = path.resolve(__dirname, '..', '..', '..', 'scripts', 'demo-writer.mjs');

describe('demo writer (npm start)', () => {
  const tmp = useTempDir();

  it('restarts on the restored file when a restore replaces the database under it', async function () {
    this.timeout(60_000);
    const db = tmp.join('memories.db');
    createAiMemoryDb(db, { memories: 10 });
    const snap = await runBackup({ dbPath: db, backupDir: tmp.join('backups') });
    const child = fork(script, [db, '10'], { stdio: ['ignore', 'pipe', 'pipe', 'ipc'] });
    trackChild(child, 'demo writer');
    let out = '';
    child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
    const messages: { type: string; writerPid?: number }[] = [];
    const next = (type: string, ms: number) =>
      new Promise<{ type: string; writerPid?: number }>((resolve, reject) => {
        const found = messages.find((m) => m.type === type);
        if (found) return resolve(found);
        const t = setTimeout(() => reject(new Error(`no "${type}" from the demo writer within ${ms} ms; output: ${out}`)), ms);
        child.on('message', (m: { type: string }) => {
          if (m.type === type) {
            clearTimeout(t);
            resolve(m);
          }
        });
      });
    child.on('message', (m: { type: string }) => messages.push(m));
    try {
      const ready = await next('ready', 30_000);
      const r = await runRestore({ dbPath: db, from: snap.snapshotPath, force: true });
      assert.strictEqual(r.status, 'restored');
      const restarted = await next('restarted', 15_000);
      assert.notStrictEqual(restarted.writerPid, ready.writerPid, 'a new writer process');
      const base = readMemories(snap.snapshotPath).length;
      const deadline = Date.now() + 15_000;
      while (readMemories(db).length <= base) {
        if (Date.now() > deadline) assert.fail(`the restored database got no new memories; output: ${out}`);
        await new Promise((res) => setTimeout(res, 200));
      }
    } finally {
      child.kill('SIGTERM');
      await new Promise((res) => (child.exitCode !== null || child.signalCode !== null ? res(undefined) : child.once('exit', res)));
    }
  });
});
