/**
 * The only module that touches sql.js (SQLite compiled to WASM). It loads once, lazily,
 * from the `sql-wasm.wasm` beside the bundle (dist/) or from node_modules in tests, and
 * passes `wasmBinary` so the loader never tries to fetch() a path
 * (raycast/extensions#2483).
 *
 * ## API
 *
 *   const db = await openSnapshotFile(path, { timeBudgetMs: 10_000 });
 *   try {
 *     const { columns, rows } = db.query('SELECT id, title FROM memories WHERE id = ?', [id], { maxRows: 100 });
 *     const check = db.check('quick');          // PRAGMA quick_check + facts for the manifest
 *   } finally {
 *     db.close();
 *   }
 *   await checkFile(path, 'quick');             // the same check in one call
 *
 * - A snapshot FILE is opened read-only and read lazily: SQLite asks for pages, we read
 *   them from the file (whole 64 KiB blocks while it scans forward, exact pages when it
 *   jumps) into a small bounded cache. Memory stays flat (~15 MB on top of the WASM engine) whatever the file's size, up to {@link MAX_CHECKABLE_BYTES} (1 TiB); a
 *   larger file is refused with a `TOO_LARGE` error that says so ("not checked: larger
 *   than 1 TiB").
 * - Read-only, loudly: `PRAGMA query_only` refuses write statements, and any write that
 *   still reached the file would fail the statement with an error (never land in memory
 *   or on disk).
 * - Time budget: every page read checks `timeBudgetMs`; a statement past its budget stops
 *   with a `TIMEOUT` error. sql.js 1.16 exports neither `sqlite3_progress_handler` nor
 *   `sqlite3_interrupt`, so this is the one interrupt we have: it bounds any statement
 *   whose work is reading the file (scans, lookups, checks, which is all we run), not one
 *   that spins without reading (an unbounded recursive CTE over no table) — `query()` also
 *   checks the budget between rows, and callers run only statements of their own.
 * - It never opens the live database: WASM SQLite cannot take the file locks the running
 *   server relies on. Callers hand it a snapshot file, or a temporary file we wrote.
 *
 * ## Why a lazy MEMFS file and not a custom SQLite VFS
 *
 * sql.js keeps a database in an Emscripten MEMFS file; `new Database(data)` creates it
 * with `FS.createDataFile`, whose write of `data` at position 0 into an empty file
 * stores `data.slice(0, length)` as the file's `contents` and `length` as its size
 * (MEMFS.stream_ops.write). From then on MEMFS reads the file with
 * `contents.subarray(position, end)` (MEMFS.stream_ops.read; offsets arrive as 53-bit
 * numbers: sql.js 1.16 is built with WASM_BIGINT), seeks and stats from that size, and
 * never looks at the bytes otherwise. So `data` is an object that answers `slice` with
 * {@link LazyContents}, whose `subarray` reads the range from the file on disk. A custom
 * VFS would be the cleaner seam, but sql.js exports neither `sqlite3_vfs_register` nor
 * `sqlite3_vfs_find`, so it cannot be done without rebuilding sql.js.
 *
 * Every other MEMFS path that could touch `contents` is a write (MEMFS write/msync,
 * ftruncate's resizeFileStorage): `LazyContents.set` refuses them with an Emscripten
 * errno (the syscall fails, SQLite reports an error), and `length` reports a capacity no
 * write can exceed, so MEMFS never tries to copy the file into a bigger array.
 * `PRAGMA mmap_size` stays 0, so SQLite reads with read(), never mmap().
 *
 * The mechanism depends on sql.js's MEMFS, so sql.js is pinned (package.json, exact
 * version) and test/unit/sqlEngine.test.ts fails if an upgrade stops adopting our object
 * (it counts the bytes read from disk and asserts MEMFS got our object).
 */
