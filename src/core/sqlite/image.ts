/**
 * Produces a transaction-consistent, self-contained image of a live SQLite database
 * without taking any SQLite lock: main file + the committed frames of its `-wal`.
 *
 * Why not just copy the file: in WAL mode the newest committed transactions live only in
 * the `-wal` until a checkpoint copies them back, and a checkpoint can run while we read.
 * Why not SQLite's own backup: WASM SQLite cannot take the POSIX locks the server relies on
 * (and must never write to the live file).
 *
 * The read is optimistic. One attempt:
 *   1. note the main file's identity, the rollback journal's state and the `-shm` state;
 *   2. scan the WAL: header salts + cumulative checksums → committed pages (wal.ts);
 *   3. stream pages 1..N: a page's newest committed WAL frame if it has one, else the main
 *      file's page; N comes from the last commit frame (or the file size without a WAL);
 *   4. check nothing moved under us: the WAL header is byte-identical (no restart, no
 *      truncate), and no checkpoint began copying frames newer than our scan into the main
 *      file (shm.ts), or nothing committed at all since the scan; without a WAL, the main
 *      file's inode/size/mtime/change counter are unchanged and no rollback journal is live.
 * If the check fails the sink is reset and the attempt repeats (bounded), so the image
 * holds every transaction committed before the backup began and no partial one.
 *
 * The check only fails when a checkpoint or WAL restart lands inside the read, so the
 * read is kept short: whenever the image fits in memory (always when it is verified
 * afterwards), the WAL is read in one piece and the main file with large parallel reads,
 * the end-of-read check runs, and only then is the image hashed and written. A busy
 * server restarts its WAL after every completed checkpoint; the first retries are
 * immediate because the moment right after a restart is the quietest there is.
 */
import { throwIfCancelled } from '../common/cancel';
import { promises as fsp } from 'node:fs';
import { performance } from 'node:perf_hooks';
import type { FileHandle } from 'node:fs/promises';
import { BackupError, errnoCode, ioError } from '../common/errors';
import { openRegular } from '../common/regularFile';
import { journalIsLive } from './dbFiles';
import { readShm, type ShmInfo } from './shm';
import {
  HEADER_SIZE,
  OFFSET_CHANGE_COUNTER,
  looksEncrypted,
  parseHeader,
  setRollbackMode,
} from './sqliteFormat';
import { emptyScan, fileReader, memoryReader, readFully as readAt, readWalHeaderBytes, scanWal, type ReadAt, type WalScan } from './wal';

export interface ImageInfo {
  /** 'sqlite': plain SQLite 3; 'encrypted': not plain SQLite but looks like an encrypted (SQLCipher) database. */
  kind: 'sqlite' | 'encrypted';
  pageSize: number;
  pages: number;
  bytes: number;
  /** The source was in WAL mode (header bytes 18–19, or a live WAL beside it). */
  walMode: boolean;
  /** Index of the last WAL commit frame applied; 0 when the image came from the main file alone. */
  walCommitFrame: number;
  /** Distinct pages taken from the WAL. */
  walPages: number;
  /** How many reads it took (1 = no race with a writer or checkpoint). */
  attempts: number;
  /** Which end-of-read rule proved the read consistent (for the log and the tests). */
  acceptedBy?: string;
  /** Times a read that a checkpoint overtook was brought up to a newer commit instead of read again. */
  catchUps?: number;
}

/** Where the image goes. Chunks arrive in order; a chunk's bytes may be reused once `chunk` resolves. */
export interface ImageSink {
  begin(info: ImageInfo): Promise<void>;
  /** A buffer for the bytes at [position, position+length) — pooled, or a view of an in-memory image. */
  buffer(position: number, length: number): Uint8Array;
  /** The sink keeps the whole image in memory: `buffer(0, bytes)` is all of it. */
  readonly holdsImage?: boolean;
  chunk(data: Uint8Array, position: number): Promise<void>;
  /** The attempt is abandoned (something moved under us); forget everything since `begin`. */
  reset(): Promise<void>;
  /**
   * A streamed read is being caught up (see catchUp): after every chunk already handed
   * over, the image becomes `info.bytes` long (cut, or grown by pages that `patch` then
   * fills) and the pages at these positions are replaced. Whatever was computed over the
   * chunks as they streamed (a hash) must be computed again over the final image.
   */
  resize(info: ImageInfo): Promise<void>;
  patch(data: Uint8Array, position: number): Promise<void>;
}

