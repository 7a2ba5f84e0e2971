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
import { openRegular } from '../common/regularFile';
import { SIDECARS } from '../sqlite/dbFiles';
import { hasSqliteMagic } from '../sqlite/sqliteFormat';

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
  /**
   * Other databases in the same folder with the same stem (`memories.sqlite` beside
   * `memories.db`): ai-memory names their kept copies alike (`memories.pre-restore-<time>.db`),
   * so whose this copy is cannot be told. Undefined when no other is there.
   */
  sharedWith?: string[];
  /**
   * It (or one of its sidecars) was written after it was kept: something uses it as a
   * database — an agent pointed at it to get the old memories back, as "Previous DB moved to
   * …" invites. Never pruned. Told by the file's times: a restore keeps a copy by giving the
   * file a second name (a hard link), which sets its ctime and leaves its mtime at the last
   * write before the restore; a write since sets both to the same moment. (Where the copy had
   * to be copied, no hard links on that disk, it looks written since: kept, and said.)
   */
  writtenSince?: boolean;
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** A name SQLite or a restore made beside some database: a sidecar, or a kept copy. */
const NOT_A_DATABASE_RE = /(?:-wal|-shm|-journal)$|\.pre-restore-\d{4}-\d\d-\d\dT\d{6}Z(?:_\d+)?\.db$/;

/**
 * The other databases in `dir` whose kept copies are named like `dbName`'s: the same stem
 * (the name without its last extension), told apart from other files by SQLite's header or
 * by a sidecar of their own (an encrypted database has no header to show).
 */
async function sameStemDatabases(dir: string, names: string[], present: ReadonlySet<string>, dbName: string, stem: string): Promise<string[]> {
  const out: string[] = [];
  for (const name of names) {
    if (name === dbName || NOT_A_DATABASE_RE.test(name)) continue;
    const ext = extname(name);
    if ((ext ? name.slice(0, -ext.length) : name) !== stem) continue;
    const path = join(dir, name);
    const st = await fsp.lstat(path).catch(() => undefined);
    if (!st?.isFile()) continue; // a link: its copies are kept beside the file it leads to
    if (SIDECARS.some((x) => present.has(name + x)) || (await hasSqliteHeader(path))) out.push(path);
  }
  return out.sort();
}

async function hasSqliteHeader(path: string): Promise<boolean> {
  const fh = await openRegular(path).catch(() => undefined);
  if (!fh) return false;
  try {
    const b = Buffer.alloc(16);
    const { bytesRead } = await fh.fh.read(b, 0, b.length, 0);
    return hasSqliteMagic(b.subarray(0, bytesRead));
  } finally {
    await fh.fh.close();
  }
}


/**
 * Newest first by the time in the name; a copy named in the future (made under a clock that
 * was ahead; catalog.ts FUTURE_SKEW_MS) after the others, as snapshots are listed: it is not
 * the last restore's copy. Listed first, the "Before restore" group offered it as the one to
 * undo the last restore with, though a restore made since kept another.
 *
 * A copy named `<stem>.pre-restore-<ts>.db` (ai-memory's own naming, and ours before copies
 * kept their database's extension) beside another database of the same stem may be that
 * one's: `sharedWith` names them, and retention deletes none such.
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
  // A set: a folder of thousands of kept copies (keepPreRestore 0) with their sidecars made a
  // search of every name per copy quadratic (10,000 copies: 11 s for each listing).
  const present = new Set(names);
  const res = [copyRe(ext)];
  if (ext !== '.db' && !present.has(`${stem}.db`)) res.push(copyRe('.db'));
  const sharedWith = await sameStemDatabases(dir, names, present, dbName, stem);
  const aiMemoryNamed = copyRe('.db');
  const out: PreRestoreCopy[] = [];
  for (const name of names) {
    const m = res.map((re) => re.exec(name)).find(Boolean);
    if (!m) continue;
    const time = Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6]);
    const path = join(dir, name);
    const st = await fsp.lstat(path).catch(() => undefined);
    if (!st?.isFile()) continue;
    const sidecars = SIDECARS.map((x) => path + x).filter((p) => present.has(basename(p)));
    let writtenSince = st.mtimeMs >= st.ctimeMs;
    for (const sc of sidecars.filter((x) => !x.endsWith('-shm'))) { // a reader rewrites the -shm too
      const sst = await fsp.lstat(sc).catch(() => undefined);
      if (sst && sst.size > 0 && sst.mtimeMs >= sst.ctimeMs) writtenSince = true;
    }
    out.push({ name, path, time, seq: m[7] ? Number(m[7]) : 1, size: st.size, sidecars, ...(sharedWith.length && aiMemoryNamed.test(name) ? { sharedWith } : {}), ...(writtenSince ? { writtenSince } : {}) });
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
  // Another database here may have copies named alike (ai-memory's naming): whose each such
  // copy is cannot be told, and one may be that database's only copy of what a restore
  // replaced. None of those is deleted.
  const unsure: PreRestoreCopy[] = [];
  for (const c of copies.slice(Math.max(1, keep))) { // the copy just made ranks first: never among these
    if (c.sharedWith) {
      unsure.push(c);
      continue;
    }
    if (c.writtenSince) {
      warnings.push(`kept ${c.name}: it was written after the restore kept it, so something uses it as a database (an agent pointed at it?); delete it by hand once nothing does`);
      continue;
    }
    try {
      // The main file first: a copy interrupted here is gone, never a main file without its WAL.
      await fsp.unlink(c.path);
      for (const s of c.sidecars) await fsp.rm(s, { force: true });
      pruned.push(c.name);
    } catch (e) {
      warnings.push(`could not delete ${c.name}: ${errorMessage(e)}`);
    }
  }
  if (unsure.length) {
    const others = unsure[0].sharedWith ?? [];
    warnings.push(`kept ${unsure.length} ${unsure.length === 1 ? 'copy' : 'copies'} named like ${unsure[0].name}: ${others.map((p) => basename(p)).join(', ')} in the same folder may have kept ${unsure.length === 1 ? 'it' : 'them'} (ai-memory's restore names every database's copy <stem>.pre-restore-<time>.db), so whose each one is cannot be told; delete the ones you no longer need by hand`);
  }
  if (pruned.length) await fsyncDir(dirname(dbPath));
  return { pruned, warnings };
}
