// Every process the harness starts is registered here and stopped by its own PID (and, for
// group leaders, its process group), also on failure, timeout, SIGINT/SIGTERM and exit.
// Nothing is ever killed by name.
import { readdirSync, readFileSync } from 'node:fs';

/** @typedef {{ pid: number, name: string, group: boolean }} Tracked */

/** @type {Map<number, Tracked>} */
const tracked = new Map();
let handlersInstalled = false;

/** Parent pid and state of a process from /proc/<pid>/stat, or undefined when it is gone. */
function procStat(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Field 2 (comm) is in parentheses and may contain spaces; fields after it are plain.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { state: rest[0], ppid: Number(rest[1]), pgid: Number(rest[2]) };
  } catch {
    return undefined;
  }
}

/** True while the process exists and is not a zombie. */
export function isAlive(pid) {
  const stat = procStat(pid);
  return stat !== undefined && stat.state !== 'Z' && stat.state !== 'X';
}

/** All descendants of `pid` (children, grandchildren, …), read from /proc. */
export function descendants(pid) {
  const children = new Map();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = procStat(Number(entry));
    if (!stat) continue;
    if (!children.has(stat.ppid)) children.set(stat.ppid, []);
    children.get(stat.ppid).push(Number(entry));
  }
  const out = [];
  const queue = [pid];
  while (queue.length) {
    for (const child of children.get(queue.shift()) ?? []) {
      out.push(child);
      queue.push(child);
    }
  }
  return out;
}

/** Members of process group `pgid`, read from /proc. */
function groupMembers(pgid) {
  const out = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = procStat(Number(entry));
    if (stat && stat.pgid === pgid && stat.state !== 'Z') out.push(Number(entry));
  }
  return out;
}

function signal(pid, sig) {
  try {
    process.kill(pid, sig);
  } catch {
    /* already gone */
  }
}

/** Registers a process (a group leader when spawned with `detached: true`). */
export function track(pid, name, { group = false } = {}) {
  installHandlers();
  tracked.set(pid, { pid, name, group });
}

/** Everything `pid` stands for: its descendants and, for a group leader, its group. */
function targets({ pid, group }) {
  const pids = new Set([pid, ...descendants(pid)]);
  if (group) for (const p of groupMembers(pid)) pids.add(p);
  return pids;
}

/**
 * Stops a tracked process: SIGTERM to its group and every descendant, SIGKILL to whatever
 * is left after `graceMs`. Resolves when all of them are gone.
 */
export async function stop(pid, { graceMs = 5000 } = {}) {
  const entry = tracked.get(pid) ?? { pid, name: String(pid), group: false };
  const pids = targets(entry);
  if (entry.group) signal(-pid, 'SIGTERM');
  for (const p of pids) signal(p, 'SIGTERM');
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline && [...pids].some(isAlive)) await new Promise((r) => setTimeout(r, 100));
  const left = [...pids, ...descendants(pid)].filter(isAlive);
  if (left.length) {
    if (entry.group) signal(-pid, 'SIGKILL');
    for (const p of left) signal(p, 'SIGKILL');
    const killDeadline = Date.now() + 5000;
    while (Date.now() < killDeadline && left.some(isAlive)) await new Promise((r) => setTimeout(r, 50));
  }
  tracked.delete(pid);
  const survivors = [...pids].filter(isAlive);
  if (survivors.length) throw new Error(`${entry.name} (pid ${pid}): processes still alive after SIGKILL: ${survivors.join(', ')}`);
}

/**
 * Processes whose environment contains `marker` (a session's temp folder). Every process a
 * session starts inherits that folder in its environment (HOME, XDG_ dirs, TMPDIR,
 * AI_MEMORY_TEST_RESULT), so this finds even those that left the process tree (setsid,
 * double fork — chromium's crashpad handler does). The command line is not looked at, so a
 * `tail -f` of a session log started by someone else is not ours.
 */
export function processesWithMarker(marker) {
  const out = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    let text = '';
    try {
      text = readFileSync(`/proc/${entry}/environ`, 'latin1');
    } catch {
      continue;
    }
    if (text.includes(marker) && isAlive(Number(entry))) out.push(Number(entry));
  }
  return out;
}

/** SIGKILLs every process carrying `marker`; returns the pids it had to kill. */
export async function killStragglers(marker) {
  const pids = processesWithMarker(marker);
  for (const p of pids) signal(p, 'SIGKILL');
  const deadline = Date.now() + 5000;
  while (Date.now() < deadline && pids.some(isAlive)) await new Promise((r) => setTimeout(r, 50));
  return pids;
}

/** Synchronous last resort (process 'exit'): SIGKILL everything still tracked. */
export function killAllSync() {
  for (const entry of tracked.values()) {
    const pids = targets(entry);
    if (entry.group) signal(-entry.pid, 'SIGKILL');
    for (const p of pids) signal(p, 'SIGKILL');
  }
  tracked.clear();
}

/** Stops everything still tracked, newest first. */
export async function stopAll() {
  for (const pid of [...tracked.keys()].reverse()) {
    try {
      await stop(pid);
    } catch (err) {
      process.stderr.write(`[harness] ${err.message}\n`);
    }
  }
}

/** Callbacks run on SIGINT/SIGTERM before the tracked processes are stopped. */
const interruptHooks = new Set();
export function onInterrupt(fn) {
  interruptHooks.add(fn);
  return () => interruptHooks.delete(fn);
}

function installHandlers() {
  if (handlersInstalled) return;
  handlersInstalled = true;
  process.on('exit', killAllSync);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.on(sig, async () => {
      process.stderr.write(`\n[harness] ${sig}: stopping ${tracked.size} process(es) started by this run\n`);
      const timer = setTimeout(() => {
        killAllSync();
        process.exit(130);
      }, 15_000);
      for (const fn of interruptHooks) {
        try {
          await fn();
        } catch {
          /* best effort */
        }
      }
      await stopAll();
      clearTimeout(timer);
      process.exit(sig === 'SIGINT' ? 130 : 143);
    });
  }
}