import { closeSync, existsSync, fstatSync, readSync, type Stats } from 'node:fs';
import { dirname, join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import initSqlJs from 'sql.js';
import { BackupError, errorMessage, ioError } from '../common/errors';
import { largeBuffer, readFileToArrayBuffer } from '../common/largeBuffer';
import type { CheckMode } from '../common/checks';
import { openRegularSync } from '../common/regularFile';
import { OFFSET_READ_VERSION, OFFSET_WRITE_VERSION } from './sqliteFormat';

type SqlJs = Awaited<ReturnType<typeof initSqlJs>>;
type SqlJsDatabase = InstanceType<SqlJs['Database']>;
export type SqlValue = number | string | Uint8Array | null;

let engine: Promise<SqlJs> | undefined;

/**
 * The largest file we check. MEMFS positions and sizes are JavaScript numbers (exact to
 * 2^53) and sql.js 1.16 passes 64-bit offsets through (WASM_BIGINT; its
 * SQLITE_DISABLE_LFS changes nothing where off_t is 64-bit, as in Emscripten's musl), so
 * what bounds it is SQLite: at most 2^32 − 2 pages, and its checks keep one bit per page
 * in memory (32 MiB at 1 TiB of 4 KiB pages). 1 TiB is the largest size we have
 * exercised (test/unit/sqlEngine.test.ts: sparse databases of 8 GiB and 1 TiB, pages at
 * the far end). Larger files are refused up front with "not checked: larger than 1 TiB".
 */
export const MAX_CHECKABLE_BYTES = 2 ** 40;

/** "1 TiB" — for messages. */
export function describeMaxCheckable(): string {
  return MAX_CHECKABLE_BYTES >= 2 ** 40 ? `${MAX_CHECKABLE_BYTES / 2 ** 40} TiB` : `${MAX_CHECKABLE_BYTES / 2 ** 30} GiB`;
}

/** dist/sql-wasm.wasm beside the bundle; from compiled tests (out/…), node_modules' copy up the tree. */
export function wasmPath(): string {
  const beside = join(__dirname, 'sql-wasm.wasm');
  if (existsSync(beside)) return beside;
  for (let dir = __dirname; ; dir = dirname(dir)) {
    const candidate = join(dir, 'node_modules', 'sql.js', 'dist', 'sql-wasm.wasm');
    if (existsSync(candidate)) return candidate;
    if (dirname(dir) === dir) break;
  }
  throw new Error(`sql-wasm.wasm not found beside ${__dirname}: the installation is incomplete; reinstall the extension or CLI.`);
}

/**
 * V8 runs WASM first with its baseline compiler (Liftoff) and recompiles the hot functions
 * with TurboFan on background threads. Our processes run one check each: on 2 cores the
 * recompiling costs more than it saves (first quick_check of a 50 MB image: 150–210 ms
 * with tier-up, 85 ms Liftoff-only; 5 MB: 47 → 34 ms; 500 MB: 727 → 628 ms; a 500 MB
 * integrity_check: the same either way). Set before the module is compiled; it only
 * changes which compiler V8 uses for WebAssembly in this process.
 */
function preferBaselineWasm(): void {
  try {
    setFlagsFromString('--liftoff-only');
  } catch {
    // an engine without the flag: the default tiering is fine too
  }
}

export function loadSqlEngine(): Promise<SqlJs> {
  if (!engine) preferBaselineWasm();
  // An ArrayBuffer of its own, which sql.js keeps (largeBuffer.ts: no transient copy to free).
  engine ??= initSqlJs({ wasmBinary: readFileToArrayBuffer(wasmPath()) }).catch((e: unknown) => {
    engine = undefined;
    throw e;
  });
  return engine;
}

export type { CheckMode } from '../common/checks';
/** 'facts': no integrity pragma, only the facts the manifest records (backup --verify off, the live schema at restore). */
export type ImageCheckMode = CheckMode | 'facts';

export interface ImageCheck {
  ok: boolean;
  /** 'ok', or the first lines SQLite reported. */
  result: string;
  pageSize?: number;
  pages?: number;
  memories?: number;
  schemaVersion?: number;
  sqliteVersion: string;
}

export interface OpenOptions {
  /** A statement still reading the file after this many milliseconds stops with TIMEOUT. */
  timeBudgetMs?: number;
  /** Bytes of file content our reader caches (default 4 MiB). */
  cacheBytes?: number;
}

export interface ReadStats {
  /** Bytes read from the file on disk (blocks of {@link BLOCK_BYTES}). */
  bytesRead: number;
  /** Page reads SQLite made (each served from our cache or the disk). */
  reads: number;
  /** MEMFS took our lazy contents as the file (false means sql.js copied the data: see the file comment). */
  adopted: boolean;
}

// Emscripten errno values (WASI numbering), returned by the syscall that failed.
const EIO = 29;
const EROFS = 69;
const EFBIG = 22;

/**
 * What Emscripten's syscall layer turns into a failed syscall: it catches exceptions
 * whose `name` is 'ErrnoError' and returns `-errno` to the C code (any other exception
 * would unwind through SQLite's WASM frames and leave it in an undefined state).
 */
class EmscriptenErrno extends Error {
  override readonly name = 'ErrnoError';
  constructor(readonly errno: number) {
    super(`errno ${errno}`);
  }
}

/** Blocks read from disk; SQLite pages (512 B – 64 KiB) never straddle one. */
const BLOCK_BYTES = 64 * 1024;
const DEFAULT_CACHE_BYTES = 4 << 20;
/**
 * SQLite's own page cache (KiB): its default, 2 MiB. Our block cache below it serves the
 * pages it drops without a system call. 8 MiB was tried for integrity_check's index lookups:
 * no faster here (500 MB file: quick_check 2.5 → 1.9 s with 2 MiB, integrity_check the same
 * within noise), and 6 MB more peak RSS, since WASM memory once touched is never returned.
 */
const SQLITE_CACHE_KIB = 2048;
/** Larger single reads than this are not SQLite reading pages: refused rather than served. */
const MAX_READ_BYTES = 1 << 20;

/** Shows bytes 18–19 (§1.3.4) of a WAL-mode file as rollback mode in `buf`, which holds the file from `offset`. */
function showRollbackMode(buf: Uint8Array, offset: number): void {
  for (const at of [OFFSET_WRITE_VERSION, OFFSET_READ_VERSION]) {
    if (at >= offset && at < offset + buf.length && buf[at - offset] === 2) buf[at - offset] = 1;
  }
}

/**
 * Buffers shared by every open file. A read's result is copied by MEMFS before the next
 * read (of any file: everything here is synchronous), so one scratch buffer serves all; and
 * the blocks of a closed file's cache are handed to the next file opened, instead of
 * leaving 4 MiB to the garbage collector each time (a backup opens its temp file twice,
 * for the check and the facts: +5 MiB of peak RSS before).
 */
const shared = {
  scratch: undefined as Uint8Array | undefined,
  blocks: [] as Uint8Array[],
};
const MAX_POOLED_BLOCKS = Math.ceil(DEFAULT_CACHE_BYTES / BLOCK_BYTES);

/**
 * Views handed to MEMFS, made once and reused: a scan of a large file reads millions of
 * pages, and a fresh view per read kept V8's scavenger busy enough to grow its young
 * generation and promote garbage (~10 MB of peak RSS in a 1.9 GB comparison). A view of
 * bytes [from, from + len) of `buf` is kept for aligned page-sized reads; anything else
 * gets a fresh one.
 */
const views = new WeakMap<Uint8Array, (Uint8Array | undefined)[]>();

function view(buf: Uint8Array, from: number, len: number): Uint8Array {
  if (len === 0 || from % len !== 0 || buf.length % len !== 0 || buf.length / len > 1024) return buf.subarray(from, from + len);
  let slots = views.get(buf);
  if (!slots) views.set(buf, (slots = []));
  const i = from / len;
  let v = slots[i];
  if (!v || v.length !== len) slots[i] = v = buf.subarray(from, from + len);
  return v;
}

/**
 * Drops the buffers kept for the next file opened (the block pool, the scratch buffer),
 * for a caller done with sql.js whose next work needs memory of its own: a backup's archive
 * step, after its check and facts. The next file opened makes them again.
 */
export function releaseReadBuffers(): void {
  shared.blocks.length = 0;
  shared.scratch = undefined;
}

function scratch(bytes: number): Uint8Array {
  shared.scratch ??= largeBuffer(MAX_READ_BYTES); // dropped by releaseReadBuffers: freed without a trace in malloc
  return view(shared.scratch, 0, bytes);
}

function newBlock(len: number): Uint8Array {
  if (len === BLOCK_BYTES) {
    const b = shared.blocks.pop();
    if (b) return b;
  }
  return new Uint8Array(len);
}

function releaseBlocks(blocks: Iterable<Uint8Array>): void {
  for (const b of blocks) if (b.length === BLOCK_BYTES && shared.blocks.length < MAX_POOLED_BLOCKS) shared.blocks.push(b);
}

/**
 * The file on disk behind a MEMFS node: reads ranges on demand through a small LRU of
 * blocks. Holds one descriptor for its whole life, so every read comes from the same file
 * even if the path is replaced meanwhile. Bytes 18–19 of a WAL-mode file are shown as
 * rollback mode (1), so SQLite never looks for a `-wal` that cannot exist in its file
 * system; nothing else is changed.
 */
class PagedFile {
  readonly size: number;
  readonly stat: Stats;
  private fd: number | undefined;
  /**
   * Cached blocks by block index. Least recently used by a counter per block, not by
   * re-inserting into the Map on every hit: that rebuilt the Map's table every few dozen
   * reads, a fifth of all the garbage a long scan made (the Map changes on misses only now).
   */
  private readonly cache = new Map<number, Uint8Array>();
  private readonly lastUse = new Map<Uint8Array, number>();
  private tick = 0;
  private readonly maxBlocks: number;
  private lastEnd = -1;
  deadline = Infinity;
  bytesRead = 0;
  reads = 0;
  adopted = false;
  /** The first reason a syscall failed (the real error behind SQLite's "disk I/O error"). */
  failure: BackupError | undefined;

  /** Picked pages (no file behind): the only bytes there are; any other read fails. */
  private readonly picked: PickedPages | undefined;

  constructor(readonly path: string, cacheBytes: number, picked?: PickedPages) {
    this.maxBlocks = Math.max(4, Math.floor(cacheBytes / BLOCK_BYTES));
    if (picked) {
      this.picked = picked;
      this.size = picked.bytes;
      this.stat = undefined as unknown as Stats; // no file: changedSinceOpen() is false
      return;
    }
    try {
      // Never blocks on a FIFO swapped in under the name, and reads only a regular file.
      ({ fd: this.fd, stat: this.stat } = openRegularSync(path));
    } catch (e) {
      throw ioError('opening', path, e);
    }
    this.size = this.stat.size;
  }

  /** A range of the picked pages; a byte of any page not picked fails the read (SQLite: disk I/O error). */
  private readPicked(picked: PickedPages, start: number, end: number): Uint8Array {
    const out = scratch(end - start);
    for (let pos = start; pos < end; ) {
      const pgno = Math.floor(pos / picked.pageSize) + 1;
      const page = picked.pages.get(pgno);
      if (!page) this.fail(new BackupError('IO', `page ${pgno} of ${this.path} was not read (only the pages picked for this question were)`), EIO);
      const from = pos - (pgno - 1) * picked.pageSize;
      const len = Math.min(end - pos, picked.pageSize - from);
      out.set(page.subarray(from, from + len), pos - start);
      pos += len;
    }
    this.bytesRead += end - start;
    showRollbackMode(out, start);
    return out;
  }

  private fail(error: BackupError, errno: number): never {
    this.failure ??= error;
    throw new EmscriptenErrno(errno);
  }

  refuseWrite(): never {
    this.fail(new BackupError('IO', `Refused a write to ${this.path}: snapshots are opened read-only.`), EROFS);
  }

  private block(index: number): Uint8Array {
    let b = this.cache.get(index);
    if (b) {
      this.lastUse.set(b, ++this.tick); // an existing key: no allocation
      return b;
    }
    const start = index * BLOCK_BYTES;
    const len = Math.min(BLOCK_BYTES, this.size - start);
    if (this.cache.size >= this.maxBlocks) {
      let oldest = -1;
      let oldestUse = Infinity;
      this.cache.forEach((c, i) => {
        const u = this.lastUse.get(c) ?? 0;
        if (u < oldestUse) {
          oldestUse = u;
          oldest = i;
        }
      });
      b = this.cache.get(oldest) as Uint8Array;
      this.cache.delete(oldest);
      this.lastUse.delete(b);
      if (b.length !== len) b = newBlock(len);
    } else {
      b = newBlock(len);
    }
    let done = 0;
    try {
      while (done < len) {
        const n = readSync(this.fd as number, b, done, len - done, start + done);
        if (n === 0) break;
        done += n;
      }
    } catch (e) {
      this.fail(ioError('reading', this.path, e), EIO);
    }
    if (done < len) this.fail(new BackupError('IO', `${this.path} shrank while it was read (it changed under the check).`), EIO);
    this.bytesRead += len;
    showRollbackMode(b, start);
    this.cache.set(index, b);
    this.lastUse.set(b, ++this.tick);
    return b;
  }

  /** Bytes [start, end) of the file, valid until the next read (MEMFS copies them at once). */
  read(start: number, end: number): Uint8Array {
    this.reads++;
    if (performance.now() > this.deadline) {
      this.fail(new BackupError('TIMEOUT', `Stopped reading ${this.path}: the statement ran past its time budget.`), EIO);
    }
    if (!(start >= 0 && end <= this.size && end >= start)) {
      this.fail(new BackupError('IO', `A read of bytes ${start}–${end} of ${this.path} (${this.size} bytes) was out of range.`), EIO);
    }
    if (end - start > MAX_READ_BYTES) {
      // Not a page read (SQLite reads pages of at most 64 KiB): refused, so nothing can
      // ever pull the whole file into memory through this object.
      this.fail(new BackupError('IO', `Refused a read of ${end - start} bytes of ${this.path} at once (pages are at most 64 KiB).`), EFBIG);
    }
    if (this.picked) return this.readPicked(this.picked, start, end);
    const first = Math.floor(start / BLOCK_BYTES);
    const last = Math.floor((Math.max(end, start + 1) - 1) / BLOCK_BYTES);
    // Forward within a block's reach of the last read: a scan, served by whole blocks (one
    // read() per 64 KiB). Anywhere else (index lookups jump about the file): exactly the
    // page, unless its block is cached — reading 64 KiB for every 4 KiB page there cost
    // 18 GB of copying for one integrity_check of a 500 MB file.
    const scanning = start >= this.lastEnd && start - this.lastEnd < BLOCK_BYTES;
    this.lastEnd = end;
    if (first === last && (scanning || this.cache.has(first))) {
      const off = first * BLOCK_BYTES;
      return view(this.block(first), start - off, end - start);
    }
    const out = scratch(end - start);
    if (!scanning) {
      this.readExact(out, start);
      return out;
    }
    for (let i = first; i <= last; i++) {
      const b = this.block(i);
      const off = i * BLOCK_BYTES;
      const from = Math.max(start, off);
      const to = Math.min(end, off + b.length);
      out.set(b.subarray(from - off, to - off), from - start);
    }
    return out;
  }

  private readExact(out: Uint8Array, start: number): void {
    let done = 0;
    try {
      while (done < out.length) {
        const n = readSync(this.fd as number, out, done, out.length - done, start + done);
        if (n === 0) break;
        done += n;
      }
    } catch (e) {
      this.fail(ioError('reading', this.path, e), EIO);
    }
    if (done < out.length) this.fail(new BackupError('IO', `${this.path} shrank while it was read (it changed under the check).`), EIO);
    this.bytesRead += out.length;
    showRollbackMode(out, start);
  }

  /** Whether the file was changed (written, truncated, replaced in place) since it was opened. */
  changedSinceOpen(): boolean {
    if (this.fd === undefined) return false;
    const now = fstatSync(this.fd);
    return now.size !== this.stat.size || now.mtimeMs !== this.stat.mtimeMs || now.ctimeMs !== this.stat.ctimeMs || now.ino !== this.stat.ino;
  }

  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
    releaseBlocks(this.cache.values());
    this.cache.clear();
    this.lastUse.clear();
  }
}