export interface ReadImageOptions {
  signal?: AbortSignal;
  /** Reads before giving up with DB_BUSY (default 25)... */
  maxAttempts?: number;
  /**
   * ...and only once this long has passed since the first read (default 10 s; 0 = the count
   * alone). Under a writer that restarts its WAL every ~15 ms, 25 reads on a loaded 2-core
   * machine can all be overtaken within a second (measured: up to 22 reads for one backup);
   * a backup would rather take a few seconds longer than say "too busy".
   */
  patienceMs?: number;
  /** Images up to this size (with the WAL, when that is held too) are read whole into memory before anything is written (default 32 MiB). */
  bufferBytes?: number;
  /** Bytes per read; a multiple of every page size (64 KiB). */
  chunkBytes?: number;
  onRetry?: (attempt: number, reason: string) => void;
  /**
   * Test hook at the moments where a concurrent checkpoint hurts most: after the WAL scan
   * (before the main file is read), after the stream (before the end-of-read checks), and
   * inside the end check just before the final WAL-header comparison, and after a catch-up
   * (before its end check).
   */
  hook?: (point: 'after-scan' | 'after-stream' | 'before-header-recheck' | 'after-catch-up') => Promise<void>;
  /**
   * Read only the pages this asks for, not the image: it is called once per attempt with a
   * reader of single pages of that attempt's consistent image (1-based; WAL frame or main
   * file) and reads what it needs. The sink is then given only those pages, in order, once
   * the end-of-read checks proved the attempt consistent (as for a whole image). A read
   * that a checkpoint overtook is read again, never caught up.
   */
  select?: (read: (pgno: number) => Promise<Uint8Array>, info: ImageInfo) => Promise<void>;
}

export const DEFAULT_CHUNK_BYTES = 1 << 20;
/**
 * What an unverified read may hold in memory: the WAL, and the image when both fit. Node
 * itself takes ~60 MB, so this keeps `backup --verify off` under 100 MB at any size.
 */
const DEFAULT_BUFFER_BYTES = 32 << 20;
/** Parallel reads of the main file in buffered mode. */
const BUFFERED_READ_BYTES = 8 << 20;

interface MainState {
  ino: bigint;
  size: bigint;
  mtimeNs: bigint;
  changeCounter: number | undefined;
}

async function openIfExists(path: string): Promise<FileHandle | undefined> {
  try {
    // A sidecar that is a FIFO or a device must never block or feed us endlessly (regularFile.ts).
    return (await openRegular(path)).fh;
  } catch (e) {
    if (errnoCode(e) === 'ENOENT') return undefined;
    throw ioError('opening', path, e);
  }
}


async function mainState(fh: FileHandle): Promise<MainState> {
  const st = await fh.stat({ bigint: true });
  const head = Buffer.alloc(HEADER_SIZE);
  const n = await readAt(fh, head, 0);
  const hdr = n === HEADER_SIZE ? parseHeader(head) : undefined;
  return { ino: st.ino, size: st.size, mtimeNs: st.mtimeNs, changeCounter: hdr?.changeCounter ?? head.readUInt32BE(OFFSET_CHANGE_COUNTER) };
}

/** A rollback journal is live (being written, or hot after a crash) when its header starts with the magic. */
function sameBytes(a: Buffer | undefined, b: Buffer | undefined): boolean {
  if (!a || !b) return a === b;
  return a.equals(b);
}

const CANCELLED = 'Backup cancelled.';

