/**
 * The folder lock between machines whose clocks differ. Another machine's lock is judged by
 * its heartbeat (the holder touches it every 5 s); the mtime it writes is the holder's clock.
 * Here "another machine" is a real process in a UTS namespace of its own with another host
 * name (as root: `unshare --uts`), and the other clock is a real process under Debian's
 * libfaketime (`faketime` package): nothing is mocked, and the lock is made by the code that makes it.
 */
import * as assert from 'assert';
import { spawn, spawnSync, type ChildProcess } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { LOCK_NAME } from '../../src/core/store/folderLock';
import { trackChild } from '../support/procs';
import { useTempDir } from '../support/tmp';

const LOCK_MODULE = path.join(__dirname, '..', '..', 'src', 'core', 'store', 'folderLock.js');
const LIBFAKETIME = '/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1';

function unavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (unshare --uts)';
  if (!fs.existsSync(LIBFAKETIME)) return 'needs libfaketime (apt-get install faketime)';
  if (spawnSync('unshare', ['--uts', 'true']).status !== 0) return 'needs unshare --uts';
  return undefined;
}

/** The environment of a process whose clock is `offset` off ours (libfaketime's "+120s"): preloaded into the process itself, so its pid is the process's. */
function clockEnv(offset: string): NodeJS.ProcessEnv {
  return { ...process.env, LD_PRELOAD: LIBFAKETIME, FAKETIME: offset };
}

/** Reads a child's stdout until a line matches; the line. */
function lineFrom(child: ChildProcess, re: RegExp, what: string, ms = 20_000): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => reject(new Error(`no ${what} within ${ms} ms: ${buf}`)), ms);
    child.stdout?.on('data', (d: Buffer) => {
      buf += d.toString();
      const line = buf.split('\n').find((l) => re.test(l));
      if (line) {
        clearTimeout(timer);
        resolve(line);
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`exited ${code} before ${what}: ${buf}`));
    });
  });
}

/** A holder of `dir`'s lock on "another machine" (host name `otherbox`), its clock `offset` (faketime's -f, e.g. '+3600s'). */
function otherMachineHolder(dir: string, offset: string): ChildProcess {
  const script = `const { acquireFolderLock } = require(${JSON.stringify(LOCK_MODULE)});
acquireFolderLock(${JSON.stringify(dir)}, { purpose: 'backup', waitMs: 0 }).then(() => console.log('held'), (e) => { console.error(e); process.exit(3); });
setInterval(() => {}, 1000);`;
  // unshare and sh exec: the child's pid is the holder's.
  const child = spawn('unshare', ['--uts', 'sh', '-c', 'hostname otherbox && LD_PRELOAD="$0" exec "$1" -e "$2"', LIBFAKETIME, process.execPath, script], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...clockEnv(offset), LD_PRELOAD: '' },
  });
  trackChild(child, 'lock holder on another machine');
  return child;
}

interface WaitOutcome {
  code?: string;
  ms: number;
  got: boolean;
}

/** A waiter on this machine whose clock is `offset` off (faketime -f), trying for `waitMs`. */
function waiterWithClock(dir: string, offset: string, waitMs: number): Promise<WaitOutcome> {
  const script = `const { performance } = require('perf_hooks');
const { acquireFolderLock } = require(${JSON.stringify(LOCK_MODULE)});
const t0 = performance.now();
acquireFolderLock(${JSON.stringify(dir)}, { purpose: 'backup', waitMs: ${waitMs} }).then(
  async (l) => { const ms = performance.now() - t0; await l.release(); console.log(JSON.stringify({ got: true, ms })); },
  (e) => console.log(JSON.stringify({ got: false, code: e.code, ms: performance.now() - t0 })));`;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'], env: clockEnv(offset) });
    trackChild(child, 'lock waiter');
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.once('exit', () => {
      try {
        resolve(JSON.parse(out.trim().split('\n').pop() ?? '') as WaitOutcome);
      } catch {
        reject(new Error(`waiter said: ${out}`));
      }
    });
  });
}

describe('folder lock: machines whose clocks differ', function () {
  this.timeout(150_000);
  const tmp = useTempDir();

  it('a live holder on another machine keeps its lock from a waiter whose clock is two minutes ahead', async function () {
    const why = unavailable();
    if (why) this.skip();
    const dir = tmp.join('shared');
    fs.mkdirSync(dir);
    const holder = otherMachineHolder(dir, '+0');
    try {
      await lineFrom(holder, /^held$/, 'the holder\'s lock');
      const lock = path.join(dir, LOCK_NAME);
      const text = fs.readFileSync(lock, 'utf8');
      assert.match(text, /"hostname":"otherbox"/);
      // Its heartbeat runs (every 5 s); by the waiter's clock, 2 minutes ahead, each beat is 2 minutes old.
      const r = await waiterWithClock(dir, '+120s', 3_000);
      assert.strictEqual(r.got, false, `the waiter took a live holder's lock after ${Math.round(r.ms)} ms`);
      assert.strictEqual(r.code, 'LOCKED');
      assert.strictEqual(fs.readFileSync(lock, 'utf8'), text, 'the holder\'s lock is still there, its own');
      assert.strictEqual(holder.exitCode, null, 'the holder still runs');
    } finally {
      holder.kill('SIGKILL');
    }
  });

  it('a dead holder on another machine whose clock was an hour ahead: its lock is taken over once its heartbeat has stood still for a minute', async function () {
    const why = unavailable();
    if (why) this.skip();
    const dir = tmp.join('shared-dead');
    fs.mkdirSync(dir);
    const holder = otherMachineHolder(dir, '+3600s');
    await lineFrom(holder, /^held$/, 'the holder\'s lock');
    await new Promise((r) => setTimeout(r, 6_000)); // one heartbeat: the lock now bears the holder's clock
    holder.kill('SIGKILL'); // a crash (or a power cut) on that machine: its lock stays, dated an hour ahead of us
    await new Promise((r) => holder.once('exit', r));
    const lock = path.join(dir, LOCK_NAME);
    assert.ok(fs.statSync(lock).mtimeMs > Date.now() + 30 * 60_000, 'the lock is dated by the holder\'s clock');
    // By our clock the lock is not even written yet: judged by age, it would stop every waiter for an hour.
    const r = await waiterWithClock(dir, '+0', 5_000);
    assert.strictEqual(r.got, true, `the dead holder's lock was not taken over (${r.code} after ${Math.round(r.ms)} ms)`);
    assert.ok(r.ms >= 55_000, `taken over only once its heartbeat stood still for a minute (${Math.round(r.ms)} ms)`);
    assert.ok(!fs.existsSync(lock), 'the waiter released it');
  });
});