/** Some pages of a database image (1-based page number → its bytes), the image `bytes` long. */
export interface PickedPages {
  pageSize: number;
  bytes: number;
  pages: Map<number, Uint8Array>;
}

/**
 * A MEMFS file's `contents` backed by a {@link PagedFile}. Only the members MEMFS uses
 * exist; see the file comment for why each one is what it is.
 */
class LazyContents {
  constructor(private readonly file: PagedFile) {}
  /** Capacity as MEMFS sees it: no write fits "beyond" it, so MEMFS never reallocates (and copies) the file. */
  get length(): number {
    return Number.MAX_SAFE_INTEGER;
  }
  subarray(start: number, end: number): Uint8Array {
    return this.file.read(start, end);
  }
  set(): never {
    return this.file.refuseWrite();
  }
}

/**
 * What we hand `new SQL.Database()`: it looks like a byte array of the file's size to
 * `FS.createDataFile` (`length`, `subarray`), and answers the `slice(0, length)` MEMFS
 * makes of it with the lazy contents. If a future MEMFS took `subarray(0, length)` of it
 * instead (the "can own" path), that is answered the same way.
 */
class LazySource {
  constructor(private readonly file: PagedFile) {}
  get length(): number {
    return this.file.size;
  }
  private adopt(start = 0, end = this.file.size): LazyContents | Uint8Array {
    if (start === 0 && end === this.file.size) {
      this.file.adopted = true;
      return new LazyContents(this.file);
    }
    return this.file.read(start, end);
  }
  slice(start?: number, end?: number): LazyContents | Uint8Array {
    return this.adopt(start, end);
  }
  subarray(start?: number, end?: number): LazyContents | Uint8Array {
    return this.adopt(start, end);
  }
}