/** Validates the database path and classifies the file; throws the user-facing refusal otherwise. */
export async function inspectDatabase(dbPath: string): Promise<{ kind: 'sqlite' | 'encrypted'; size: number }> {
  let st;
  try {
    st = await fsp.stat(dbPath);
  } catch (e) {
    if (errnoCode(e) === 'ENOENT' || errnoCode(e) === 'ENOTDIR') {
      throw new BackupError('DB_NOT_FOUND', `Database not found: ${dbPath}`, {
        hint: 'Check the path (--db, $AI_MEMORY_DB or ~/.config/ai-memory/config.toml). Nothing was created.',
      });
    }
    throw ioError('reading', dbPath, e);
  }
  if (st.isDirectory()) {
    throw new BackupError('DB_IS_DIRECTORY', `${dbPath} is a directory, not a database file.`, {
      hint: 'Point --db at the ai-memory .db file itself.',
    });
  }
  if (!st.isFile()) throw new BackupError('NOT_A_DATABASE', `${dbPath} is not a regular file.`);
  if (st.size === 0) {
    throw new BackupError('DB_EMPTY', `${dbPath} is empty (0 bytes): there is nothing to back up.`, {
      hint: 'Check that this is the file your ai-memory server uses.',
    });
  }
  // The descriptor is checked, not the name (which the stat above saw): never a FIFO swapped in (regularFile.ts).
  const { fh } = await openRegular(dbPath).catch((e: unknown) => {
    throw ioError('opening', dbPath, e);
  });
  try {
    const head = Buffer.alloc(4096);
    const n = await readAt(fh, head, 0);
    if (parseHeader(head.subarray(0, n))) return { kind: 'sqlite', size: st.size };
    if (looksEncrypted(head.subarray(0, n), st.size)) return { kind: 'encrypted', size: st.size };
  } finally {
    await fh.close();
  }
  throw new BackupError('NOT_A_DATABASE', `${dbPath} is not an SQLite database.`, {
    hint: 'Point --db at the ai-memory .db file (it starts with "SQLite format 3").',
  });
}

/** How long a read keeps trying after its first attempt, unless told otherwise (see `patienceMs`). */
export const DEFAULT_PATIENCE_MS = 10_000;

/** Pause before attempt `n` (2, 3, …): none at first, then growing to half a second. */
function retryDelay(n: number): number {
  if (n <= 4) return 0;
  return Math.min(500, 5 * 2 ** (n - 5));
}

