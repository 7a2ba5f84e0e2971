/**
 * "Is the ai-memory server (or anything else) using this database right now?"
 *
 * On Linux the answer is exact for SQLite: a connection in WAL mode holds a shared POSIX
 * lock on its `-shm` file for as long as it is open (the "DMS" byte, see
 * https://www.sqlite.org/walformat.html#the_wal_index_file_format), and any connection in
 * a transaction locks the database file itself; both show in /proc/locks by device and
 * inode. We also look for processes holding the files open (/proc/<pid>/fd). A `-wal` or
 * `-shm` left behind by a server that stopped or crashed carries no lock and no open
 * descriptor, so it does not count as "in use".
 *
 * Elsewhere it is best effort: `lsof` on macOS and other Unixes; on Windows a database
 * open in another process cannot be renamed, so the restore's first move fails safely.
 */
import { execFile } from 'node:child_process';
import { promises as fsp, readdirSync, readlinkSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { resolvedDbPathOr, SIDECARS } from '../sqlite/dbFiles';

export interface Holder {
  pid: number;
  command: string;
  /** Which file: the database, its -wal, its -shm. */
  file: string;
  how: 'lock' | 'open';
}

interface FileId {
  path: string;
  major: bigint;
  minor: bigint;
  ino: bigint;
}

/** glibc's dev_t encoding (gnu_dev_major / gnu_dev_minor). */
function splitDev(dev: bigint): { major: bigint; minor: bigint } {
  return {
    major: ((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn),
    minor: (dev & 0xffn) | ((dev >> 12n) & ~0xffn),
  };
}

async function fileId(path: string): Promise<FileId | undefined> {
  try {
    const st = await fsp.stat(path, { bigint: true });
    return { path, ino: st.ino, ...splitDev(st.dev) };
  } catch {
    return undefined;
  }
}

/**
 * The ids of the files that exist, a few stats at a time: a prune of a big folder asks about
 * every snapshot it deletes with its sidecars (17,520 snapshots: 70,000 paths), and one
 * promise per path at once held them all in memory together (hundreds of MB).
 */
async function fileIds(paths: string[]): Promise<FileId[]> {
  const ids: FileId[] = [];
  let next = 0;
  const worker = async () => {
    while (next < paths.length) {
      const id = await fileId(paths[next++]);
      if (id) ids.push(id);
    }
  };
  await Promise.all(Array.from({ length: Math.min(32, paths.length) }, worker));
  return ids;
}

async function commandOf(pid: number): Promise<string> {
  try {
    const cmdline = (await fsp.readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0').filter(Boolean);
    // Another process's arguments may hold newlines or terminal escapes: one plain line of them.
    if (cmdline.length) return cmdline.join(' ').replace(/[\p{Cc}\s]+/gu, ' ').trim().slice(0, 200);
  } catch {
    // process gone, or not ours to read
  }
  try {
    return (await fsp.readFile(`/proc/${pid}/comm`, 'utf8')).trim();
  } catch {
    return 'unknown';
  }
}

/** Parses /proc/locks into (pid, major, minor, inode) rows. Exported for tests. */
export function parseProcLocks(text: string): { pid: number; major: bigint; minor: bigint; ino: bigint }[] {
  const rows = [];
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/).filter((x) => x !== '->');
    // "1: POSIX ADVISORY READ 1234 08:01:56789 128 128"
    if (f.length < 6) continue;
    const m = /^([0-9a-f]+):([0-9a-f]+):(\d+)$/i.exec(f[5]);
    if (!m) continue;
    rows.push({ pid: Number(f[4]), major: BigInt(`0x${m[1]}`), minor: BigInt(`0x${m[2]}`), ino: BigInt(m[3]) });
  }
  return rows;
}

async function linuxHolders(ids: FileId[]): Promise<Holder[]> {
  const found = new Map<string, Holder>();
  const add = async (pid: number, file: string, how: Holder['how']) => {
    if (pid === process.pid) return;
    const key = `${pid}:${file}`;
    if (found.has(key)) return;
    found.set(key, { pid, file, how, command: pid > 0 ? await commandOf(pid) : 'unknown (open file description lock)' });
  };
  try {
    const locks = parseProcLocks(await fsp.readFile('/proc/locks', 'utf8'));
    // By device and inode: one look per lock, not a search of every file (thousands in a prune).
    const byId = new Map(ids.map((i) => [`${i.major}:${i.minor}:${i.ino}`, i]));
    for (const l of locks) {
      const id = byId.get(`${l.major}:${l.minor}:${l.ino}`);
      if (id) await add(l.pid, id.path, 'lock');
    }
  } catch {
    // /proc/locks unreadable (unusual container): fall back to the fd scan alone
  }
  // Open descriptors: catches idle rollback-mode connections, which hold no lock.
  // /proc answers from kernel memory, never the disk, so it is read synchronously: one
  // thread-pool round trip per descriptor made this scan 5× slower (20 ms for a few hundred
  // descriptors). The event loop gets a turn after every process, so it is never held long.
  const targets = new Set(ids.map((i) => i.path));
  // A file system that ignores case (FAT/exFAT, SMB, casefold) names an open file as its
  // opener spelled it: a server that opened WORK/MEMORY.DB holds Work/Memory.db, and was
  // missed (restore replaced the database under it). Such a name is read as the folder
  // stores it (resolvedDbPathOr) before it is compared.
  const folded = new Map(ids.map((i) => [i.path.toLowerCase(), i.path]));
  const stored = new Map<string, Promise<string>>();
  const storedOf = (p: string) => stored.get(p) ?? (stored.set(p, resolvedDbPathOr(p)), stored.get(p) as Promise<string>);
  let pids: string[];
  try {
    pids = readdirSync('/proc').filter((n) => /^\d+$/.test(n));
  } catch {
    return [...found.values()];
  }
  for (const p of pids) {
    const pid = Number(p);
    if (pid === process.pid) continue;
    const hits = new Set<string>();
    const maybe = new Map<string, string>(); // open name → the file of ours it may be
    try {
      for (const fd of readdirSync(`/proc/${p}/fd`)) {
        try {
          const target = readlinkSync(`/proc/${p}/fd/${fd}`);
          if (targets.has(target)) hits.add(target);
          else if (folded.has(target.toLowerCase())) maybe.set(target, folded.get(target.toLowerCase()) as string);
        } catch {
          // closed meanwhile
        }
      }
    } catch {
      // not ours to look at, or gone
    }
    for (const [open, ours] of maybe) if ((await storedOf(open)) === (await storedOf(ours))) hits.add(ours);
    for (const hit of hits) await add(pid, hit, 'open');
    await new Promise((r) => setImmediate(r));
  }
  return [...found.values()];
}

function lsofHolders(paths: string[]): Promise<Holder[]> {
  return new Promise((resolve) => {
    execFile('lsof', ['-F', 'pcn', '--', ...paths], { timeout: 5000 }, (_err, stdout) => {
      // lsof exits 1 when nothing has the files open; stdout is what matters.
      const out: Holder[] = [];
      let pid = 0;
      let command = '';
      for (const line of String(stdout ?? '').split('\n')) {
        if (line.startsWith('p')) pid = Number(line.slice(1));
        else if (line.startsWith('c')) command = line.slice(1);
        else if (line.startsWith('n') && pid && pid !== process.pid) out.push({ pid, command, file: line.slice(1), how: 'open' });
      }
      resolve(out);
    });
  });
}

/**
 * Which of `files` (each with its -wal, -shm, -journal) a process has locked or open, in one
 * look at /proc: the files named as given (a hit on a sidecar names its main file).
 */
export async function filesInUse(files: string[]): Promise<Map<string, Holder[]>> {
  const out = new Map<string, Holder[]>();
  if (!files.length || process.platform === 'win32') return out;
  // By their real paths: /proc/<pid>/fd and lsof name a file so, and a backup folder reached
  // through a symbolic link (or macOS's /var → /private/var) named by its link matched no descriptor.
  const realDirs = new Map<string, string>();
  for (const d of new Set(files.map((f) => dirname(f)))) realDirs.set(d, await fsp.realpath(d).catch(() => d));
  const owner = new Map<string, string>();
  for (const f of files) {
    const real = join(realDirs.get(dirname(f)) ?? dirname(f), basename(f));
    for (const x of ['', ...SIDECARS]) owner.set(real + x, f);
  }
  let holders: Holder[];
  if (process.platform === 'linux') {
    const ids = await fileIds([...owner.keys()]);
    holders = ids.length ? await linuxHolders(ids) : [];
  } else {
    const existing = [];
    for (const p of owner.keys()) if (await fileId(p)) existing.push(p);
    holders = existing.length ? await lsofHolders(existing) : [];
  }
  for (const h of holders) {
    const f = owner.get(h.file);
    if (f) out.set(f, [...(out.get(f) ?? []), h]);
  }
  return out;
}

/** Who has `dbPath` (or its -wal / -shm) locked or open. Empty when nobody, or when we cannot tell. */
export async function findHolders(dbPath: string): Promise<Holder[]> {
  // The one sidecar set (dbFiles.ts): whatever SQLite may have open beside the database.
  const paths = [dbPath, ...SIDECARS.map((x) => dbPath + x)];
  if (process.platform === 'linux') {
    const ids = (await Promise.all(paths.map(fileId))).filter((x): x is FileId => x !== undefined);
    if (!ids.length) return [];
    return linuxHolders(ids);
  }
  if (process.platform === 'win32') return [];
  const existing = [];
  for (const p of paths) if (await fileId(p)) existing.push(p);
  return existing.length ? lsofHolders(existing) : [];
}

export function describeHolders(holders: Holder[]): string {
  const byPid = new Map<number, Holder>();
  for (const h of holders) if (!byPid.has(h.pid)) byPid.set(h.pid, h);
  return [...byPid.values()].map((h) => (h.pid > 0 ? `pid ${h.pid} (${h.command})` : h.command)).join(', ');
}

/**
 * "node (pid 25716)": the program's name and pid, short enough for a headline; the full
 * command lines are in `describeHolders`. The name is the first word of the command line
 * without its folder (lsof gives the short name already).
 */
export function nameHolders(holders: Holder[]): string {
  const byPid = new Map<number, Holder>();
  for (const h of holders) if (!byPid.has(h.pid)) byPid.set(h.pid, h);
  return [...byPid.values()]
    .map((h) => {
      if (h.pid <= 0) return h.command;
      const program = (h.command.split(' ')[0] ?? '').split(/[\\/]/).pop() || 'a process';
      return `${program} (pid ${h.pid})`;
    })
    .join(', ');
}
