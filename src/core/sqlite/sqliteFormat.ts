/**
 * Facts of the SQLite database file format that the engine relies on.
 * Section numbers refer to https://www.sqlite.org/fileformat2.html.
 */

/** §1.3.1: every SQLite 3 database file begins with this 16-byte string. */
export const SQLITE_MAGIC = Buffer.from('SQLite format 3\0', 'latin1');

/** §1.3: the database header is the first 100 bytes of page 1. */
export const HEADER_SIZE = 100;

/** §1.3.4/§1.3.5: bytes 18 and 19 are 1 for legacy rollback journalling, 2 for WAL. */
export const OFFSET_WRITE_VERSION = 18;
export const OFFSET_READ_VERSION = 19;
/** §1.3.8: file change counter. */
export const OFFSET_CHANGE_COUNTER = 24;
/** §1.3.9: in-header database size in pages; valid only when it is non-zero and §1.3.13 matches. */
export const OFFSET_DB_SIZE = 28;
/** §1.3.13: "version-valid-for" — the change counter value when the in-header size was stored. */
export const OFFSET_VERSION_VALID_FOR = 92;

export interface SqliteHeader {
  pageSize: number;
  writeVersion: number;
  readVersion: number;
  changeCounter: number;
  /** The in-header size (§1.3.9) when valid, else undefined. */
  headerPages: number | undefined;
  walMode: boolean;
}

export function hasSqliteMagic(buf: Uint8Array): boolean {
  if (buf.length < SQLITE_MAGIC.length) return false;
  for (let i = 0; i < SQLITE_MAGIC.length; i++) if (buf[i] !== SQLITE_MAGIC[i]) return false;
  return true;
}

/** §1.3.2: page size is a power of two between 512 and 32768, or the value 1 meaning 65536. */
export function decodePageSize(raw: number): number | undefined {
  const size = raw === 1 ? 65536 : raw;
  if (size < 512 || size > 65536 || (size & (size - 1)) !== 0) return undefined;
  return size;
}

/** Parses the 100-byte header; undefined when the bytes are not a plain SQLite 3 database. */
export function parseHeader(buf: Uint8Array): SqliteHeader | undefined {
  if (buf.length < HEADER_SIZE || !hasSqliteMagic(buf)) return undefined;
  const view = new DataView(buf.buffer, buf.byteOffset, HEADER_SIZE);
  const pageSize = decodePageSize(view.getUint16(16, false));
  if (pageSize === undefined) return undefined;
  const writeVersion = buf[OFFSET_WRITE_VERSION];
  const readVersion = buf[OFFSET_READ_VERSION];
  const changeCounter = view.getUint32(OFFSET_CHANGE_COUNTER, false);
  const size = view.getUint32(OFFSET_DB_SIZE, false);
  const validFor = view.getUint32(OFFSET_VERSION_VALID_FOR, false);
  return {
    pageSize,
    writeVersion,
    readVersion,
    changeCounter,
    headerPages: size !== 0 && validFor === changeCounter ? size : undefined,
    walMode: writeVersion === 2 || readVersion === 2,
  };
}

/**
 * Marks a page-1 image as a rollback-journal database (§1.3.4: bytes 18–19 = 1), so the
 * snapshot is self-contained: SQLite will not look for a WAL to make sense of it. The
 * server switches it back to WAL the first time it opens the restored file.
 */
export function setRollbackMode(page1: Uint8Array): void {
  if (page1[OFFSET_WRITE_VERSION] === 2) page1[OFFSET_WRITE_VERSION] = 1;
  if (page1[OFFSET_READ_VERSION] === 2) page1[OFFSET_READ_VERSION] = 1;
}

/** https://www.sqlite.org/fileformat2.html#rollback_journal: a journal whose header is live begins with these bytes. */
export const JOURNAL_MAGIC = Buffer.from([0xd9, 0xd5, 0x05, 0xf9, 0x20, 0xa1, 0x63, 0xd7]);

/**
 * Why a non-empty file whose header is not SQLite's (nor looks encrypted) cannot be what is
 * left of an SQLite database either, or undefined when it may be one (a database whose
 * header a crash or a stray write destroyed). A database is a whole number of pages, each a
 * power of two from 512 bytes, and its first page holds binary b-tree headers (NUL bytes);
 * a shell profile, a JSON or YAML config, an SSH key has none in its first 4 KiB, and is
 * rarely a multiple of 512 bytes. Only such a file is told apart: a binary file of whole
 * pages stays "damaged", which a restore is for.
 */
export function notADatabase(firstBytes: Uint8Array, fileSize: number): string | undefined {
  if (fileSize === 0) return undefined; // what a crash or a failed create leaves
  if (fileSize % 512 !== 0) return `its size, ${fileSize} bytes, is not a whole number of database pages`;
  if (!firstBytes.subarray(0, Math.min(firstBytes.length, 4096)).includes(0)) return 'it holds text, not database pages';
  return undefined;
}

/**
 * Heuristic for "this is an encrypted (SQLCipher-like) database rather than some other
 * file": SQLCipher files are whole pages of what looks like random bytes (the first 16
 * bytes are a random salt, the rest is ciphertext). Text, JSON, images and archives are
 * either far from uniform or not whole multiples of 512 bytes.
 */
export function looksEncrypted(firstBytes: Uint8Array, fileSize: number): boolean {
  if (fileSize < 1024 || fileSize % 512 !== 0 || firstBytes.length < 1024) return false;
  const sample = firstBytes.subarray(0, Math.min(firstBytes.length, 4096));
  const counts = new Uint32Array(256);
  for (const b of sample) counts[b]++;
  let entropy = 0;
  for (const c of counts) {
    if (c === 0) continue;
    const p = c / sample.length;
    entropy -= p * Math.log2(p);
  }
  // Uniform random bytes give ≈7.8 bits/byte on a 1 KiB sample and ≈7.95 on 4 KiB;
  // compressed archives come close too, but are rarely whole 512-byte multiples.
  return entropy > (sample.length >= 4096 ? 7.8 : 7.6);
}