/** Reads a consistent image of `dbPath` into `sink`; see the file comment for the protocol. */
export async function readConsistentImage(dbPath: string, sink: ImageSink, opts: ReadImageOptions = {}): Promise<ImageInfo> {
  const maxAttempts = opts.maxAttempts ?? 25;
  const patienceMs = opts.patienceMs ?? DEFAULT_PATIENCE_MS;
  const chunkBytes = opts.chunkBytes ?? DEFAULT_CHUNK_BYTES;
  const bufferBytes = opts.bufferBytes ?? DEFAULT_BUFFER_BYTES;
  const { kind } = await inspectDatabase(dbPath);
  const walPath = `${dbPath}-wal`;
  const shmPath = `${dbPath}-shm`;
  const journalPath = `${dbPath}-journal`;
  let lastReason = '';
  /** The WAL header the last read began with, when that read failed because the WAL restarted. */
  let restarted: Buffer | undefined;
  // Patience on the steady clock: a wall clock set back meanwhile (NTP) kept a read that every
  // checkpoint overtook retrying — holding the folder lock — until the wall clock came back.
  const firstRead = performance.now();
  let attempt = 0;
  while (++attempt <= maxAttempts || performance.now() - firstRead < patienceMs) {
    throwIfCancelled(opts.signal, CANCELLED);
    if (attempt > 1) {
      opts.onRetry?.(attempt, lastReason);
      const wait = retryDelay(attempt);
      if (restarted && attempt > 2) {
        // The writer restarts its WAL faster than we read (each read met a restart). The
        // longest quiet stretch begins right after a restart, so wait for the next one
        // (the 32-byte header changes) and read at once, instead of at a random moment.
        await waitForWalHeaderChange(walPath, restarted, Math.max(wait, 50), opts.signal);
      } else {
        await new Promise((r) => (wait ? setTimeout(r, wait) : setImmediate(r)));
      }
      restarted = undefined;
    }
    const { fh: main } = await openRegular(dbPath).catch((e: unknown) => {
      throw ioError('opening', dbPath, e);
    });
    let wal: FileHandle | undefined;
    let shm: FileHandle | undefined;
    try {
      shm = await openIfExists(shmPath);
      const shmStart = await readShm(shm);
      wal = await openIfExists(walPath);
      // A WAL small enough is read in one piece and scanned from memory: its frames can
      // then not be overwritten under us by a restart while we stream.
      const walSize = wal ? (await wal.stat()).size : 0;
      const walBytes = wal && walSize <= bufferBytes ? await readWhole(wal, walSize) : undefined;
      const walRead = walBytes ? memoryReader(walBytes) : wal ? fileReader(wal) : undefined;
      const walRawStart = walBytes ? (walBytes.length >= 32 ? Buffer.from(walBytes.subarray(0, 32)) : undefined) : await readWalHeaderBytes(wal);
      let scan: WalScan = walRead ? await scanWal(walRead) : emptyScan();
      if (!sameBytes(walRawStart, scan.header ? scan.header.raw : walRawStart)) {
        lastReason = 'the WAL was restarted while it was scanned';
        restarted = walRawStart;
        continue;
      }
      // The main file's identity and size are taken now, after the wal-index and the WAL:
      // a checkpoint that finished before this point is fully in the file we are about to
      // read (taken earlier, a TRUNCATE finishing in between left page 1 promising pages
      // the image was cut short of).
      await opts.hook?.('after-scan');
      const before = await mainState(main);
      // Whatever other sidecars exist: SQLite rolls a hot journal back before it even looks
      // for a WAL (dbFiles.ts), so a stray -wal (even one with a valid header) never hides it.
      const journalAtStart = await journalIsLive(dbPath);
      if (journalAtStart) {
        lastReason = 'a rollback journal is live (a writer is mid-transaction, or one crashed)';
        if (attempt >= Math.min(maxAttempts, 10)) {
          throw new BackupError('HOT_JOURNAL', `${dbPath} has a live rollback journal (${journalPath}): a writer is in the middle of a transaction, or crashed in one.`, {
            hint: 'Let the writer finish (or open the database once with ai-memory or sqlite3 so SQLite rolls the journal back), then back up again.',
          });
        }
        continue;
      }

      let info: ImageInfo;
      try {
        info = await planImage(main, kind, scan, before, dbPath);
      } catch (e) {
        // The main file's header against the WAL we scanned: a writer that changed the page
        // size (rollback mode, page_size, VACUUM, WAL again) between our scan and this read
        // left a header that disagrees with the WAL it deleted. That is a race, read again;
        // only a disagreement that holds while neither file moves is the files' own state.
        if (e instanceof BackupError && e.code === 'NOT_A_DATABASE' && (await movedSinceScan(dbPath, walPath, walRawStart, before))) {
          lastReason = 'the database was rewritten (its page size changed) during the read';
          continue;
        }
        throw e;
      }
      info.attempts = attempt;
      await sink.begin(info);
      // Select mode: only the pages asked for, held until the end-of-read checks pass; never
      // caught up (an overtaken read of a few pages is simply read again).
      const picked = opts.select ? await selectPages(main, walRead, scan, info, opts.select) : undefined;
      let whole: Uint8Array | undefined;
      if (!picked) {
        const buffered = sink.holdsImage || info.bytes + (walBytes?.length ?? 0) <= bufferBytes;
        if (buffered) {
          whole = sink.holdsImage ? sink.buffer(0, info.bytes) : new Uint8Array(info.bytes);
          await readWholeImage(main, walRead, scan, info, whole);
        } else {
          await streamImage(main, walRead, scan, info, sink, chunkBytes, opts.signal);
        }
      }
      await opts.hook?.('after-stream');

      // End-of-read checks: reopen by path, because a deleted-and-recreated WAL is a new file.
      let verdict = await endCheck({ dbPath, walPath, shmPath, walRawStart, scan, shmStart, before, hook: opts.hook });
      // A checkpoint overtook the read within the same WAL generation: rather than read it
      // all again (under a server that checkpoints every few commits, every full read would
      // be overtaken), bring the image in memory up to the newest commit and check again.
      // A streamed read is caught up the same way, by patching the pages already handed over.
      for (let n = 1; !picked && !verdict.ok && verdict.catchUp && n <= MAX_CATCH_UPS; n++) {
        throwIfCancelled(opts.signal, CANCELLED);
        const caught = await catchUp(walPath, scan, info, whole, sink);
        if (!caught) break;
        ({ scan, info, whole } = caught);
        info.catchUps = n;
        await opts.hook?.('after-catch-up');
        verdict = await endCheck({ dbPath, walPath, shmPath, walRawStart, scan, shmStart, before, hook: opts.hook });
      }
      if (!verdict.ok) {
        lastReason = verdict.reason;
        if (verdict.restarted) restarted = walRawStart;
        await sink.reset();
        continue;
      }
      info.acceptedBy = verdict.rule;
      if (picked) {
        for (const pgno of [...picked.keys()].sort((a, b) => a - b)) {
          await sink.chunk(picked.get(pgno) as Uint8Array, (pgno - 1) * info.pageSize);
        }
        return info;
      }
      // The image is settled; only now is it handed over in chunks (hashed and written).
      if (whole) {
        for (let pos = 0; pos < info.bytes; pos += chunkBytes) {
          throwIfCancelled(opts.signal, CANCELLED);
          await sink.chunk(whole.subarray(pos, Math.min(info.bytes, pos + chunkBytes)), pos);
        }
      }
      return info;
    } finally {
      await Promise.all([main.close(), wal?.close(), shm?.close()]);
    }
  }
  const seconds = ((performance.now() - firstRead) / 1000).toFixed(1);
  throw new BackupError('DB_BUSY', `Database too busy: ${dbPath} changed under every one of ${attempt - 1} reads in ${seconds} s (last: ${lastReason}).`, {
    hint: 'Try again in a moment; if it keeps happening, the server may be checkpointing continuously.',
  });
}

