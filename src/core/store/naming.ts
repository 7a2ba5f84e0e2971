/**
 * Snapshot file names, shared with ai-memory's own CLI: `ai-memory-<UTC %Y-%m-%dT%H%M%SZ>.db`
 * with the manifest at `<same stem>.manifest.json`.
 *
 * A second snapshot in the same second is `…Z_2.db`, `…Z_3.db`: still `ai-memory-*.db` (so
 * ai-memory's CLI lists it), and `_` (0x5F) sorts after `.` (0x2E), so `…Z_2.db` sorts after
 * `…Z.db` byte-wise too. Our own ordering parses (time, sequence) and never uses mtime,
 * which a copy or sync rewrites.
 */
import { extname } from 'node:path';

const STAMP_RE = /^ai-memory-(\d{4})-(\d{2})-(\d{2})T(\d{2})(\d{2})(\d{2})Z(?:_(\d{1,6}))?\.db$/;

export function formatStamp(d: Date): string {
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  return `${p(d.getUTCFullYear(), 4)}-${p(d.getUTCMonth() + 1)}-${p(d.getUTCDate())}T${p(d.getUTCHours())}${p(d.getUTCMinutes())}${p(d.getUTCSeconds())}Z`;
}

export function snapshotName(stamp: string, seq = 1): string {
  return seq <= 1 ? `ai-memory-${stamp}.db` : `ai-memory-${stamp}_${seq}.db`;
}

/** ai-memory's rule for "is a snapshot": starts with `ai-memory-`, extension `db` (any case). */
export function isSnapshotFileName(name: string): boolean {
  return name.startsWith('ai-memory-') && extname(name).toLowerCase() === '.db';
}

/** `<file stem>.manifest.json`, the stem being the name without its last extension (as Rust's file_stem). */
export function manifestNameFor(snapshot: string): string {
  const ext = extname(snapshot);
  return `${ext ? snapshot.slice(0, -ext.length) : snapshot}.manifest.json`;
}

export interface NameTime {
  /** Milliseconds since the epoch (UTC) of the second in the name. */
  time: number;
  seq: number;
}

/** Time and sequence from a name in the shared format; undefined for any other name. */
export function parseSnapshotName(name: string): NameTime | undefined {
  const m = STAMP_RE.exec(name);
  if (!m) return undefined;
  const [y, mo, d, h, mi, s] = m.slice(1, 7).map(Number);
  const time = Date.UTC(y, mo - 1, d, h, mi, s);
  const check = new Date(time);
  // Reject impossible dates (2026-02-31) instead of letting Date roll them over.
  if (check.getUTCMonth() !== mo - 1 || check.getUTCDate() !== d || h > 23 || mi > 59 || s > 59) return undefined;
  return { time, seq: m[7] ? Number(m[7]) : 1 };
}

/**
 * The name for a file moved aside by restore: `<stem>.pre-restore-<stamp><ext>`. For a `.db`
 * database that is ai-memory's own name, `with_extension("pre-restore-<ts>.db")`
 * (`memories.db` → `memories.pre-restore-2026-11-24T103456Z.db`). Another database keeps its
 * extension (`foo.sqlite` → `foo.pre-restore-<ts>.sqlite`; none for none): ai-memory's `.db`
 * would give `foo.db` and `foo.sqlite` beside it the same names, so each would list, prune
 * and restore the other's copies (preRestore.ts reads ai-memory's names too).
 */
export function preRestoreName(dbName: string, stamp: string, seq = 1): string {
  const ext = extname(dbName);
  const stem = ext ? dbName.slice(0, -ext.length) : dbName;
  return `${stem}.pre-restore-${stamp}${seq > 1 ? `_${seq}` : ''}${ext}`;
}

/**
 * The restore lock of the database named `dbName` (`.memories.db.ai-memory-restore.lock`),
 * beside it: one restore of a database at a time (restore.ts), and how a window tells that a
 * restore it did not see end is still running (snapshotCommands.ts).
 */
export function restoreLockName(dbName: string): string {
  return `.${dbName}.ai-memory-restore.lock`;
}

/** Newest first: by name time, then sequence, then name. */
export function compareNewestFirst(a: { time: number; seq: number; name: string }, b: { time: number; seq: number; name: string }): number {
  return b.time - a.time || b.seq - a.seq || (a.name < b.name ? 1 : a.name > b.name ? -1 : 0);
}

/**
 * The file time a snapshot written back into a backup folder gets (pull, materialize): the
 * time in its name, else its manifest's created_at. ai-memory's own restore and `--keep`
 * order snapshots by file time: a snapshot of last week given today's time would be the
 * "newest" to them. Undefined when neither is a time.
 *
 * Snapshots of one second (`…Z.db`, `…Z_2.db`, `…Z_3.db`) are a millisecond apart in that
 * order: with the second alone they had one file time, and ai-memory's "newest" among them
 * was whichever its directory listing gave last. (A file system that keeps only whole or even
 * seconds, FAT, still rounds them together; backup.ts steps by its tick for new snapshots.)
 */
export function snapshotFileTime(name: string, createdAt?: string): Date | undefined {
  const n = parseSnapshotName(name);
  const t = n ? n.time + Math.min(999, n.seq - 1) : createdAt ? Date.parse(createdAt) : NaN;
  return Number.isFinite(t) ? new Date(t) : undefined;
}