/** A snapshot file opened read-only and read lazily. Close it when done (it holds a descriptor). */
export class SnapshotDatabase {
  private closed = false;
  private readonly budgetMs: number;

  /** @internal use {@link openSnapshotFile} */
  constructor(
    private readonly db: SqlJsDatabase,
    private readonly file: PagedFile,
    opts: OpenOptions,
  ) {
    this.budgetMs = opts.timeBudgetMs ?? Infinity;
  }

  get path(): string {
    return this.file.path;
  }

  get bytes(): number {
    return this.file.size;
  }

  stats(): ReadStats {
    return { bytesRead: this.file.bytesRead, reads: this.file.reads, adopted: this.file.adopted };
  }

  /** Runs `fn` under the time budget; turns a failed read into the error behind it. */
  private guarded<T>(fn: () => T): T {
    if (this.closed) throw new Error('SnapshotDatabase used after close()');
    const files = this.attached ? [this.file, this.attached.file] : [this.file];
    const deadline = performance.now() + this.budgetMs;
    for (const f of files) {
      f.failure = undefined;
      f.deadline = deadline;
    }
    const failure = (): BackupError | undefined => files.find((f) => f.failure)?.failure;
    try {
      const r = fn();
      const failed = failure();
      if (failed) throw failed;
      return r;
    } catch (e) {
      throw failure() ?? e;
    } finally {
      for (const f of files) f.deadline = Infinity;
    }
  }