/** Resolves when the WAL header differs from `header` (polled every millisecond), or after `maxMs`. */
async function waitForWalHeaderChange(walPath: string, header: Buffer | undefined, maxMs: number, signal: AbortSignal | undefined): Promise<void> {
  const until = performance.now() + maxMs;
  while (performance.now() < until) {
    throwIfCancelled(signal, CANCELLED);
    const now = await readWalHeaderAt(walPath);
    if (!sameBytes(header, now)) return;
    await new Promise((r) => setTimeout(r, 1));
  }
}

async function readWhole(fh: FileHandle, size: number): Promise<Buffer> {
  const buf = Buffer.allocUnsafe(size);
  const n = await readAt(fh, buf, 0);
  return n === size ? buf : buf.subarray(0, n);
}

/** Catch-ups per read before reading again from scratch. Each one reads only new WAL frames. */
const MAX_CATCH_UPS = 20;

/**
 * Brings an image (read in memory, or already streamed to the sink) up to the WAL's newest
 * commit, after endCheck found that a checkpoint copied frames newer than the image's commit into the main file during the
 * read (same WAL generation: same salts in the header and the wal-index, before and after).
 *
 * Why that is sound: within one WAL generation a checkpoint writes into the main file only
 * pages that are in the WAL, each at a version no newer than nBackfillAttempted. So every
 * page the read took from the main file is either in a WAL frame up to the new commit —
 * and overwritten here with its newest committed version — or was not touched since the
 * generation began. Pages the database gained since the old commit must all be in the new
 * frames (otherwise we give up and read again). endCheck then runs again against the new
 * commit: nBackfillAttempted must not have passed it, and the WAL header read last must be
 * unchanged, which proves that no restart reused the frames read here.
 */
async function catchUp(
  walPath: string,
  scan: WalScan,
  info: ImageInfo,
  whole: Uint8Array | undefined,
  sink: ImageSink,
): Promise<{ scan: WalScan; info: ImageInfo; whole: Uint8Array | undefined } | undefined> {
  if (!scan.header) return undefined;
  const wal = await openIfExists(walPath);
  if (!wal) return undefined;
  try {
    const more = await scanWal(wal, scan); // only the pages committed after scan.commitFrame
    if (more.commitFrame === scan.commitFrame) return undefined;
    const { pageSize } = info;
    const pages = more.dbPages;
    for (let p = info.pages + 1; p <= pages; p++) if (!more.pages.has(p)) return undefined;
    const merged: WalScan = { ...more, pages: new Map([...scan.pages, ...more.pages]) };
    const next: ImageInfo = { ...info, pages, bytes: pages * pageSize, walCommitFrame: more.commitFrame, walPages: merged.pages.size };
    if (!whole) {
      // Streamed: the chunks are written already; cut or grow the image, then replace the
      // pages the new frames hold, one at a time (memory stays flat).
      await sink.resize(next);
      const page = new Uint8Array(pageSize);
      const read = fileReader(wal);
      for (const [pgno, off] of more.pages) {
        if (pgno > pages) continue;
        await read(page, off);
        if (pgno === 1 && info.kind === 'sqlite') setRollbackMode(page);
        await sink.patch(page, (pgno - 1) * pageSize);
      }
      return { scan: merged, info: next, whole: undefined };
    }
    await sink.begin(next); // nothing was handed over yet in buffered mode: this only resets
    const image = sink.holdsImage ? sink.buffer(0, next.bytes) : next.bytes === whole.length ? whole : new Uint8Array(next.bytes);
    if (image.buffer !== whole.buffer || image.byteOffset !== whole.byteOffset) image.set(whole.subarray(0, Math.min(whole.length, next.bytes)));
    await overlayWalPages(fileReader(wal), more.pages, image, pageSize, pages);
    if (info.kind === 'sqlite') setRollbackMode(image);
    return { scan: merged, info: next, whole: image };
  } finally {
    await wal.close();
  }
}

