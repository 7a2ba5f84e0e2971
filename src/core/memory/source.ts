/**
 * The one door through which the memory code reads a database: a snapshot file, or the
 * live database through our WAL-consistent image reader (never by opening the live file
 * with SQLite). Everything above this module sees only {@link MemorySql}.
 *
 * Today the whole image is read into memory and opened in sql.js in place
 * (`openImageReadOnly`); when the engine can open a snapshot file lazily, only
 * `openSnapshotSql` changes.
 */
import { promises as fsp } from 'node:fs';
import { BackupError, ioError } from '../common/errors';
import { inspectDatabase, readConsistentImage, type ImageInfo, type ImageSink, type ReadImageOptions } from '../sqlite/image';
import { MAX_CHECKABLE_BYTES, openImageReadOnly, type SqlValue } from '../sqlite/sqlEngine';

export type { SqlValue };

/** A read-only query handle on one database. */
export interface MemorySql {
  /** What is open, for messages ("snapshot ai-memory-….db", "the current database"). */
  readonly label: string;
  readonly bytes: number;
  each(sql: string, params: SqlValue[], onRow: (row: SqlValue[]) => boolean | void): void;
  /** All rows (for small results only: counts, schema). */
  all(sql: string, params?: SqlValue[]): SqlValue[][];
  close(): void;
}

export interface OpenOptions {
  /** Give up on any one query after this long (default 120 s): nothing runs unbounded on a file we did not write. */
  queryTimeoutMs?: number;
  signal?: AbortSignal;
}

const DEFAULT_QUERY_TIMEOUT_MS = 120_000;

async function wrap(image: Uint8Array, label: string, opts: OpenOptions): Promise<MemorySql> {
  const timeout = opts.queryTimeoutMs ?? DEFAULT_QUERY_TIMEOUT_MS;
  const db = await openImageReadOnly(image, { label });
  const sql: MemorySql = {
    label,
    bytes: image.length,
    each(query, params, onRow) {
      if (opts.signal?.aborted) throw new BackupError('CANCELLED', 'Cancelled.');
      // The deadline is per query, checked between rows by the engine.
      db.each(query, params, onRow, Date.now() + timeout);
    },
    all(query, params = []) {
      const rows: SqlValue[][] = [];
      sql.each(query, params, (r) => {
        rows.push(r);
      });
      return rows;
    },
    close: () => db.close(),
  };
  return sql;
}

function tooLarge(label: string, bytes: number): BackupError {
  return new BackupError('TOO_LARGE', `${label} is ${Math.round(bytes / 1048576)} MiB; the built-in SQLite (WASM) can read up to ${MAX_CHECKABLE_BYTES >> 20} MiB.`, {
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
  let image: Buffer;
  try {
    image = await fsp.readFile(path);
  } catch (e) {
    throw ioError('reading', path, e);
  }
  return wrap(image, label, opts);
}

/** Holds the consistent image in one buffer (nothing written anywhere). */
class MemoryImageSink implements ImageSink {
  image: Uint8Array | undefined;
  readonly holdsImage = true;
  async begin(info: ImageInfo): Promise<void> {
    if (info.bytes > MAX_CHECKABLE_BYTES) throw tooLarge('the current database', info.bytes);
    if (!this.image || this.image.length !== info.bytes) {
      this.image = undefined;
      this.image = new Uint8Array(info.bytes);
    }
  }
  buffer(position: number, length: number): Uint8Array {
    return (this.image as Uint8Array).subarray(position, position + length);
  }
  async chunk(): Promise<void> {
    // the bytes are already in place
  }
  async reset(): Promise<void> {
    // begin() of the next attempt overwrites everything
  }
}

/**
 * Opens the live database through the WAL-consistent image reader (main file + committed
 * WAL frames, no lock taken, nothing written).
 */
export async function openLiveSql(dbPath: string, opts: OpenOptions & Pick<ReadImageOptions, 'maxAttempts'> = {}): Promise<MemorySql> {
  const info = await inspectDatabase(dbPath);
  if (info.kind === 'encrypted') {
    throw new BackupError('UNVERIFIABLE', `${dbPath} is encrypted (not plain SQLite): its memories cannot be read here.`);
  }
  const sink = new MemoryImageSink();
  await readConsistentImage(dbPath, sink, { signal: opts.signal, maxAttempts: opts.maxAttempts });
  return wrap(sink.image as Uint8Array, `the current database ${dbPath}`, opts);
}

/** Opens an image already in memory (the backup's, right after its check). */
export function openImageSql(image: Uint8Array, label: string, opts: OpenOptions = {}): Promise<MemorySql> {
  return wrap(image, label, opts);
}
