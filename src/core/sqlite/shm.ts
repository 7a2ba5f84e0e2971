/**
 * Reads the wal-index header and checkpoint info from a live `-shm` file, read-only.
 *
 * Layout: https://www.sqlite.org/walformat.html#the_wal_index_file_format — two copies of
 * a 48-byte WalIndexHdr, then WalCkptInfo (nBackfill, aReadMark[5], aLock[8],
 * nBackfillAttempted, notUsed). Integers are in the host's native byte order; the salts
 * are copied byte-for-byte from the WAL header.
 *
 * Why we read it: a checkpoint copies WAL frames into the main file while we read that
 * file. Copying frames we overlay anyway is harmless, but copying a frame committed after
 * our WAL scan would put a newer page into our image. SQLite stores
 * `nBackfillAttempted` *before* it writes any page to the database file (wal.c,
 * walCheckpoint), so "nBackfillAttempted ≤ our commit frame at the end of the read, same
 * salts" proves no such copy started while we read.
 */
import { endianness } from 'node:os';
import type { FileHandle } from 'node:fs/promises';

const HDR_SIZE = 48;
const CKPT_OFFSET = 2 * HDR_SIZE;
const OFFSET_NBACKFILL = CKPT_OFFSET;
const OFFSET_NBACKFILL_ATTEMPTED = CKPT_OFFSET + 4 + 5 * 4 + 8;
const SHM_READ_SIZE = OFFSET_NBACKFILL_ATTEMPTED + 8;
const WALINDEX_VERSION = 3007000;

export interface ShmInfo {
  salts: Buffer;
  mxFrame: number;
  nBackfill: number;
  nBackfillAttempted: number;
}

/**
 * Returns the wal-index state, or undefined when there is no usable `-shm` (absent, too
 * short, not initialised, or caught mid-update after a few tries).
 */
export async function readShm(fh: FileHandle | undefined): Promise<ShmInfo | undefined> {
  if (!fh) return undefined;
  const le = endianness() === 'LE';
  const buf = Buffer.alloc(SHM_READ_SIZE);
  for (let attempt = 0; attempt < 5; attempt++) {
    const { bytesRead } = await fh.read(buf, 0, SHM_READ_SIZE, 0);
    if (bytesRead < SHM_READ_SIZE) return undefined;
    // The writer updates copy 2 then copy 1 (walIndexWriteHdr); equal copies mean a stable read.
    if (buf.compare(buf, HDR_SIZE, 2 * HDR_SIZE, 0, HDR_SIZE) !== 0) continue;
    const u32 = (off: number) => (le ? buf.readUInt32LE(off) : buf.readUInt32BE(off));
    if (u32(0) !== WALINDEX_VERSION || buf[12] !== 1 /* isInit */) return undefined;
    return {
      salts: Buffer.from(buf.subarray(32, 40)),
      mxFrame: u32(16),
      nBackfill: u32(OFFSET_NBACKFILL),
      nBackfillAttempted: u32(OFFSET_NBACKFILL_ATTEMPTED),
    };
  }
  return undefined;
}