/** Reads each WAL page (page number → frame content offset) over its place in `image`, up to page `maxPage`. */
async function overlayWalPages(wal: ReadAt, pages: Map<number, number>, image: Uint8Array, pageSize: number, maxPage: number): Promise<void> {
  const reads: Promise<number>[] = [];
  for (const [pgno, off] of pages) {
    if (pgno <= maxPage) reads.push(wal(image.subarray((pgno - 1) * pageSize, pgno * pageSize), off));
  }
  await Promise.all(reads);
}

/** Buffered mode: the main file in large parallel reads, then the WAL pages over it. */
async function readWholeImage(main: FileHandle, wal: ReadAt | undefined, scan: WalScan, info: ImageInfo, image: Uint8Array): Promise<void> {
  const reads: Promise<void>[] = [];
  for (let pos = 0; pos < info.bytes; pos += BUFFERED_READ_BYTES) {
    const part = image.subarray(pos, Math.min(info.bytes, pos + BUFFERED_READ_BYTES));
    reads.push(readAt(main, part, pos).then((n) => void part.fill(0, n)));
  }
  await Promise.all(reads);
  await overlayWalPages(wal as ReadAt, scan.pages, image, info.pageSize, info.pages);
  if (info.kind === 'sqlite') setRollbackMode(image);
}

/** Select mode: the pages `select` reads, each read once (its newest committed WAL frame, else the main file). */
async function selectPages(main: FileHandle, wal: ReadAt | undefined, scan: WalScan, info: ImageInfo, select: NonNullable<ReadImageOptions['select']>): Promise<Map<number, Uint8Array>> {
  const picked = new Map<number, Uint8Array>();
  const read = async (pgno: number): Promise<Uint8Array> => {
    if (!Number.isInteger(pgno) || pgno < 1 || pgno > info.pages) throw new BackupError('NOT_A_DATABASE', `page ${pgno} is outside the database (${info.pages} pages)`);
    const had = picked.get(pgno);
    if (had) return had;
    const page = new Uint8Array(info.pageSize);
    const off = scan.pages.get(pgno);
    if (off !== undefined && wal) await wal(page, off);
    else page.fill(0, await readAt(main, page, (pgno - 1) * info.pageSize));
    if (pgno === 1 && info.kind === 'sqlite') setRollbackMode(page);
    picked.set(pgno, page);
    return page;
  };
  await select(read, info);
  return picked;
}

async function planImage(main: FileHandle, kind: 'sqlite' | 'encrypted', scan: WalScan, before: MainState, dbPath: string): Promise<ImageInfo> {
  const head = Buffer.alloc(HEADER_SIZE);
  await readAt(main, head, 0);
  const hdr = kind === 'sqlite' ? parseHeader(head) : undefined;
  if (kind === 'sqlite' && !hdr) {
    throw new BackupError('NOT_A_DATABASE', `${dbPath} no longer looks like an SQLite database (its header changed).`);
  }
  const size = Number(before.size);
  if (scan.header && hdr && scan.header.pageSize !== hdr.pageSize) {
    throw new BackupError('NOT_A_DATABASE', `${dbPath}-wal has page size ${scan.header.pageSize} but the database has ${hdr.pageSize}: the WAL does not belong to this database.`, {
      hint: 'Move the stray -wal file away (keep a copy) and back up again.',
    });
  }
  const pageSize = hdr?.pageSize ?? scan.header?.pageSize ?? 4096;
  let pages: number;
  let bytes: number;
  if (scan.commitFrame > 0) {
    pages = scan.dbPages;
    bytes = pages * pageSize;
  } else if (hdr) {
    // fileformat2 §1.3.9: the in-header size wins when valid (btree.c lockBtree does the same).
    const filePages = Math.ceil(size / pageSize);
    pages = hdr.headerPages !== undefined && hdr.headerPages <= filePages ? hdr.headerPages : filePages;
    bytes = pages * pageSize;
  } else {
    // Encrypted, no WAL: an exact byte copy.
    pages = Math.ceil(size / pageSize);
    bytes = size;
  }
  return {
    kind,
    pageSize,
    pages,
    bytes,
    walMode: Boolean(hdr?.walMode) || scan.header !== undefined,
    walCommitFrame: scan.commitFrame,
    walPages: scan.pages.size,
    attempts: 0,
  };
}

