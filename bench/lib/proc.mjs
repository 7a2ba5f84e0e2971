// Timed child processes: wall time from spawn to exit (hrtime, in this process) and peak
// RSS from GNU time (`/usr/bin/time -f %M`, the largest resident set of the command).
// Every child is a process-group leader registered with test/vscode/processes.mjs, so an
// interrupted run stops exactly the processes it started, by PID.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stop, track } from '../../test/vscode/processes.mjs';

export const GNU_TIME = '/usr/bin/time';
const timeDir = mkdtempSync(join(tmpdir(), 'aimb-bench-time-'));
process.on('exit', () => rmSync(timeDir, { recursive: true, force: true }));
let seq = 0;

/**
 * Runs argv[0] with argv[1..] under GNU time. Resolves { ms, rssKB, code, stdout, stderr }.
 * Rejects only when the process cannot be started or `timeoutMs` passes.
 */
export function timed(argv, { cwd, env, timeoutMs = 30 * 60_000 } = {}) {
  const tfile = join(timeDir, `t${++seq}`);
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const child = spawn(GNU_TIME, ['-f', '%M', '-o', tfile, ...argv], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    track(child.pid, argv.join(' ').slice(0, 80), { group: true });
    const timer = setTimeout(() => {
      stop(child.pid).catch(() => {});
      reject(new Error(`timed out after ${timeoutMs / 1000} s: ${argv.join(' ')}`));
    }, timeoutMs);
    child.on('close', (code) => {
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      clearTimeout(timer);
      stop(child.pid).catch(() => {}); // nothing left normally; forgets the pid
      let rssKB = NaN;
      try {
        // GNU time writes "Command exited with non-zero status N" before the format line.
        const lines = readFileSync(tfile, 'utf8').trim().split('\n');
        rssKB = Number(lines.at(-1));
        rmSync(tfile, { force: true });
      } catch {
        /* no rusage (killed) */
      }
      resolve({ ms, rssKB, code, stdout, stderr });
    });
  });
}

/** Runs a command to completion (untimed); throws with its output on failure. */
export function run(cmd, args, { cwd, env, input } = {}) {
  const r = spawnSync(cmd, args, { cwd, env, input, encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (exit ${r.status}):\n${r.stdout}${r.stderr}`);
  return r.stdout;
}

/** True when this process may drop the page cache (root on a VM; usually not in a container). */
export function canDropCaches() {
  try {
    spawnSync('sync');
    writeFileSync('/proc/sys/vm/drop_caches', '3');
    return true;
  } catch {
    return false;
  }
}

/**
 * Puts the machine in the same state before every timed command: other work's burst over
 * (waitQuiet), pending writes flushed
 * (so one command's write-back never lands in the next one's time), then either the page
 * cache dropped (cold: inputs come from the disk) or the inputs read once (warm).
 */
export async function settle({ cold, warmFiles = [] }) {
  const quiet = quietOptions.maxWaitMs > 0 ? await waitQuiet(quietOptions) : { busy: NaN, waitedMs: 0, quiet: true };
  quietLog.push(quiet);
  spawnSync('sync');
  if (cold) {
    writeFileSync('/proc/sys/vm/drop_caches', '3');
  } else {
    for (const f of warmFiles) spawnSync('cat', [f], { stdio: ['ignore', 'ignore', 'ignore'] });
  }
  return quiet;
}

/** How settle() waits for a quiet machine (maxWaitMs 0: it doesn't). */
export const quietOptions = { threshold: 0.25, windowMs: 300, maxWaitMs: 20_000 };
/** Every wait, for the report. */
export const quietLog = [];

function cpuTimes() {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const idle = f[3] + (f[4] ?? 0); // idle + iowait
  return { total: f.reduce((a, b) => a + b, 0), idle };
}

/** Share of all cores busy over `windowMs` (0..1), from /proc/stat. */
export async function cpuBusy(windowMs = 300) {
  const a = cpuTimes();
  await new Promise((r) => setTimeout(r, windowMs));
  const b = cpuTimes();
  const total = b.total - a.total;
  return total > 0 ? 1 - (b.idle - a.idle) / total : 0;
}

/**
 * This machine is shared: waits (up to `maxWaitMs`) until other work leaves the CPUs
 * mostly idle, so a command does not start in the middle of someone else's burst.
 * Returns the last busy share seen, how long it waited and whether it gave up.
 */
export async function waitQuiet({ threshold = 0.2, windowMs = 300, maxWaitMs = 120_000 } = {}) {
  const t0 = Date.now();
  let busy = await cpuBusy(windowMs);
  while (busy > threshold && Date.now() - t0 < maxWaitMs) {
    await new Promise((r) => setTimeout(r, 700));
    busy = await cpuBusy(windowMs);
  }
  return { busy, waitedMs: Date.now() - t0, quiet: busy <= threshold };
}