  private attached: SnapshotDatabase | undefined;

  /**
   * Runs `fn` with `other` attached to this connection as schema `name`, so that one
   * statement joins the two files inside SQLite (a comparison of two snapshots: only the
   * rows that differ come out to JavaScript). `other` stays open and read-only: the
   * attached schema reads the same MEMFS file, through the same lazy reader, and
   * `query_only` covers every schema of this connection. Its reads share this one's time
   * budget and report their I/O errors the same way.
   */
  withAttached<T>(other: SnapshotDatabase, name: string, fn: () => T): T {
    if (!/^[a-z_][a-z0-9_]*$/.test(name) || name === 'main' || name === 'temp') throw new Error(`not a schema name for ATTACH: ${name}`);
    if (this.attached) throw new Error('SnapshotDatabase: one attached database at a time');
    if (other.closed) throw new Error('SnapshotDatabase used after close()');
    // sql.js names each database's MEMFS file (`Database.filename`, relative to MEMFS's cwd).
    const filename = (other.db as unknown as { filename: string }).filename;
    this.attached = other;
    try {
      this.guarded(() => this.db.run(`ATTACH DATABASE ? AS ${name}`, [filename]));
    } catch (e) {
      this.attached = undefined;
      throw e;
    }
    try {
      return fn();
    } finally {
      try {
        this.db.run(`DETACH DATABASE ${name}`);
      } finally {
        this.attached = undefined;
      }
    }
  }