async function streamImage(
  main: FileHandle,
  wal: ReadAt | undefined,
  scan: WalScan,
  info: ImageInfo,
  sink: ImageSink,
  chunkBytes: number,
  signal: AbortSignal | undefined,
): Promise<void> {
  const { pageSize, bytes } = info;
  const chunk = Math.max(pageSize, Math.floor(chunkBytes / pageSize) * pageSize);
  // WAL pages sorted by page number, walked alongside the chunks.
  const overlay = [...scan.pages.entries()].filter(([p]) => p <= info.pages).sort((a, b) => a[0] - b[0]);
  let oi = 0;
  const read = async (position: number) => {
    const length = Math.min(chunk, bytes - position);
    const buf = sink.buffer(position, length);
    const n = await readAt(main, buf, position);
    if (n < length) buf.fill(0, n); // pages past the main file's end exist only in the WAL
    const firstPage = position / pageSize + 1;
    const lastPage = (position + length) / pageSize;
    const reads: Promise<number>[] = [];
    while (oi < overlay.length && overlay[oi][0] <= lastPage) {
      const [pgno, off] = overlay[oi++];
      if (pgno < firstPage) continue;
      reads.push((wal as ReadAt)(buf.subarray((pgno - firstPage) * pageSize, (pgno - firstPage + 1) * pageSize), off));
    }
    await Promise.all(reads);
    if (position === 0 && info.kind === 'sqlite') setRollbackMode(buf);
    return { buf, position };
  };
  if (bytes === 0) return;
  // Read-ahead of one chunk: the next read runs on the thread pool while the sink hashes
  // and writes the current one.
  let next: Promise<{ buf: Uint8Array; position: number }> | undefined = read(0);
  while (next) {
    const cur: { buf: Uint8Array; position: number } = await next;
    throwIfCancelled(signal, CANCELLED);
    const np: number = cur.position + cur.buf.length;
    next = np < bytes ? read(np) : undefined;
    try {
      await sink.chunk(cur.buf, cur.position);
    } catch (e) {
      // Let an in-flight read settle before the caller closes the file handles.
      await next?.catch(() => undefined);
      throw e;
    }
  }
}

/**
 * `catchUp`: the only thing wrong is that a checkpoint copied frames newer than our commit
 * into the main file, within the same WAL generation: the read can be brought up to a
 * newer commit (see catchUp) instead of being read again.
 */
type Verdict = { ok: true; rule: string } | { ok: false; reason: string; catchUp?: boolean; restarted?: boolean };

async function readShmAt(path: string): Promise<ShmInfo | undefined> {
  const fh = await openIfExists(path);
  return readShm(fh).finally(() => fh?.close());
}

async function readWalHeaderAt(path: string): Promise<Buffer | undefined> {
  const fh = await openIfExists(path);
  return readWalHeaderBytes(fh).finally(() => fh?.close());
}

/**
 * Decides whether the read that just finished is consistent. The order of the reads here
 * matters: first the wal-index and, if needed, a re-scan of the WAL; the WAL header LAST.
 * A restart writes the new header before any frame of the new generation, so a header
 * byte-identical to the one we began with, read after everything else, proves that every
 * frame read before it (by the scan at the start and the re-scan here) belongs to the
 * same generation. (Checked first, a restart landing just after it let the re-scan see the
 * new generation's frames as "nothing new" and accept a torn image.)
 */
