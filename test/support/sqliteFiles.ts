/**
 * Byte-level helpers for SQLite database and WAL files, for tests that need to look at
 * (or deliberately damage) the files without going through SQLite.
 *
 * Formats: https://www.sqlite.org/fileformat2.html#the_database_header and
 * https://www.sqlite.org/fileformat2.html#walformat
 */
import * as fs from 'fs';
import * as path from 'path';

export const SQLITE_MAGIC = 'SQLite format 3\u0000';
export const WAL_HEADER_BYTES = 32;
export const WAL_FRAME_HEADER_BYTES = 24;

export interface DbHeader {
  magicOk: boolean;
  pageSize: number;
  /** Byte 18: 1 = legacy/rollback, 2 = WAL. */
  writeVersion: number;
  /** Byte 19: 1 = legacy/rollback, 2 = WAL. */
  readVersion: number;
  fileChangeCounter: number;
  /** "In-header database size" (bytes 28-31), valid only if {@link pageCountValid}. */
  pageCount: number;
  /** True when version-valid-for (92-95) equals the change counter (24-27). */
  pageCountValid: boolean;
  freelistTrunk: number;
  freelistCount: number;
  schemaCookie: number;
  textEncoding: number;
  userVersion: number;
  fileBytes: number;
}

/** Parse the 100-byte database header of `dbPath`. */
export function readDbHeader(dbPath: string): DbHeader {
  const fd = fs.openSync(dbPath, 'r');
  try {
    const b = Buffer.alloc(100);
    const n = fs.readSync(fd, b, 0, 100, 0);
    const fileBytes = fs.fstatSync(fd).size;
    if (n < 100) {
      return {
        magicOk: false, pageSize: 0, writeVersion: 0, readVersion: 0, fileChangeCounter: 0,
        pageCount: 0, pageCountValid: false, freelistTrunk: 0, freelistCount: 0,
        schemaCookie: 0, textEncoding: 0, userVersion: 0, fileBytes,
      };
    }
    const rawPageSize = b.readUInt16BE(16);
    const changeCounter = b.readUInt32BE(24);
    return {
      magicOk: b.toString('latin1', 0, 16) === SQLITE_MAGIC,
      pageSize: rawPageSize === 1 ? 65536 : rawPageSize,
      writeVersion: b[18],
      readVersion: b[19],
      fileChangeCounter: changeCounter,
      pageCount: b.readUInt32BE(28),
      pageCountValid: b.readUInt32BE(92) === changeCounter,
      freelistTrunk: b.readUInt32BE(32),
      freelistCount: b.readUInt32BE(36),
      schemaCookie: b.readUInt32BE(40),
      textEncoding: b.readUInt32BE(56),
      userVersion: b.readUInt32BE(60),
      fileBytes,
    };
  } finally {
    fs.closeSync(fd);
  }
}

export interface WalHeader {
  magic: number;
  /** True when the magic says frame checksums are big-endian (0x377f0683). */
  bigEndianChecksums: boolean;
  formatVersion: number;
  pageSize: number;
  checkpointSeq: number;
  salt1: number;
  salt2: number;
  fileBytes: number;
  /** Whole frames the file has room for (valid or not: stale frames are counted too). */
  frameSlots: number;
}

/** Parse the 32-byte WAL header (null when the file is missing or shorter than 32 bytes). */
export function readWalHeader(walPath: string): WalHeader | null {
  if (!fs.existsSync(walPath)) {
    return null;
  }
  const fd = fs.openSync(walPath, 'r');
  try {
    const size = fs.fstatSync(fd).size;
    if (size < WAL_HEADER_BYTES) {
      return null;
    }
    const b = Buffer.alloc(WAL_HEADER_BYTES);
    fs.readSync(fd, b, 0, WAL_HEADER_BYTES, 0);
    const magic = b.readUInt32BE(0);
    const pageSize = b.readUInt32BE(8);
    return {
      magic,
      bigEndianChecksums: magic === 0x377f0683,
      formatVersion: b.readUInt32BE(4),
      pageSize,
      checkpointSeq: b.readUInt32BE(12),
      salt1: b.readUInt32BE(16),
      salt2: b.readUInt32BE(20),
      fileBytes: size,
      frameSlots: pageSize > 0 ? Math.floor((size - WAL_HEADER_BYTES) / (pageSize + WAL_FRAME_HEADER_BYTES)) : 0,
    };
  } finally {
    fs.closeSync(fd);
  }
}

/** Paths of the files SQLite may keep beside a database. */
export function sidecars(dbPath: string): { wal: string; shm: string; journal: string } {
  return { wal: `${dbPath}-wal`, shm: `${dbPath}-shm`, journal: `${dbPath}-journal` };
}

export interface CopyDbOptions {
  /** Copy `-wal` too when it exists (default true). */
  wal?: boolean;
  /** Copy `-shm` too when it exists (default false: the next opener rebuilds it). */
  shm?: boolean;
}

/**
 * Copy a database file and (optionally) its sidecars to `destPath` (+ `-wal`, `-shm`).
 * Only meaningful for databases no process is writing: a copy of a live database is torn.
 * Returns the list of files written.
 */
export function copyDbFiles(srcPath: string, destPath: string, opts: CopyDbOptions = {}): string[] {
  const src = sidecars(srcPath);
  const dst = sidecars(destPath);
  const written: string[] = [];
  fs.mkdirSync(path.dirname(destPath), { recursive: true });
  fs.copyFileSync(srcPath, destPath);
  written.push(destPath);
  for (const f of [dst.wal, dst.shm, dst.journal]) {
    fs.rmSync(f, { force: true });
  }
  if (opts.wal !== false && fs.existsSync(src.wal)) {
    fs.copyFileSync(src.wal, dst.wal);
    written.push(dst.wal);
  }
  if (opts.shm === true && fs.existsSync(src.shm)) {
    fs.copyFileSync(src.shm, dst.shm);
    written.push(dst.shm);
  }
  return written;
}

/** Delete a database and its sidecars (missing files are fine). */
export function removeDbFiles(dbPath: string): void {
  const s = sidecars(dbPath);
  for (const f of [dbPath, s.wal, s.shm, s.journal]) {
    fs.rmSync(f, { force: true });
  }
}

/** XOR one byte of a file in place (default mask flips every bit). */
export function flipByte(filePath: string, offset: number, mask = 0xff): void {
  const fd = fs.openSync(filePath, 'r+');
  try {
    const b = Buffer.alloc(1);
    if (fs.readSync(fd, b, 0, 1, offset) !== 1) {
      throw new Error(`flipByte: offset ${offset} is past the end of ${filePath}`);
    }
    b[0] ^= mask;
    fs.writeSync(fd, b, 0, 1, offset);
  } finally {
    fs.closeSync(fd);
  }
}

/** Set header bytes 18-19 (1 = rollback, 2 = WAL) in place. */
export function setJournalVersionBytes(dbPath: string, value: 1 | 2): void {
  const fd = fs.openSync(dbPath, 'r+');
  try {
    fs.writeSync(fd, Buffer.from([value, value]), 0, 2, 18);
  } finally {
    fs.closeSync(fd);
  }
}