  /**
   * Runs one read-only statement and returns at most `maxRows` rows (default 10,000;
   * `truncated` says whether there were more).
   */
  query(sql: string, params?: SqlValue[] | Record<string, SqlValue>, opts: { maxRows?: number } = {}): { columns: string[]; rows: SqlValue[][]; truncated: boolean } {
    const maxRows = opts.maxRows ?? 10_000;
    return this.guarded(() => {
      const stmt = this.db.prepare(sql);
      try {
        if (params) stmt.bind(params);
        const rows: SqlValue[][] = [];
        let truncated = false;
        while (stmt.step()) {
          if (rows.length >= maxRows) {
            truncated = true;
            break;
          }
          rows.push(stmt.get() as SqlValue[]);
          if (performance.now() > this.file.deadline) {
            throw new BackupError('TIMEOUT', `Stopped a query on ${this.file.path}: it ran past its time budget.`);
          }
        }
        return { columns: stmt.getColumnNames(), rows, truncated };
      } finally {
        stmt.free();
      }
    });
  }

  /**
   * Runs one read-only statement and calls `onRow` for each row (values in column order);
   * returning `false` stops early. Rows are not collected, so a scan of any size stays
   * flat; the time budget covers the whole statement.
   */
  each(sql: string, params: SqlValue[] | Record<string, SqlValue> | undefined, onRow: (row: SqlValue[]) => boolean | void): void {
    this.guarded(() => {
      const stmt = this.db.prepare(sql);
      try {
        if (params) stmt.bind(params);
        while (stmt.step()) {
          if (onRow(stmt.get() as SqlValue[]) === false) break;
          if (performance.now() > this.file.deadline) {
            throw new BackupError('TIMEOUT', `Stopped a query on ${this.file.path}: it ran past its time budget.`);
          }
        }
      } finally {
        stmt.free();
      }
    });
  }

