/**
 * The one door through which the memory code reads a database: a snapshot file, or the
 * live database through our WAL-consistent image reader (never by opening the live file
 * with SQLite). Everything above this module sees only {@link MemorySql}.
 *
 * Files are opened with the engine's lazy reader (sqlEngine.openSnapshotFile): SQLite
 * reads the pages a query needs from disk, so memory stays flat at any size. The live
 * database is first read consistently into a private temp file (0600, removed on close).
 */
import { rmSync } from 'node:fs';
import { BackupError } from '../common/errors';
import { consistentTempCopy } from '../store/fileSink';
import { walHasCommits } from '../sqlite/dbFiles';
import { inspectDatabase, type ReadImageOptions } from '../sqlite/image';
import { describeMaxCheckable, MAX_CHECKABLE_BYTES, openSnapshotFile, type SnapshotDatabase, type SqlValue } from '../sqlite/sqlEngine';

export type { SqlValue };

/** A read-only query handle on one database. */
export interface MemorySql {
  /** What is open, for messages ("snapshot ai-memory-….db", "the current database"). */
  readonly label: string;
  readonly bytes: number;
  each(sql: string, params: SqlValue[], onRow: (row: SqlValue[]) => boolean | void): void;
  /** All rows (for small results only: counts, schema). */
  all(sql: string, params?: SqlValue[]): SqlValue[][];
  /** Runs `fn` with `other` readable in this handle's statements as schema `name` (see SnapshotDatabase.withAttached). */
  withAttached<T>(other: MemorySql, name: string, fn: () => T): T;
  close(): void;
}

/** The engine database behind each handle (so that one can be attached to another). */
const engineOf = new WeakMap<MemorySql, SnapshotDatabase>();

export interface OpenOptions {
  /** Give up on any one query after this long (default 120 s): nothing runs unbounded on a file we did not write. */
  queryTimeoutMs?: number;
  signal?: AbortSignal;
}

const DEFAULT_QUERY_TIMEOUT_MS = 120_000;

function wrap(db: SnapshotDatabase, label: string, opts: OpenOptions, onClose?: () => void): MemorySql {
  let open = true;
  const sql: MemorySql = {
    label,
    bytes: db.bytes,
    each(query, params, onRow) {
      if (opts.signal?.aborted) throw new BackupError('CANCELLED', 'Cancelled.');
      // The time budget is per statement, enforced by the engine between rows and reads.
      db.each(query, params, onRow);
    },
    all(query, params = []) {
      const rows: SqlValue[][] = [];
      sql.each(query, params, (r) => {
        rows.push(r);
      });
      return rows;
    },
    withAttached(other, name, fn) {
      const o = engineOf.get(other);
      if (!o) throw new Error(`${other.label} cannot be attached (not opened by memory/source)`);
      return db.withAttached(o, name, fn);
    },
    close() {
      if (!open) return;
      open = false;
      try {
        db.close();
      } finally {
        onClose?.();
      }
    },
  };
  engineOf.set(sql, db);
  return sql;
}

/** The same open database under another label (an archived snapshot read from its rebuilt temp file). */
export function relabeled(sql: MemorySql, label: string): MemorySql {
  const r: MemorySql = {
    label,
    bytes: sql.bytes,
    each: (q, params, onRow) => sql.each(q, params, onRow),
    all: (q, params) => sql.all(q, params),
    withAttached: (other, name, fn) => sql.withAttached(other, name, fn),
    close: () => sql.close(),
  };
  const db = engineOf.get(sql);
  if (db) engineOf.set(r, db);
  return r;
}

function tooLarge(label: string, bytes: number): BackupError {
  return new BackupError('TOO_LARGE', `${label} is ${Math.round(bytes / 1048576)} MiB; the built-in SQLite (WASM) reads up to ${describeMaxCheckable()}.`, {
    hint: 'Use the native sqlite3 tool on a copy of the file for databases this large.',
  });
}

/** Opens a snapshot file (any SQLite file we did not write) for reading. */
export async function openSnapshotSql(path: string, opts: OpenOptions = {}): Promise<MemorySql> {
  const label = `snapshot ${path}`;
  const kind = await inspectDatabase(path).catch((e: unknown) => {
    if (e instanceof BackupError && e.code === 'DB_NOT_FOUND') {
      throw new BackupError('SNAPSHOT_NOT_FOUND', `Snapshot not found: ${path}`, { hint: 'Check the path, or list snapshots with `ai-memory-backup list`.' });
    }
    throw e;
  });
  if (kind.kind === 'encrypted') {
    throw new BackupError('UNVERIFIABLE', `${path} is encrypted (not plain SQLite): its memories cannot be read here.`, {
      hint: 'Open it with an ai-memory built with the sqlcipher feature and its passphrase.',
    });
  }
  if (kind.size > MAX_CHECKABLE_BYTES) throw tooLarge(label, kind.size);
  // A -wal beside it with committed transactions (a kept *.pre-restore-* copy, a database
  // copied as it ran) is part of its state: read both, as SQLite would.
  if (await walHasCommits(path)) return openLiveSql(path, { ...opts, label });
  const timeBudgetMs = opts.queryTimeoutMs ?? DEFAULT_QUERY_TIMEOUT_MS;
  return wrap(await openSnapshotFile(path, { timeBudgetMs }), label, opts);
}

/**
 * Opens the live database: read through the WAL-consistent image reader (main file +
 * committed WAL, no lock taken, nothing written beside it) into a private temp file,
 * which is then read lazily and removed on close.
 */
export async function openLiveSql(dbPath: string, opts: OpenOptions & Pick<ReadImageOptions, 'maxAttempts'> & { label?: string } = {}): Promise<MemorySql> {
  const label = opts.label ?? `the current database ${dbPath}`;
  const info = await inspectDatabase(dbPath);
  if (info.kind === 'encrypted') {
    throw new BackupError('UNVERIFIABLE', `${dbPath} is encrypted (not plain SQLite): its memories cannot be read here.`);
  }
  if (info.size > MAX_CHECKABLE_BYTES) throw tooLarge(label, info.size);
  const sink = await consistentTempCopy(dbPath, 'memories', { signal: opts.signal, maxAttempts: opts.maxAttempts });
  const drop = (): void => void sink.discard().catch(() => rmSync(sink.path, { force: true }));
  try {
    const db = await openSnapshotFile(sink.path, { timeBudgetMs: opts.queryTimeoutMs ?? DEFAULT_QUERY_TIMEOUT_MS });
    return wrap(db, label, opts, drop);
  } catch (e) {
    await sink.discard().catch(() => rmSync(sink.path, { force: true }));
    throw e;
  }
}
