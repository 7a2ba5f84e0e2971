/**
 * Reads the committed content of a SQLite write-ahead log without SQLite.
 *
 * Format: https://www.sqlite.org/fileformat2.html#the_write_ahead_log (§4.1 header and
 * frames, §4.2 checksum algorithm, §4.3 which frames are valid) and
 * https://www.sqlite.org/walformat.html. A frame belongs to the log only when its salts
 * equal the header's and the cumulative checksum over the header and every frame up to
 * and including it matches; only frames up to the last valid *commit* frame (a frame
 * whose "database size after commit" field is non-zero) hold committed transactions.
 */
import type { FileHandle } from 'node:fs/promises';
import { decodePageSize } from './sqliteFormat';

export const WAL_HEADER_SIZE = 32;
export const WAL_FRAME_HEADER_SIZE = 24;
const WAL_MAGIC_LE = 0x377f0682;
const WAL_MAGIC_BE = 0x377f0683;
const WAL_FORMAT_VERSION = 3007000;

export interface WalHeader {
  /** The 32 header bytes as read; equality of these bytes means "same WAL generation". */
  raw: Buffer;
  pageSize: number;
  checkpointSeq: number;
  /** Salt bytes 16..24 of the header, as they appear in frames and in the wal-index. */
  salts: Buffer;
  /** §4.2: checksum words are big-endian when the magic's low bit is 1. */
  bigEndianChecksum: boolean;
}

export interface WalScan {
  /** Undefined when there is no WAL, it is shorter than a header, or the header is invalid (SQLite then ignores it). */
  header: WalHeader | undefined;
  /** 1-based index of the last valid commit frame; 0 when the log holds no committed transaction. */
  commitFrame: number;
  /** Database size in pages after the last commit (§4.1 frame header word 2); 0 without a commit. */
  dbPages: number;
  /** Page number → file offset of that page's content in its newest committed frame. */
  pages: Map<number, number>;
  /** Cumulative checksum after the last commit frame, to continue the chain later. */
  checksum: [number, number];
  /** Number of frames read past the last commit that were valid but uncommitted. */
  uncommittedFrames: number;
}

export function frameSize(pageSize: number): number {
  return WAL_FRAME_HEADER_SIZE + pageSize;
}

/** File offset of frame `index` (1-based). */
export function frameOffset(index: number, pageSize: number): number {
  return WAL_HEADER_SIZE + (index - 1) * frameSize(pageSize);
}

/**
 * §4.2 checksum over `len` bytes (a multiple of 8) of `view` starting at `off`, continuing
 * from `s`. Words are read in the byte order the WAL header declares.
 */
export function walChecksum(view: DataView, off: number, len: number, littleEndian: boolean, s: [number, number]): [number, number] {
  let s0 = s[0];
  let s1 = s[1];
  const end = off + len;
  for (let i = off; i < end; i += 8) {
    s0 = (s0 + view.getUint32(i, littleEndian) + s1) >>> 0;
    s1 = (s1 + view.getUint32(i + 4, littleEndian) + s0) >>> 0;
  }
  return [s0, s1];
}

const HOST_LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/**
 * walChecksum over 32-bit words already in the host's byte order (an Int32Array view):
 * the common case — SQLite writes the WAL in its host's byte order — without a DataView
 * call per word (2–3× faster; the scan is most of a backup's CPU time on a large WAL).
 */
function walChecksumWords(words: Int32Array, start: number, count: number, s: [number, number]): [number, number] {
  // Int32 throughout (`| 0` wraps like uint32 addition): V8 then adds machine integers
  // instead of doubles. Converted back to unsigned once at the end.
  let s0 = s[0] | 0;
  let s1 = s[1] | 0;
  const end = start + count;
  for (let i = start; i < end; i += 2) {
    s0 = (s0 + words[i] + s1) | 0;
    s1 = (s1 + words[i + 1] + s0) | 0;
  }
  return [s0 >>> 0, s1 >>> 0];
}

/** Parses and checks a 32-byte WAL header (§4.1); undefined when SQLite would not accept it. */
export function parseWalHeader(raw: Buffer): WalHeader | undefined {
  if (raw.length < WAL_HEADER_SIZE) return undefined;
  const magic = raw.readUInt32BE(0);
  if (magic !== WAL_MAGIC_LE && magic !== WAL_MAGIC_BE) return undefined;
  if (raw.readUInt32BE(4) !== WAL_FORMAT_VERSION) return undefined;
  const rawPageSize = raw.readUInt32BE(8);
  const pageSize = rawPageSize === 65536 ? 65536 : decodePageSize(rawPageSize);
  if (pageSize === undefined) return undefined;
  const bigEndianChecksum = (magic & 1) === 1;
  const view = new DataView(raw.buffer, raw.byteOffset, WAL_HEADER_SIZE);
  const [c0, c1] = walChecksum(view, 0, 24, !bigEndianChecksum, [0, 0]);
  if (c0 !== raw.readUInt32BE(24) || c1 !== raw.readUInt32BE(28)) return undefined;
  return {
    raw: Buffer.from(raw.subarray(0, WAL_HEADER_SIZE)),
    pageSize,
    checkpointSeq: raw.readUInt32BE(12),
    salts: Buffer.from(raw.subarray(16, 24)),
    bigEndianChecksum,
  };
}

/** Reads into `buf` at `position` until full or end of data; returns the byte count. */
export type ReadAt = (buf: Uint8Array, position: number) => Promise<number>;

