/**
 * Track child processes started by tests and make sure none survives the test run.
 *
 * Three layers, because a failing or interrupted test must not leave a SQLite writer
 * running (it would keep the database open, hold locks, and burn CPU for the next run):
 *  1. Tests (or helpers such as nativeWriter) stop their children explicitly.
 *  2. `killAllTracked()` is registered as a mocha ROOT after-all hook when this module is
 *     loaded by a mocha test file, and is also exported as `mochaHooks` for `--require`.
 *  3. A process 'exit' handler SIGKILLs whatever is still tracked (process.kill is
 *     synchronous, so it works inside 'exit').
 * The children themselves also exit when their IPC channel to the parent closes (see
 * nativeWriterProcess.ts), which covers the parent being SIGKILLed.
 *
 * Processes are killed by PID only; nothing is killed by name.
 */
import type { ChildProcess } from 'child_process';

interface Tracked {
  pid: number;
  label: string;
  child?: ChildProcess;
}

const tracked = new Map<number, Tracked>();
let hooksInstalled = false;

/** True when a process with this PID exists (signal 0 probes without sending anything). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM means it exists but belongs to someone else; ESRCH means it is gone.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Start tracking a child; it is untracked automatically when it exits. */
export function trackChild(child: ChildProcess, label = 'child'): void {
  installHooks();
  const pid = child.pid;
  if (pid === undefined) {
    return; // spawn failed; nothing to clean up
  }
  tracked.set(pid, { pid, label, child });
  child.once('exit', () => {
    tracked.delete(pid);
  });
}

/** Track a bare PID (e.g. a grandchild reported by a child). */
export function trackPid(pid: number, label = 'pid'): void {
  installHooks();
  tracked.set(pid, { pid, label });
}

export function untrack(pid: number): void {
  tracked.delete(pid);
}

/** PIDs currently tracked (alive or not yet reaped). */
export function trackedPids(): number[] {
  return [...tracked.keys()];
}

/**
 * Send `signal` (default SIGKILL) to every tracked process. Returns the PIDs signalled.
 * Synchronous so it can run inside a process 'exit' handler.
 */
export function killAllTracked(signal: NodeJS.Signals = 'SIGKILL'): number[] {
  const signalled: number[] = [];
  for (const t of tracked.values()) {
    try {
      process.kill(t.pid, signal);
      signalled.push(t.pid);
    } catch {
      // Already gone (ESRCH): forget it.
      tracked.delete(t.pid);
    }
  }
  return signalled;
}

/** SIGKILL all tracked processes and wait (bounded) until they are gone. */
export async function killAllTrackedAndWait(timeoutMs = 5000): Promise<void> {
  const pids = killAllTracked('SIGKILL');
  const deadline = Date.now() + timeoutMs;
  for (const pid of pids) {
    const t = tracked.get(pid);
    if (t?.child && t.child.exitCode === null && t.child.signalCode === null) {
      // Wait for the 'exit' event so the child is reaped (no zombie in `ps`).
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.max(0, deadline - Date.now()));
        t.child?.once('exit', () => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    while (isAlive(pid) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
    }
    tracked.delete(pid);
  }
}

function installHooks(): void {
  if (hooksInstalled) {
    return;
  }
  hooksInstalled = true;
  process.on('exit', () => {
    killAllTracked('SIGKILL');
  });
}

/** Root hooks for `mocha --require out/test/support/procs.js`. */
export const mochaHooks = {
  async afterAll(): Promise<void> {
    await killAllTrackedAndWait();
  },
};

// When loaded by a mocha test file (at require time, outside any describe()), `after`
// registers on the root suite, so it runs once after all tests of the whole run.
// `typeof` keeps this module usable outside mocha (e.g. from a child process).
installHooks();
if (typeof after === 'function') {
  after('kill tracked child processes', async () => {
    await killAllTrackedAndWait();
  });
}
