/**
 * The copies a restore keeps (`<stem>.pre-restore-<UTC stamp>[_N].db` — for a database not
 * named `.db`, its own extension: naming.ts preRestoreName — with their `-wal`,
 * `-shm` and `-journal`) beside the database: listed newest first by the time in their name, and pruned to
 * the newest `keep` — never the newest one, whatever `keep` says, and never a file whose
 * name is not exactly that shape for this database.
 */
import { promises as fsp } from 'node:fs';
import { basename, dirname, extname, join } from 'node:path';
import { errorMessage } from '../common/errors';
import { fsyncDir } from './atomicFs';
import { FUTURE_SKEW_MS } from './catalog';
import { SIDECARS } from '../sqlite/dbFiles';

export interface PreRestoreCopy {
  name: string;
  path: string;
  /** UTC ms from the name. */
  time: number;
  seq: number;
  size: number;
  /**
   * Its `-wal` / `-shm` / `-journal` (dbFiles.ts SIDECARS): restore keeps every sidecar SQLite
   * may open with the copy — a damaged database's hot `-journal` too — so they go with it.
   */
  sidecars: string[];
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * Newest first by the time in the name; a copy named in the future (made under a clock that
 * was ahead; catalog.ts FUTURE_SKEW_MS) after the others, as snapshots are listed: it is not
 * the last restore's copy. Listed first, the "Before restore" group offered it as the one to
 * undo the last restore with, though a restore made since kept another.
 */
export async function listPreRestoreCopies(dbPath: string, now = Date.now()): Promise<PreRestoreCopy[]> {
  const dir = dirname(dbPath);
  const dbName = basename(dbPath);
  const ext = extname(dbName);
  const stem = ext ? dbName.slice(0, -ext.length) : dbName;
  const copyRe = (suffix: string) => new RegExp(`^${escapeRe(stem)}\\.pre-restore-(\\d{4})-(\\d\\d)-(\\d\\d)T(\\d\\d)(\\d\\d)(\\d\\d)Z(?:_(\\d+))?${escapeRe(suffix)}$`);
  let names: string[];
  try {
    names = await fsp.readdir(dir);
  } catch {
    return [];
  }
  // Ours keep the database's extension (naming.ts preRestoreName). ai-memory's restore names
  // every database's copy `<stem>.pre-restore-<ts>.db`: such a copy is this database's when
  // this one is named `.db`, or when no `<stem>.db` is beside it (whose copy it would be).
  const res = [copyRe(ext)];
  if (ext !== '.db' && !names.includes(`${stem}.db`)) res.push(copyRe('.db'));
  const out: PreRestoreCopy[] = [];
  for (const name of names) {
    const m = res.map((re) => re.exec(name)).find(Boolean);
    if (!m) continue;
    const time = Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6]);
    const path = join(dir, name);
    const st = await fsp.lstat(path).catch(() => undefined);
    if (!st?.isFile()) continue;
    const sidecars = SIDECARS.map((x) => path + x).filter((p) => names.includes(basename(p)));
    out.push({ name, path, time, seq: m[7] ? Number(m[7]) : 1, size: st.size, sidecars });
  }
  const future = (c: PreRestoreCopy) => Number(c.time > now + FUTURE_SKEW_MS);
  return out.sort((a, b) => future(a) - future(b) || b.time - a.time || b.seq - a.seq);
}

/**
 * Keeps the newest `keep` copies (0 = all; the newest is always kept). Main file first, then its sidecars.
 * `justMade`: the copy the restore that calls this has just made — always kept and counted
 * first, whatever its name says (a clock set back names it older than the copies before it).
 * Copies named in the future (a clock that was ahead) rank after the others, as snapshots do
 * (catalog.ts): they are the first to go, never the reason a real one goes.
 */
export async function prunePreRestoreCopies(dbPath: string, keep: number, opts: { justMade?: string; now?: number } = {}): Promise<{ pruned: string[]; warnings: string[] }> {
  const pruned: string[] = [];
  const warnings: string[] = [];
  if (!Number.isInteger(keep) || keep <= 0) return { pruned, warnings };
  const now = opts.now ?? Date.now();
  const rank = (c: PreRestoreCopy) => (c.path === opts.justMade ? 0 : c.time > now + FUTURE_SKEW_MS ? 2 : 1);
  const copies = (await listPreRestoreCopies(dbPath, now)).sort((a, b) => rank(a) - rank(b) || b.time - a.time || b.seq - a.seq);
  for (const c of copies.slice(Math.max(1, keep))) { // the copy just made ranks first: never among these
    try {
      // The main file first: a copy interrupted here is gone, never a main file without its WAL.
      await fsp.unlink(c.path);
      for (const s of c.sidecars) await fsp.rm(s, { force: true });
      pruned.push(c.name);
    } catch (e) {
      warnings.push(`could not delete ${c.name}: ${errorMessage(e)}`);
    }
  }
  if (pruned.length) await fsyncDir(dirname(dbPath));
  return { pruned, warnings };
}