  /** The first column of the first row, or undefined. */
  value(sql: string, params?: SqlValue[]): SqlValue | undefined {
    return this.query(sql, params, { maxRows: 1 }).rows[0]?.[0];
  }

  /**
   * `PRAGMA quick_check` or `integrity_check`, and a few facts for the manifest. A
   * damaged file is `ok: false` with SQLite's words; a read that failed (I/O, timeout)
   * throws.
   */
  check(mode: ImageCheckMode): ImageCheck {
    let sqliteVersion = 'unknown';
    let lines: string[];
    try {
      sqliteVersion = String(this.value('select sqlite_version()'));
      if (mode === 'facts') {
        lines = ['ok'];
      } else {
        const r = this.query(mode === 'full' ? 'PRAGMA integrity_check(20)' : 'PRAGMA quick_check(20)', undefined, { maxRows: 20 });
        lines = r.rows.length ? r.rows.map((v) => String(v[0])) : ['no result'];
      }
    } catch (e) {
      if (e instanceof BackupError) throw e;
      return { ok: false, result: errorMessage(e), sqliteVersion };
    }
    if (this.file.changedSinceOpen()) {
      return { ok: false, result: `${this.file.path} changed while it was checked`, sqliteVersion };
    }
    const ok = lines.length === 1 && lines[0] === 'ok';
    const check: ImageCheck = { ok, result: ok ? 'ok' : lines.slice(0, 5).join('; '), sqliteVersion };
    if (!ok) return check;
    const num = (sql: string): number | undefined => {
      try {
        const v = this.value(sql);
        return typeof v === 'number' ? v : undefined;
      } catch (e) {
        if (e instanceof BackupError) throw e;
        return undefined; // table absent in a non-ai-memory database: the fact is simply unknown
      }
    };
    check.pageSize = num('PRAGMA page_size');
    check.pages = num('PRAGMA page_count');
    // Facts come from real tables only: a file we did not write may define `memories` as a
    // view (e.g. over an endless recursive CTE that reads no page, which no budget stops).
    const isTable = (name: string) => this.value("SELECT count(*) FROM main.sqlite_master WHERE type = 'table' AND name = ? AND sql NOT LIKE 'CREATE VIRTUAL%'", [name]) === 1;
    if (isTable('memories')) check.memories = num('SELECT count(*) FROM main."memories"');
    if (isTable('schema_version')) check.schemaVersion = num('SELECT max(version) FROM main."schema_version"');
    return check;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    try {
      this.db.close(); // unlinks the MEMFS file: sql.js lets go of our contents
    } finally {
      this.file.close();
    }
  }
}