export function fileReader(fh: FileHandle): ReadAt {
  return (buf, position) => readFully(fh, buf, position);
}

/** A reader over bytes already in memory (a WAL read in one piece). */
export function memoryReader(bytes: Uint8Array): ReadAt {
  return async (buf, position) => {
    const n = Math.max(0, Math.min(buf.length, bytes.length - position));
    if (n > 0) buf.set(bytes.subarray(position, position + n));
    return n;
  };
}

/** Reads into `buf` from `position` until it is full or the file ends; returns the byte count. */
export async function readFully(fh: FileHandle, buf: Uint8Array, position: number): Promise<number> {
  let done = 0;
  while (done < buf.length) {
    const { bytesRead } = await fh.read(buf, done, buf.length - done, position + done);
    if (bytesRead === 0) break;
    done += bytesRead;
  }
  return done;
}

/** Reads the first 32 bytes of the WAL, or undefined when it is shorter (absent, empty, truncated). */
export async function readWalHeaderBytes(fh: FileHandle | undefined): Promise<Buffer | undefined> {
  if (!fh) return undefined;
  const buf = Buffer.alloc(WAL_HEADER_SIZE);
  const n = await readFully(fh, buf, 0);
  return n === WAL_HEADER_SIZE ? buf : undefined;
}

export function emptyScan(): WalScan {
  return { header: undefined, commitFrame: 0, dbPages: 0, pages: new Map(), checksum: [0, 0], uncommittedFrames: 0 };
}

/** How many frames are read per I/O while scanning (≈ 1 MiB with 4 KiB pages). */
const FRAMES_PER_READ = 256;

/**
 * Scans the WAL behind `fh` and returns the committed frames. With `from`, continues a
 * previous scan of the same generation after its last commit (to ask "did anything
 * commit since?") instead of starting over; the returned map then only holds pages
 * committed after `from.commitFrame`.
 */
export async function scanWal(source: FileHandle | ReadAt | undefined, from?: WalScan): Promise<WalScan> {
  if (!source) return emptyScan();
  const read: ReadAt = typeof source === 'function' ? source : fileReader(source);
  let header: WalHeader | undefined;
  if (from?.header) {
    header = from.header;
  } else {
    const raw = Buffer.alloc(WAL_HEADER_SIZE);
    header = (await read(raw, 0)) === WAL_HEADER_SIZE ? parseWalHeader(raw) : undefined;
    if (!header) return emptyScan();
  }
  const { pageSize, salts } = header;
  const littleEndian = !header.bigEndianChecksum;
  const fsz = frameSize(pageSize);
  const result: WalScan = {
    header,
    commitFrame: from?.commitFrame ?? 0,
    dbPages: from?.dbPages ?? 0,
    pages: new Map(),
    checksum: from ? [from.checksum[0], from.checksum[1]] : [header.raw.readUInt32BE(24), header.raw.readUInt32BE(28)],
    uncommittedFrames: 0,
  };
  // Pages of the transaction being read; they join `pages` only when its commit frame is valid.
  let pending = new Map<number, number>();
  let running: [number, number] = [result.checksum[0], result.checksum[1]];
  let frame = result.commitFrame + 1;
  // Not from Buffer's shared pool (too large for it): its own ArrayBuffer, 4-byte aligned.
  const buf = Buffer.allocUnsafeSlow(fsz * FRAMES_PER_READ);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.length);
  const words = littleEndian === HOST_LITTLE_ENDIAN && buf.byteOffset % 4 === 0 ? new Int32Array(buf.buffer, buf.byteOffset, buf.length >> 2) : undefined;
  for (;;) {
    const pos = frameOffset(frame, pageSize);
    const n = await read(buf, pos);
    const whole = Math.floor(n / fsz);
    let stop = whole < FRAMES_PER_READ;
    for (let k = 0; k < whole; k++, frame++) {
      const off = k * fsz;
      const pgno = buf.readUInt32BE(off);
      const commitSize = buf.readUInt32BE(off + 4);
      if (pgno === 0 || buf.compare(salts, 0, 8, off + 8, off + 16) !== 0) {
        stop = true;
        break;
      }
      // §4.2: the checksum covers the first 8 bytes of the frame header and the page.
      let s: [number, number];
      if (words) {
        // off and the page are multiples of 8 bytes (frame size = 24 + a power of two ≥ 512).
        s = walChecksumWords(words, off >> 2, 2, running);
        s = walChecksumWords(words, (off + WAL_FRAME_HEADER_SIZE) >> 2, pageSize >> 2, s);
      } else {
        s = walChecksum(view, off, 8, littleEndian, running);
        s = walChecksum(view, off + WAL_FRAME_HEADER_SIZE, pageSize, littleEndian, s);
      }
      if (s[0] !== buf.readUInt32BE(off + 16) || s[1] !== buf.readUInt32BE(off + 20)) {
        stop = true;
        break;
      }
      running = s;
      pending.set(pgno, pos + off + WAL_FRAME_HEADER_SIZE);
      if (commitSize !== 0) {
        for (const [p, o] of pending) result.pages.set(p, o);
        pending = new Map();
        result.commitFrame = frame;
        result.dbPages = commitSize;
        result.checksum = running;
      }
    }
    if (stop) break;
  }
  result.uncommittedFrames = pending.size;
  return result;
}