async function endCheck(s: {
  dbPath: string;
  walPath: string;
  shmPath: string;
  walRawStart: Buffer | undefined;
  scan: WalScan;
  shmStart: ShmInfo | undefined;
  before: MainState;
  hook?: ReadImageOptions['hook'];
}): Promise<Verdict> {
  const shmEnd = await readShmAt(s.shmPath);
  let verdict: Verdict;
  if (s.scan.header) {
    const limit = s.shmStart?.salts.equals(s.scan.header.salts) ? s.scan.commitFrame : 0;
    if (s.shmStart && shmEnd && s.shmStart.salts.equals(shmEnd.salts) && shmEnd.nBackfillAttempted <= limit) {
      // No restart (same salts) and no checkpoint reached past our scan (nBackfillAttempted
      // is stored before any page is copied).
      verdict = { ok: true, rule: `shm(nBackfillAttempted ${s.shmStart.nBackfillAttempted}->${shmEnd.nBackfillAttempted} <= ${limit})` };
    } else {
      // No usable wal-index verdict: safe only if nothing committed since the scan (then no
      // checkpoint could have copied anything newer into the main file).
      const wal = await openIfExists(s.walPath);
      const more = await scanWal(wal, s.scan).finally(() => wal?.close());
      const sameGeneration = Boolean(s.shmStart && shmEnd && s.shmStart.salts.equals(s.scan.header.salts) && shmEnd.salts.equals(s.scan.header.salts));
      verdict = more.commitFrame === s.scan.commitFrame
        ? { ok: true, rule: `no-new-commits(frame ${s.scan.commitFrame})` }
        : { ok: false, reason: 'a checkpoint copied transactions newer than the snapshot into the database file during the read', catchUp: sameGeneration };
    }
  } else if (s.shmStart && (!shmEnd || !shmEnd.salts.equals(s.shmStart.salts) || shmEnd.nBackfillAttempted !== s.shmStart.nBackfillAttempted)) {
    // No WAL, but a live wal-index: a WAL-mode database can go from an empty WAL back to an
    // empty WAL with a whole write + TRUNCATE checkpoint in between. mtime may miss that
    // (its clock is coarse); the wal-index does not (new salts, or nBackfillAttempted moved).
    verdict = { ok: false, reason: 'a checkpoint ran during the read' };
  } else {
    const changed = (await mainUnchanged(s.dbPath, s.before)) ?? ((await journalIsLive(s.dbPath)) ? 'a rollback journal appeared during the read' : undefined);
    verdict = changed ? { ok: false, reason: changed } : { ok: true, rule: 'no-wal-main-unchanged' };
  }

  await s.hook?.('before-header-recheck');
  const walRawEnd = await readWalHeaderAt(s.walPath);
  if (sameBytes(s.walRawStart, walRawEnd)) return verdict;
  // The WAL was empty when we began (a TRUNCATE checkpoint had just put everything in the
  // main file) and a new generation started during the read: harmless as long as none of
  // it reached the main file. The wal-index carried the new generation's salts already
  // when we began (walRestartHdr writes them at the truncate), and after our read still
  // showed nothing of it backfilled.
  if (!s.scan.header && walRawEnd && s.shmStart && shmEnd && s.shmStart.nBackfillAttempted === 0 && shmEnd.nBackfillAttempted === 0) {
    const salts = walRawEnd.subarray(16, 24);
    if (s.shmStart.salts.equals(salts) && shmEnd.salts.equals(salts) && (await mainUnchanged(s.dbPath, s.before)) === undefined) {
      return { ok: true, rule: 'new-generation-not-backfilled' };
    }
  }
  return { ok: false, reason: 'the WAL was restarted or truncated by a checkpoint during the read', restarted: true };
}

/** Whether the WAL is no longer the one scanned (another header, or gone) or the main file changed since `before`. */
async function movedSinceScan(dbPath: string, walPath: string, walRawStart: Buffer | undefined, before: MainState): Promise<boolean> {
  return !sameBytes(walRawStart, await readWalHeaderAt(walPath)) || (await mainUnchanged(dbPath, before)) !== undefined;
}

/** Undefined when the main file is the same file, same size, same mtime and change counter as `before`. */
async function mainUnchanged(dbPath: string, before: MainState): Promise<string | undefined> {
  const fh = await openIfExists(dbPath);
  if (!fh) return 'the database file disappeared during the read';
  try {
    const after = await mainState(fh);
    if (after.ino !== before.ino) return 'the database file was replaced during the read';
    if (after.size !== before.size || after.mtimeNs !== before.mtimeNs || after.changeCounter !== before.changeCounter) {
      return 'the database file was written during the read';
    }
    return undefined;
  } finally {
    await fh.close();
  }
}