/** SQL function of every opened database: lower() of any letter (JavaScript's toLowerCase), not only ASCII. */
export const UNICODE_LOWER = 'aimb_unicode_lower';

/**
 * Opens a snapshot FILE read-only, read on demand. Throws TOO_LARGE beyond
 * {@link MAX_CHECKABLE_BYTES}, IO when it cannot be read, NOT_A_DATABASE when SQLite
 * cannot open it.
 */
export async function openSnapshotFile(path: string, opts: OpenOptions = {}): Promise<SnapshotDatabase> {
  return openPaged(path, opts);
}

/**
 * Opens some pages of a database image as that database (no file: `name` is for messages).
 * A statement that needs a page not picked fails with an IO error naming it; only
 * statements over the picked b-trees can be answered (schemaGuard.ts: the schema, one table).
 */
export async function openPickedPages(name: string, picked: PickedPages, opts: OpenOptions = {}): Promise<SnapshotDatabase> {
  return openPaged(name, opts, picked);
}

async function openPaged(path: string, opts: OpenOptions, picked?: PickedPages): Promise<SnapshotDatabase> {
  const SQL = await loadSqlEngine();
  const file = new PagedFile(path, opts.cacheBytes ?? DEFAULT_CACHE_BYTES, picked);
  if (file.size > MAX_CHECKABLE_BYTES) {
    file.close();
    throw tooLargeError(path, file.size);
  }
  let db: SqlJsDatabase | undefined;
  try {
    // sql.js's typings say Uint8Array; MEMFS only needs what LazySource has (file comment).
    db = new SQL.Database(new LazySource(file) as unknown as Uint8Array);
    // Read-only at the SQL level too, and reads through read(), never mmap().
    db.exec(`PRAGMA query_only = 1; PRAGMA mmap_size = 0; PRAGMA cache_size = -${SQLITE_CACHE_KIB};`);
    // SQLite's lower() folds ASCII only (no ICU in sql.js): the memory search folds other
    // letters (Ü, É, Σ…) with this, as JavaScript lowercases what is searched for.
    db.create_function(UNICODE_LOWER, (v: unknown) => {
      if (v === null || v === undefined) return null;
      return (v instanceof Uint8Array ? Buffer.from(v).toString('utf8') : String(v)).toLowerCase();
    });
    return new SnapshotDatabase(db, file, opts);
  } catch (e) {
    try {
      db?.close();
    } finally {
      file.close();
    }
    if (file.failure) throw file.failure;
    throw new BackupError('NOT_A_DATABASE', `sql.js cannot open ${path}: ${errorMessage(e)}`, { cause: e });
  }
}

export function tooLargeError(path: string, size: number): BackupError {
  return new BackupError('TOO_LARGE', `${path} is ${size} bytes: not checked: larger than the ${describeMaxCheckable()} the WASM checker can open.`);
}

/** `quick_check`/`integrity_check` of a file, read lazily (see {@link SnapshotDatabase.check}). */
export async function checkFile(path: string, mode: ImageCheckMode, opts: OpenOptions = {}): Promise<ImageCheck> {
  let db: SnapshotDatabase;
  try {
    db = await openSnapshotFile(path, opts);
  } catch (e) {
    // A file SQLite cannot open as a database fails the check, in SQLite's words.
    if (e instanceof BackupError && e.code === 'NOT_A_DATABASE') return { ok: false, result: errorMessage(e.cause), sqliteVersion: 'unknown' };
    throw e;
  }
  try {
    return db.check(mode);
  } finally {
    db.close();
  }
}
