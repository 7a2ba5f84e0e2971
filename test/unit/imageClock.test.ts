/**
 * The hot read's patience under a busy writer when the wall clock is set back meanwhile
 * (NTP stepping it back): a real process whose clock libfaketime steps back an hour after
 * its first read, and a native SQLite writer (better-sqlite3) that makes every read race a
 * checkpoint.
 */
import * as assert from 'assert';
import { spawn } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { trackChild } from '../support/procs';
import { useTempDir } from '../support/tmp';

const LIBFAKETIME = '/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1';
const OUT = path.join(__dirname, '..', '..');

describe('hot read: a clock set back while a busy writer makes it retry', function () {
  this.timeout(60_000);
  const tmp = useTempDir();

  it('gives up ("database too busy") when its patience is spent by the steady clock, not an hour later', async function () {
    if (!fs.existsSync(LIBFAKETIME)) this.skip(); // Debian's faketime package
    const spec = tmp.join('faketime.spec');
    fs.writeFileSync(spec, '+0\n');
    const script = `
const fs = require('fs');
const { performance } = require('perf_hooks');
const { captureImage } = require(${JSON.stringify(path.join(OUT, 'test', 'support', 'imageRef.js'))});
const { openNative } = require(${JSON.stringify(path.join(OUT, 'test', 'support', 'sqlite.js'))});
const file = ${JSON.stringify(tmp.join('w.db'))};
const db = openNative(file);
db.pragma('journal_mode = WAL');
db.pragma('wal_autocheckpoint = 0');
db.exec('CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)');
for (let i = 0; i < 200; i++) db.prepare('INSERT INTO t(v) VALUES (?)').run('row ' + i + ' ' + 'y'.repeat(400));
const t0 = performance.now();
let first = true;
captureImage(file, {
  maxAttempts: 3,
  patienceMs: 2000,
  hook: async (point) => {
    if (point !== 'after-stream' && point !== 'after-catch-up') return;
    if (first) {
      first = false;
      fs.writeFileSync(${JSON.stringify(spec)}, '-3600s\\n'); // NTP steps the clock back an hour
    }
    db.prepare('INSERT INTO t(v) VALUES (?)').run('again');
    db.pragma('wal_checkpoint(PASSIVE)');
  },
}).then(
  () => console.log(JSON.stringify({ ok: true, ms: performance.now() - t0 })),
  (e) => console.log(JSON.stringify({ ok: false, code: e.code, ms: performance.now() - t0, clockBack: Date.now() < Date.parse(${JSON.stringify(new Date().toISOString())}) })),
);`;
    const child = spawn(process.execPath, ['-e', script], {
      stdio: ['ignore', 'pipe', 'inherit'],
      // The wall clock from the spec file, read at every call; the steady clock left alone.
      env: { ...process.env, LD_PRELOAD: LIBFAKETIME, FAKETIME_TIMESTAMP_FILE: spec, FAKETIME_NO_CACHE: '1', FAKETIME_DONT_FAKE_MONOTONIC: '1', DONT_FAKE_MONOTONIC: '1' },
    });
    trackChild(child, 'hot read under a clock set back');
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const ended = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), 30_000);
      child.once('exit', () => {
        clearTimeout(timer);
        resolve(true);
      });
    });
    if (!ended) child.kill('SIGKILL');
    assert.ok(ended, 'the read was still retrying 30 s later (its patience is 2 s): it waited for the wall clock to come back');
    const r = JSON.parse(out.trim().split('\n').pop() ?? '{}') as { ok: boolean; code?: string; ms: number; clockBack?: boolean };
    assert.strictEqual(r.clockBack, true, 'the clock was set back during the read');
    assert.strictEqual(r.ok, false);
    assert.strictEqual(r.code, 'DB_BUSY');
    assert.ok(r.ms < 15_000, `gave up after ${Math.round(r.ms)} ms`);
  });
});
