/**
 * The page-dedup archive: older kept snapshots stored as content-addressed, compressed
 * pages, so a folder's size grows with what changed, not with the database's size.
 *
 * Layout, inside the backup folder (one hidden subfolder; ai-memory's CLI never looks in it):
 *
 *   .ai-memory-archive/packs/<sha256 of the pack file>.pack
 *   .ai-memory-archive/bases/<sha256 of the base file>.base    a full page list, shared by indexes
 *   .ai-memory-archive/snapshots/ai-memory-<ts>.idx            the snapshot's page index
 *   .ai-memory-archive/snapshots/ai-memory-<ts>.manifest.json  its manifest, unchanged
 *
 * Why pages and not content-defined chunks (restic, borg): an SQLite file is an array of
 * fixed-size, aligned pages and a change rewrites whole pages in place, so the page is the
 * natural unit: hashing each page finds every unchanged one, with no boundary search.
 * - The unit is the page size from the file's header (bytes 16–17), read per snapshot, so
 *   a VACUUM to another page size simply makes new pages. A file whose header is not plain
 *   SQLite (encrypted) is cut into 4096-byte pieces. A file that is not a whole number of
 *   pages ends with one shorter piece; every piece's length is part of its hash input.
 * - Page 1 (the header with its change counter) differs in nearly every snapshot: one
 *   new page each time. Freelist pages hold stale bytes, which are kept as they are: a
 *   rebuilt file must be byte-identical to the manifest's sha256.
 * - A pack is a run of blobs and a trailer listing, for each page, (page sha256, its blob's
 *   offset, stored and inflated length, the page's offset in the inflated blob and its
 *   length), then (entry count, format version, `AIMPACK1`). Version 2 (written): the new
 *   pages of an archiving run, in the order they come, deflated together up to 64 KiB a
 *   blob (one zlib call per blob; zlib's per-call setup was most of the cost of 4 KiB
 *   pages), a blob that does not shrink stored as it is (stored length = inflated length).
 *   Version 1 (still read): one deflated blob per page. An unknown version makes the pack
 *   unreadable, said with its version; it is never deleted. A pack's name is the sha256 of
 *   the whole file, so `verify --all` proves each pack intact without trusting anything
 *   inside it.
 * - A snapshot's page list (every page's sha256, in file order) is mostly the same as the
 *   last one's: ~2 % of pages change an hour. Written in full for each snapshot, the lists
 *   were 181.5 MB of the 564.7 MB archive of 48 hourly 500 MB snapshots. So a full list is a
 *   base, `AIMBASE1`, a JSON header (page size, pages: nothing of one snapshot, so the same
 *   list is the same file), the hashes, and the sha256 of all that; named by the sha256 of
 *   the whole file. An index (`AIMIDX02`) is a JSON header (snapshot name, sha256, bytes,
 *   page size, pages, and its base's sha256 and page count), then only the pages whose hash
 *   is not the base's (page number u32 + hash, ascending; every page past the base's end
 *   among them), and the sha256 of all that. A snapshot takes the base of the newest
 *   archived snapshot of its database (same page size, readable by the same people) while at
 *   most a quarter of its pages differ and the changes the kept indexes store against that
 *   base stay within its size; else its own list becomes a new base (BASE_MAX_CHANGED says
 *   how this was chosen). At 48 hourly snapshots the lists now take ~11 % of their former
 *   bytes at 500 MB and ~30 % at 50 MB, where pages change faster.
 * - Version 1 indexes (`AIMIDX01`: the header and every page's hash in the index itself),
 *   written before bases, are read everywhere as they are; nothing is migrated.
 * - Where a page lives is not in the index: it comes from the packs' trailers. So packs can
 *   be rewritten (repacked) without touching any index or base.
 * - An index is read a window at a time: v2's own sha256 first (it is small), then its
 *   base's hashes a window at a time with the changes put over them; the base's own sha256
 *   and its bytes against its name are checked before anything read is used. A missing or
 *   damaged base fails each snapshot whose index names it (ARCHIVE_DAMAGED, naming the base);
 *   it is never taken by a new snapshot (its bytes are checked against its name first).
 *
 * Crash safety: every file is temp → fsync → rename (packs, then a new base, then the
 * index, then the manifest, each folder fsynced), and only then is the plain snapshot
 * deleted. An archived snapshot exists once its manifest is in `snapshots/` (its index and
 * the base it names are always there first); it is deleted manifest first, then its index.
 * Whatever the instant of a crash, each kept snapshot is whole in one form or the other;
 * leftovers (temps, an index without its manifest, bases and packs no index needs) are
 * collected by the next run.
 *
 * Packs are dropped only when no kept snapshot's index names one of their pages, bases
 * only when no kept index names them; both reference counts are rebuilt from every index
 * each time, never stored, and one unreadable index stops both collections. A pack whose live
 * pages are under half of its pages is repacked (its live pages deflated into new blobs of
 * a new pack, which is durable before the old one goes) — but never while a restore
 * holds a pin, since it may be reading that pack.
 *
 * A rebuild checks the whole file against the manifest's sha256 as it writes it; each
 * page's own hash is checked only when that fails, to name the damaged pack(s) and pages
 * (the whole-file hash already proves every byte; hashing each page again cost a restore
 * as much as hashing the file twice).
 *
 * Compression: zlib's raw deflate at level 1 (Node's own zlib; no native module).
 * Measured on ai-memory pages, level 1 compresses nearly as well as level 6 at several
 * times the speed, and brotli's fastest level is slower for the same size (bench/archive).
 */
import * as nodeCrypto from 'node:crypto';
import { createHash } from 'node:crypto';
import { constants as fsc, promises as fsp } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { basename, dirname, join, resolve, sep } from 'node:path';
import { BackupError, errnoCode, errorMessage, ioError } from '../common/errors';
import { NotRegularFileError, openRegular, readSmallRegularBytes } from '../common/regularFile';
import { largeBuffer } from '../common/largeBuffer';
import { crashPoint } from '../common/testHooks';
import { BlobDeflater, BlobInflater } from './blobZlib';
import { cleanStaleTemps, dirModeLike, EarlyWriteback, fsyncDir, reachableMode, publishNoClobber, tempPath, writeAll, writeFileAtomic } from './atomicFs';
import { parseManifest, type Manifest } from './manifest';
import { manifestNameFor } from './naming';

export const ARCHIVE_DIR = '.ai-memory-archive';
const PACK_MAGIC = Buffer.from('AIMPACK1', 'latin1');
const INDEX_MAGIC = Buffer.from('AIMIDX01', 'latin1');
const INDEX_MAGIC_V2 = Buffer.from('AIMIDX02', 'latin1');
const BASE_MAGIC = Buffer.from('AIMBASE1', 'latin1');
/** A changed page in an index v2: its page number (u32) and its sha256. */
const CHANGE_BYTES = 36;
/** The changes of an index v2 are read this many bytes at a time (1,820 of them). */
const CHANGES_READ_BYTES = 1820 * CHANGE_BYTES;
/**
 * A snapshot takes the newest base's page list when at most this share of its pages differ
 * from it (pages past the base's end included), and while the changes stored against that
 * base (every kept index naming it, this one's included) stay within the base's own size:
 * past that, a new base costs less than what the indexes on the old one would go on storing
 * (each stores all of its drift from the base). Chosen by replaying the page lists of 45
 * hourly snapshots (bench/results-archive.md): at 500 MB (2 % of pages change an hour) 11.4 %
 * of the v1 indexes' bytes, at 50 MB (5 % an hour) 30.5 %; a bound of 1/8 alone: 11.0 % and
 * 38.9 %, 1/4 alone: 14.1 % and 29.4 %.
 */
const BASE_MAX_CHANGED = 1 / 4;
/** Pack format version written; version 1 (one deflated blob per page) is still read. */
export const PACK_VERSION = 2;
const ENTRY_BYTES_V1 = 44; // sha256 (32) | offset u32 | compressed length u32 | raw length u32
const ENTRY_BYTES = 52; // sha256 (32) | blob offset u32 | blob length u32 | blob raw length u32 | page offset in the raw blob u32 | page length u32
/** New pages are deflated together, up to this many raw bytes a blob (16 pages of 4 KiB). */
const BLOB_RAW_BYTES = 64 << 10;
const MAX_BLOB_RAW = 1 << 20;
/**
 * Inflated blobs a rebuild keeps (PageSource: the one needed furthest ahead goes first). With
 * 45 archived 500 MB snapshots, 2 MiB inflates each blob once for the oldest (7,737) and
 * 11,244 times for 9,930 distinct blobs for the newest (by least recent use: 19,292).
 */
const BLOB_CACHE_BYTES = 2 << 20;
const FOOTER_BYTES = 16; // entry count u32 | version u32 | magic (8)
const PACK_TARGET_BYTES = 16 << 20;
const READ_BYTES = 1 << 20;
const WINDOW_BYTES = 1 << 20;
/** A rebuild's read window per pack and its two write buffers (memory: WINDOWS windows, each with its read-ahead, + 2 buffers). */
const REBUILD_WINDOW_BYTES = 256 << 10;
const REBUILD_WRITE_BYTES = 256 << 10;
/** Packs a rebuild keeps a read window for (PackReader). */
const WINDOWS = 8;
/** Packs a rebuild keeps open (descriptors are cheap; Node raises the soft limit to the hard one at start). */
const MAX_OPEN_PACKS = 128;
/** A read where a pack's last window did not end: this much (a blob or a few), not a whole window. */
const SPARSE_READ_BYTES = 64 << 10;
const MAX_INDEX_HEADER = 64 << 10;
/** The largest page index read back (8 million pages: 4 GiB at 512-byte pages, 32 GiB at 4 KiB); archiving writes none larger. */
const MAX_INDEX_BYTES = 256 << 20;

export interface ArchivePaths {
  root: string;
  packs: string;
  snapshots: string;
  bases: string;
}

export function archivePaths(dir: string): ArchivePaths {
  const root = join(dir, ARCHIVE_DIR);
  return { root, packs: join(root, 'packs'), snapshots: join(root, 'snapshots'), bases: join(root, 'bases') };
}

/**
 * Refuses a backup folder that is the archive folder or inside it (`--to
 * backups/.ai-memory-archive/snapshots`): there, an archived snapshot's manifest looks like a
 * plain one whose file is gone, and a backup's cleaning deleted it (then the next collection
 * the packs only it needed). The path as given and as resolved (links followed as far as it
 * exists) are both looked at.
 */
export async function refuseInsideArchive(dir: string): Promise<void> {
  let resolved = resolve(dir);
  const rest: string[] = [];
  for (let cur = resolved; ; cur = dirname(cur)) {
    const real = await fsp.realpath(cur).catch(() => undefined);
    if (real !== undefined) {
      resolved = join(real, ...rest.reverse());
      break;
    }
    if (dirname(cur) === cur) break;
    rest.push(basename(cur));
  }
  // The backup folder that holds it, named: the same advice wherever the path came from (--to, --out, a setting).
  const holder = (p: string): string | undefined => {
    const parts = p.split(/[\\/]/);
    const i = parts.indexOf(ARCHIVE_DIR);
    return i < 0 ? undefined : parts.slice(0, i).join(sep) || sep;
  };
  const backupFolder = holder(resolve(dir)) ?? holder(resolved);
  if (backupFolder !== undefined) {
    throw new BackupError('USAGE', `${dir} is inside a backup folder's archive (${ARCHIVE_DIR}), which only this tool writes; it is not a backup folder. Nothing was changed.`, {
      hint: `Use the backup folder itself, ${backupFolder}, or another folder.`,
    });
  }
}

/**
 * Why nothing may be written or deleted in the archive of `dir`: one of its folders
 * (`.ai-memory-archive`, `packs`, `snapshots`, `bases`) is a symlink or not a folder.
 * This tool only ever makes them as real folders; a link (a backup folder copied from a
 * shared drive, a pulled bucket, a hand-made layout) leads into another folder, often
 * another backup folder's archive, and a collection there deleted every pack, base or
 * temp of that archive that this folder's indexes do not name (its snapshots then no
 * longer rebuild). Undefined when every one that exists is a real folder.
 */
export async function archiveFoldersProblem(dir: string): Promise<string | undefined> {
  const paths = archivePaths(dir);
  for (const p of [paths.root, paths.packs, paths.snapshots, paths.bases]) {
    let st;
    try {
      st = await fsp.lstat(p);
    } catch (e) {
      if (errnoCode(e) === 'ENOENT') continue; // made as a real folder when needed
      return `${p} cannot be examined (${errorMessage(e)})`;
    }
    if (st.isSymbolicLink()) {
      const target = await fsp.readlink(p).catch(() => '?');
      return `${p} is a symlink (to ${target}), not a folder this tool made`;
    }
    if (!st.isDirectory()) return `${p} is not a folder`;
  }
  return undefined;
}

/** Throws UNSAFE_SNAPSHOT_PATH when {@link archiveFoldersProblem} finds one: before anything is written or deleted in the archive. */
export async function refuseUnsafeArchiveFolders(dir: string): Promise<void> {
  const problem = await archiveFoldersProblem(dir);
  if (problem) {
    throw new BackupError('UNSAFE_SNAPSHOT_PATH', `${problem}: nothing in the archive of ${dir} is written or deleted (it would land outside that folder).`, {
      hint: `Replace the link by the folder it leads to (move it in), or remove it; the plain snapshots of ${dir} are not affected.`,
    });
  }
}

/**
 * Whether `n` is a piece size an index or base can state: a power of two from 512 to 65,536
 * (pieceSize's answers). Anything else is damage, never a size to work with: a rebuild's
 * write buffers are sized by it (2^33 threw a RangeError that ended `verify --all` with no
 * verdict at all) and a page of another length was blamed on the pack that holds it.
 */
function validPiece(n: unknown): n is number {
  return typeof n === 'number' && Number.isInteger(n) && n >= 512 && n <= 65536 && (n & (n - 1)) === 0;
}

export function indexNameFor(snapshot: string): string {
  return manifestNameFor(snapshot).replace(/\.manifest\.json$/, '.idx');
}

/** The piece size of a snapshot: its SQLite page size, or 4096 for anything else. */
export function pieceSize(head: Uint8Array): number {
  if (head.length >= 18 && Buffer.from(head.subarray(0, 16)).toString('latin1') === 'SQLite format 3\0') {
    const raw = (head[16] << 8) | head[17];
    const size = raw === 1 ? 65536 : raw;
    if (size >= 512 && size <= 65536 && (size & (size - 1)) === 0) return size;
  }
  return 4096;
}

/**
 * sha256 of one page. crypto.hash (one shot, Node ≥ 20.12) skips creating a Hash object per
 * page, which is most of the cost of hashing 4 KiB pieces.
 */
const oneShot = (nodeCrypto as unknown as { hash?: (alg: string, data: Uint8Array, enc: string) => Buffer | string }).hash;
function pageHash(page: Uint8Array): Buffer {
  return oneShot ? (oneShot('sha256', page, 'buffer') as Buffer) : createHash('sha256').update(page).digest();
}

/**
 * Writes the sha256 of `page` into `out` at `at`, allocating no Buffer: the digest comes back
 * as a 32-character latin1 string (young garbage). A Buffer per page was a backing store per
 * page, freed only by a full collection once promoted: archiving a 500 MB snapshot peaked at
 * ~140 MB.
 */
function pageHashInto(page: Uint8Array, out: Buffer, at: number): void {
  if (oneShot) out.write(oneShot('sha256', page, 'latin1') as string, at, 32, 'latin1');
  else createHash('sha256').update(page).digest().copy(out, at);
}

/** Whether `page` hashes to the 32 bytes of `hashes` at `at` (no Buffer allocated). */
function pageHashIs(page: Uint8Array, hashes: Buffer, at: number): boolean {
  if (!oneShot) return pageHash(page).equals(hashes.subarray(at, at + 32));
  const d = oneShot('sha256', page, 'latin1') as string;
  for (let k = 0; k < 32; k++) if (d.charCodeAt(k) !== hashes[at + k]) return false;
  return true;
}

function damaged(message: string, hint = 'Run `verify --all` to see which snapshots are affected; restore another snapshot.'): BackupError {
  return new BackupError('ARCHIVE_DAMAGED', message, { hint });
}

// ---------------------------------------------------------------------------------------
// Packs

/** One page of a pack, as its trailer lists it. */
export interface PackRow {
  /** The page's sha256 (32 bytes; in a read-only store's rows, its first 16: PackStore.keyBytes). */
  hash: Uint8Array;
  /** Where its blob is in the pack, how long it is there and once inflated. */
  off: number;
  len: number;
  blobRaw: number;
  /** Where the page starts in the inflated blob, and its length. */
  inner: number;
  raw: number;
}

/**
 * Where every page of every pack is. Flat typed arrays (a row per trailer entry; where its
 * blob is, once per blob) and an open-addressing table keyed by the hash's first bytes (a
 * sha256 is uniform): no string or object per page, so a large archive's trailers cost ~47
 * bytes a page and load fast (it was ~60 with the blob's place in every row: 2.2 MB more
 * for the 172,000 pages of 45 archived 500 MB snapshots, held by every command that reads
 * the archive).
 */
export class PackStore {
  /**
   * Bytes of each page's sha256 the table keeps: all 32 (archiving, pruning, repacking: a
   * page found here is not stored again, and a page an index names keeps its pack), or the
   * first 16 for a store that only reads (`load(paths, { readOnly: true })`: rebuilds,
   * `verify`, `materialize`, `pull`'s check). There a false match could only rebuild wrong
   * bytes, which the whole file's sha256 refuses (and each page's full hash in the index
   * then names) — never a wrong restore, and at 2^-128 a pair, never seen. It is 16 of the
   * ~47 bytes a page: 2.7 MB at the 172,000 pages of 45 archived 500 MB snapshots, held by
   * `verify --all` throughout.
   */
  readonly keyBytes: 16 | 32;
  readonly packs: string[] = [];
  readonly packBytes: number[] = [];
  /** Per pack: its format version (1: one blob per page, always deflated). */
  readonly packVersion: number[] = [];
  /** Per pack: its rows are [packStart[p], packEnd[p]). */
  readonly packStart: number[] = [];
  readonly packEnd: number[] = [];
  /** Packs whose trailer could not be read: name → why. */
  readonly unreadable = new Map<string, string>();
  /**
   * Packs known whole in this process: written by it, or hashed to their name. Archiving
   * proves each pack a snapshot shares pages with before the plain file goes (archiveSnapshot).
   */
  readonly intact = new Set<string>();
  /**
   * Packs each of whose trailer entries is known to be the page it says (its blob inflates
   * to bytes with that hash): written by us (BlobPacker: every page hashed from its bytes,
   * every blob inflated back before it was written) or proven entry by entry
   * (firstUnprovenPack). Kept across runs in the archive's PROVEN_NAME record (loadProven).
   */
  readonly proven = new Set<string>();
  provenLoaded = false;
  provenDirty = false;
  /**
   * Per database (`source_db`): the base its snapshot archived last in this process took or
   * wrote, and the change bytes the kept indexes store against it: the next snapshot's
   * candidate (sharedBase). The first archive of a run reads them from the folder's indexes;
   * the next ones need not (a run archiving hundreds read every manifest and index header
   * again for each).
   */
  readonly lastBase = new Map<string, { name: string; stored: number }>();
  count = 0;
  private hashes = Buffer.alloc(0);
  /** `hashes` as 32-bit words (its own ArrayBuffer, from offset 0: Buffer.alloc is never pooled). */
  private words = new Int32Array(0);
  /** Per row: its blob (below), where its page starts in the inflated blob, its length − 1 (1 to 65,536 bytes). */
  private rowBlob = new Int32Array(0);
  private rowInner = new Uint32Array(0);
  private rowRawLess1 = new Uint16Array(0);
  /** Per blob: its pack, offset, stored and inflated length. Rows of one blob are consecutive in a trailer; any others get a blob each. */
  private blobCount = 0;
  private blobPack = new Int32Array(0);
  private blobOff = new Uint32Array(0);
  private blobLen = new Uint32Array(0);
  private blobRawLen = new Uint32Array(0);
  /** Per row: the first row with the same hash (the one `find` answers). */
  private rowCanon = new Int32Array(0);
  /** Row + 1 of each distinct hash; 0 = empty. */
  private table = new Int32Array(1 << 10);

  constructor(opts: { readOnly?: boolean } = {}) {
    this.keyBytes = opts.readOnly ? 16 : 32;
  }

  /** Every pack's trailer; `readOnly`: for a caller that never archives, prunes or repacks with it (see {@link keyBytes}). */
  static async load(paths: ArchivePaths, opts: { readOnly?: boolean } = {}): Promise<PackStore> {
    const store = new PackStore(opts);
    let names: string[];
    try {
      names = (await fsp.readdir(paths.packs)).filter((n) => /^[0-9a-f]{64}\.pack$/.test(n)).sort();
    } catch (e) {
      if (errnoCode(e) === 'ENOENT') return store;
      throw ioError('reading', paths.packs, e);
    }
    // One buffer for the trailers, read a bounded run of entries at a time: a trailer read
    // whole made a footer's claim the size of an allocation (a sparse 1.7 GB file named like
    // a pack, 4 KB on disk, took a verify of any snapshot to 1.7 GB of RSS), and one buffer
    // per pack was ~8 MB of garbage at 500 MB, freed among what stays.
    const scratch = Buffer.allocUnsafe(TRAILER_READ_ENTRIES * ENTRY_BYTES);
    // Every trailer checked first, a run at a time; room for the rows of those that pass at
    // once (growing by doubling held up to twice the rows, and every copy was garbage).
    const whole: { name: string; count: number }[] = [];
    let rows = 0;
    for (const name of names) {
      try {
        const count = await walkTrailer(join(paths.packs, name), scratch);
        whole.push({ name, count });
        rows += count;
      } catch (e) {
        store.unreadable.set(name, errorMessage(e));
      }
    }
    store.reserve(rows + (rows >> 4));
    for (const { name, count } of whole) {
      try {
        await store.addPack(join(paths.packs, name), name, count, scratch);
      } catch (e) {
        store.unreadable.set(name, errorMessage(e));
      }
    }
    return store;
  }

  /**
   * Adds the rows of a pack whose trailer walkTrailer found whole (`count` entries), read
   * again a run at a time straight into the typed arrays (no object per row: 130,000 of them
   * at 500 MB grew V8's young generation to its maximum for the rest of the process). A pack
   * that changed since (another count, an entry out of bounds) adds nothing.
   */
  private async addPack(path: string, name: string, count: number, scratch: Buffer): Promise<void> {
    const mark = { count: this.count, blobCount: this.blobCount, packs: this.packs.length };
    try {
      await walkTrailer(
        path,
        scratch,
        (version, size, table, n) => {
          if (this.packs.length === mark.packs) this.beginPack(name, size, version, count);
          const entryBytes = version === 1 ? ENTRY_BYTES_V1 : ENTRY_BYTES;
          const p = this.packs.length - 1;
          for (let i = 0; i < n; i++) {
            const e = i * entryBytes;
            const blobRaw = table.readUInt32LE(e + 40);
            this.addRow(p, table, e, table.readUInt32LE(e + 32), table.readUInt32LE(e + 36), blobRaw, version === 1 ? 0 : table.readUInt32LE(e + 44), version === 1 ? blobRaw : table.readUInt32LE(e + 48));
          }
        },
        count,
      );
      if (this.packs.length === mark.packs) throw new Error('changed while it was read');
      this.packEnd.push(this.count);
    } catch (e) {
      this.rollBack(mark);
      throw e;
    }
  }

  /** Forgets every row, blob and pack added after `mark` (a pack that changed while its rows were added). */
  private rollBack(mark: { count: number; blobCount: number; packs: number }): void {
    if (this.count === mark.count && this.packs.length === mark.packs) return;
    this.count = mark.count;
    this.blobCount = mark.blobCount;
    for (const a of [this.packs, this.packBytes, this.packVersion, this.packStart, this.packEnd]) a.length = Math.min(a.length, mark.packs);
    this.table.fill(0);
    for (let i = 0; i < this.count; i++) if (this.rowCanon[i] === i) this.insert(i);
  }

  /** Records the rows of a pack from its trailer's `count` entries in `table` (read, or just written by this process). */
  addTrailer(name: string, size: number, version: number, table: Buffer, count: number): void {
    const entryBytes = version === 1 ? ENTRY_BYTES_V1 : ENTRY_BYTES;
    const p = this.beginPack(name, size, version, count);
    for (let i = 0; i < count; i++) {
      const e = i * entryBytes;
      const blobRaw = table.readUInt32LE(e + 40);
      this.addRow(p, table, e, table.readUInt32LE(e + 32), table.readUInt32LE(e + 36), blobRaw, version === 1 ? 0 : table.readUInt32LE(e + 44), version === 1 ? blobRaw : table.readUInt32LE(e + 48));
    }
    this.packEnd.push(this.count);
  }

  private beginPack(name: string, size: number, version: number, rows: number): number {
    const p = this.packs.length;
    this.packs.push(name);
    this.packBytes.push(size);
    this.packVersion.push(version);
    this.packStart.push(this.count);
    this.grow(this.count + rows);
    return p;
  }

  private addRow(p: number, hash: Uint8Array, at: number, off: number, len: number, blobRaw: number, inner: number, raw: number): void {
    const i = this.count++;
    const kb = this.keyBytes;
    for (let k = 0; k < kb; k++) this.hashes[i * kb + k] = hash[at + k];
    let b = this.blobCount - 1;
    if (b < 0 || i === this.packStart[p] || this.blobPack[b] !== p || this.blobOff[b] !== off || this.blobLen[b] !== len || this.blobRawLen[b] !== blobRaw) {
      b = this.blobCount++;
      if (b >= this.blobPack.length) this.growBlobs();
      this.blobPack[b] = p;
      this.blobOff[b] = off;
      this.blobLen[b] = len;
      this.blobRawLen[b] = blobRaw;
    }
    this.rowBlob[i] = b;
    this.rowInner[i] = inner;
    this.rowRawLess1[i] = raw - 1;
    const found = this.find(this.hashes, i * kb);
    if (found >= 0) this.rowCanon[i] = found;
    else {
      this.rowCanon[i] = i;
      this.insert(i);
    }
  }

  private growBlobs(): void {
    const cap = Math.max(1024, this.blobPack.length * 2);
    this.blobPack = resized(this.blobPack, cap, this.blobCount);
    this.blobOff = resized(this.blobOff, cap, this.blobCount);
    this.blobLen = resized(this.blobLen, cap, this.blobCount);
    this.blobRawLen = resized(this.blobRawLen, cap, this.blobCount);
  }

  /** Makes room for `rows` rows in all (the table included), so that adding them copies nothing. */
  reserve(rows: number): void {
    this.grow(rows, true);
  }

  /** Room for `need` rows: exactly that many (`exact`), or at least twice the present room. */
  private grow(need: number, exact = false): void {
    if (need > this.rowBlob.length) {
      const cap = exact ? need : Math.max(1024, need, this.rowBlob.length * 2);
      const kb = this.keyBytes;
      const h = Buffer.alloc(cap * kb);
      this.hashes.copy(h, 0, 0, this.count * kb);
      this.hashes = h;
      this.words = new Int32Array(h.buffer, h.byteOffset, (cap * kb) >> 2);
      this.rowBlob = resized(this.rowBlob, cap, this.count);
      this.rowCanon = resized(this.rowCanon, cap, this.count);
      this.rowInner = resized(this.rowInner, cap, this.count);
      this.rowRawLess1 = resized(this.rowRawLess1, cap, this.count);
    }
    // At most 3/4 full (linear probing stays at ~2 probes a lookup): at 130,000 rows a 1 MB
    // table; at most half full it was 2 MB.
    if (need * 4 > this.table.length * 3) {
      let size = this.table.length;
      while (need * 4 > size * 3) size *= 2;
      this.table = new Int32Array(size);
      for (let i = 0; i < this.count; i++) if (this.rowCanon[i] === i) this.insert(i);
    }
  }

  private insert(row: number): void {
    const mask = this.table.length - 1;
    for (let s = this.hashes.readUInt32LE(row * this.keyBytes) & mask; ; s = (s + 1) & mask) {
      if (this.table[s] === 0) {
        this.table[s] = row + 1;
        return;
      }
    }
  }

  /** The row holding the page whose sha256 is `h[at, at+32)` (its first {@link keyBytes} compared), or -1. */
  find(h: Buffer, at: number): number {
    const mask = this.table.length - 1;
    for (let s = h.readUInt32LE(at) & mask; ; s = (s + 1) & mask) {
      const r = this.table[s] - 1;
      if (r < 0) return -1;
      if (this.holds(r, h, at)) return r;
    }
  }

  /**
   * Whether row `r` holds the page whose hash is `h[at, at + 32)`. Compared as 8 words
   * through a view where `h` is aligned (our buffers always are): Buffer.compare is a
   * native call, ~0.23 µs a row against ~0.06, and pruning's collection compares every
   * page of every kept index (3 million at 24 archived 500 MB snapshots).
   */
  holds(r: number, h: Buffer, at: number): boolean {
    const kb = this.keyBytes;
    const b = h.byteOffset + at;
    if ((b & 3) !== 0) return this.hashes.compare(h, at, at + kb, r * kb, r * kb + kb) === 0;
    const w = new Int32Array(h.buffer, b, kb >> 2);
    const H = this.words;
    if (kb === 16) {
      const o = r * 4;
      return w[0] === H[o] && w[1] === H[o + 1] && w[2] === H[o + 2] && w[3] === H[o + 3];
    }
    const o = r * 8;
    return w[0] === H[o] && w[1] === H[o + 1] && w[2] === H[o + 2] && w[3] === H[o + 3] && w[4] === H[o + 4] && w[5] === H[o + 5] && w[6] === H[o + 6] && w[7] === H[o + 7];
  }

  /** Whether the page whose sha256 is `h[at, at+32)` is stored (archiving's question: all 32 bytes compared). */
  has(h: Buffer, at: number): boolean {
    this.needWholeHashes();
    return this.find(h, at) >= 0;
  }

  /** The row whose hash `find` answers for row `r` (rows of duplicated pages point to the first). */
  canon(r: number): number {
    return this.rowCanon[r];
  }

  /** Row `r`'s page sha256, whole: only in a store that keeps all 32 bytes (not `readOnly`). */
  hashOf(r: number): Buffer {
    this.needWholeHashes();
    return this.hashes.subarray(r * 32, r * 32 + 32);
  }

  /** Throws unless this store keeps whole hashes (it may decide what is stored and what is dropped). */
  needWholeHashes(): void {
    if (this.keyBytes !== 32) throw new Error('A read-only packs\' table keeps 16 bytes of each hash: load it without readOnly to archive, prune or repack.');
  }

  packOf(r: number): number {
    return this.blobPack[this.rowBlob[r]];
  }

  /** Row `r`'s blob, as a number unique in this store (pack, offset). */
  blobKey(r: number): number {
    const b = this.rowBlob[r];
    return this.blobPack[b] * 2 ** 32 + this.blobOff[b];
  }

  /** Where row `r`'s page is in its inflated blob: [inner, inner + raw). */
  pageStart(r: number): number {
    return this.rowInner[r];
  }

  pageEnd(r: number): number {
    return this.rowInner[r] + this.rowRawLess1[r] + 1;
  }

  rowAt(r: number): PackRow & { pack: number } {
    const b = this.rowBlob[r];
    return { pack: this.blobPack[b], hash: this.hashes.subarray(r * this.keyBytes, (r + 1) * this.keyBytes), off: this.blobOff[b], len: this.blobLen[b], blobRaw: this.blobRawLen[b], inner: this.rowInner[r], raw: this.rowRawLess1[r] + 1 };
  }

  /** Whether row `r`'s blob is deflated (version 1: always; version 2: unless stored as it is). */
  deflated(r: number): boolean {
    const b = this.rowBlob[r];
    return this.packVersion[this.blobPack[b]] === 1 || this.blobLen[b] !== this.blobRawLen[b];
  }

  /** The page hashes of pack `p` (latin1 strings), in trailer order. */
  keysOf(p: number): string[] {
    this.needWholeHashes();
    const out: string[] = [];
    for (let r = this.packStart[p]; r < this.packEnd[p]; r++) out.push(this.hashes.toString('latin1', r * 32, r * 32 + 32));
    return out;
  }
}

/** `a` in a new array of the same kind with `cap` elements, its first `used` copied. */
function resized<T extends Int32Array | Uint32Array | Uint16Array>(a: T, cap: number, used: number): T {
  const b = new (a.constructor as new (n: number) => T)(cap);
  b.set(a.subarray(0, used));
  return b;
}

/** Trailer entries read at a time (PackStore.load): ~425 KB, whatever a footer says. */
const TRAILER_READ_ENTRIES = 8192;

/**
 * Reads the trailer of the pack at `path` a run of entries at a time through `scratch`,
 * checking each entry (its blob inside the pack's data, lengths within what a pack holds),
 * and hands each run to `each` (format version, pack size, the run's entries, how many, the
 * first one's number). Returns the entry count. Throws, saying why, for a file that is no
 * pack, a trailer larger than the file, an entry out of bounds, or (with `expect`) another
 * count than `expect`. Memory: `scratch`, whatever the footer claims.
 */
async function walkTrailer(
  path: string,
  scratch: Buffer,
  each?: (version: number, size: number, table: Buffer, n: number, first: number) => void,
  expect?: number,
): Promise<number> {
  const { fh } = await openRegular(path); // a FIFO named *.pack must not block the open
  try {
    const st = await fh.stat();
    if (!st.isFile() || st.size < FOOTER_BYTES) throw new Error('too short for a pack');
    const foot = Buffer.alloc(FOOTER_BYTES);
    await readExactly(fh, foot, st.size - FOOTER_BYTES);
    if (!foot.subarray(8).equals(PACK_MAGIC)) throw new Error('no pack trailer');
    const version = foot.readUInt32LE(4);
    if (version !== 1 && version !== PACK_VERSION) {
      throw new Error(`pack format version ${version}, which this AI Memory Backup does not know (it reads versions 1 and ${PACK_VERSION}): written by a newer version? Upgrade to read it; it is left as it is`);
    }
    const entryBytes = version === 1 ? ENTRY_BYTES_V1 : ENTRY_BYTES;
    const count = foot.readUInt32LE(0);
    if (expect !== undefined && count !== expect) throw new Error('changed while it was read');
    const dataEnd = st.size - FOOTER_BYTES - count * entryBytes;
    if (dataEnd < 0) throw new Error('trailer larger than the pack');
    const run = Math.floor(scratch.length / entryBytes);
    for (let first = 0; first < count; first += run) {
      const n = Math.min(run, count - first);
      const table = scratch.subarray(0, n * entryBytes);
      await readExactly(fh, table, dataEnd + first * entryBytes);
      for (let i = 0; i < n; i++) {
        const e = i * entryBytes;
        const off = table.readUInt32LE(e + 32);
        const len = table.readUInt32LE(e + 36);
        const blobRaw = table.readUInt32LE(e + 40);
        const inner = version === 1 ? 0 : table.readUInt32LE(e + 44);
        const raw = version === 1 ? blobRaw : table.readUInt32LE(e + 48);
        // A blob is read whole (its stored length), so that length is bounded too: v2 stores
        // a blob that does not shrink as it is; v1 deflated each page, which adds a few bytes
        // at most (zlib's deflateBound).
        const maxLen = version === 1 ? blobRaw + (blobRaw >> 10) + 64 : blobRaw;
        if (off + len > dataEnd || raw === 0 || raw > 65536 || blobRaw > MAX_BLOB_RAW || inner + raw > blobRaw || len > maxLen) {
          throw new Error(`entry ${first + i} points outside the pack`);
        }
      }
      each?.(version, st.size, table, n, first);
    }
    if (count === 0) each?.(version, st.size, scratch.subarray(0, 0), 0, 0); // a pack of no pages (collected as unused)
    return count;
  } finally {
    await fh.close();
  }
}

async function readExactly(fh: FileHandle, buf: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < buf.length) {
    const { bytesRead } = await fh.read(buf, done, buf.length - done, position + done);
    if (bytesRead === 0) throw new Error(`unexpected end of file at ${position + done}`);
    done += bytesRead;
  }
}

/** Writes one pack: blobs appended through a buffer, the trailer last, then temp → fsync → content-hash name. */
class PackWriter {
  private fh: FileHandle | undefined;
  private readonly tmp: string;
  private pos = 0;
  readonly buf: Buffer;
  private used = 0;
  private readonly hash = createHash('sha256');
  private writeback: EarlyWriteback | undefined;
  /**
   * The trailer as it grows, an entry (ENTRY_BYTES) per page, written as each page comes;
   * its blob's place once the blob is sealed. Not an object per page: those lived as long as
   * a pack took to write, were promoted, and grew V8's heap by ~30 MB over a first archive.
   */
  table: Buffer;
  rows = 0;
  /** The first row of the blob being filled. */
  private blobStart = 0;

  /** `reuse`: the write buffer and trailer of the pack written before (its trailer already in the store). */
  constructor(
    private readonly paths: ArchivePaths,
    private readonly mode: number,
    reuse?: { buf: Buffer; table: Buffer },
  ) {
    this.tmp = tempPath(paths.packs, 'pack');
    this.buf = reuse?.buf ?? Buffer.allocUnsafe(WINDOW_BYTES);
    this.table = reuse?.table ?? Buffer.allocUnsafe(ENTRY_BYTES * 1024);
  }

  get bytes(): number {
    return this.pos + this.used;
  }

  /** Adds a page of the blob being filled: its hash (`hash[at, at+32)`), where it starts in the blob, its length. Returns its row. */
  addPage(hash: Uint8Array, at: number, inner: number, raw: number): number {
    if ((this.rows + 1) * ENTRY_BYTES + FOOTER_BYTES > this.table.length) {
      const t = Buffer.allocUnsafe(this.table.length * 2);
      this.table.copy(t, 0, 0, this.rows * ENTRY_BYTES);
      this.table = t;
    }
    const e = this.rows * ENTRY_BYTES;
    this.table.set(hash.subarray(at, at + 32), e);
    this.table.writeUInt32LE(inner, e + 44);
    this.table.writeUInt32LE(raw, e + 48);
    return this.rows++;
  }

  /** Whether row `row` holds the hash `h[at, at+32)`. */
  hashIs(row: number, h: Buffer, at: number): boolean {
    return this.table.compare(h, at, at + 32, row * ENTRY_BYTES, row * ENTRY_BYTES + 32) === 0;
  }

  /** Appends the blob holding the pages added since the last one (`blobRaw` bytes once inflated). */
  async addBlob(blob: Uint8Array, blobRaw: number): Promise<void> {
    if (!this.fh) {
      this.fh = await fsp.open(this.tmp, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL, this.mode);
      // A 16 MB pack goes to disk while the next pages are hashed and deflated, not all in its fsync.
      this.writeback = new EarlyWriteback(this.fh, 4 << 20);
    }
    const off = this.bytes;
    for (let r = this.blobStart; r < this.rows; r++) {
      const e = r * ENTRY_BYTES;
      this.table.writeUInt32LE(off, e + 32);
      this.table.writeUInt32LE(blob.length, e + 36);
      this.table.writeUInt32LE(blobRaw, e + 40);
    }
    this.blobStart = this.rows;
    await this.append(blob);
  }

  private async append(data: Uint8Array): Promise<void> {
    if (this.used + data.length > this.buf.length) await this.flush();
    if (data.length > this.buf.length) {
      this.hash.update(data);
      await writeAll(this.fh as FileHandle, data, this.pos);
      this.pos += data.length;
      this.writeback?.wrote(data.length);
      return;
    }
    this.buf.set(data, this.used);
    this.used += data.length;
  }

  private async flush(): Promise<void> {
    if (!this.used) return;
    const chunk = this.buf.subarray(0, this.used);
    this.hash.update(chunk);
    await writeAll(this.fh as FileHandle, chunk, this.pos);
    this.pos += this.used;
    this.writeback?.wrote(this.used);
    this.used = 0;
  }

  /** Finishes the pack under its final name; returns it (undefined when empty). */
  async finish(): Promise<{ name: string; size: number } | undefined> {
    if (!this.fh) return undefined;
    if (this.blobStart !== this.rows) throw new Error('PackWriter: pages added after the last blob');
    const f = this.rows * ENTRY_BYTES;
    this.table.writeUInt32LE(this.rows, f);
    this.table.writeUInt32LE(PACK_VERSION, f + 4);
    PACK_MAGIC.copy(this.table, f + 8);
    await this.append(this.table.subarray(0, f + FOOTER_BYTES));
    await this.flush();
    const size = this.pos;
    try {
      await this.writeback?.settle();
      await this.fh.sync();
    } finally {
      await this.writeback?.settle().catch(() => undefined);
      await this.fh.close();
      this.fh = undefined;
    }
    const name = `${this.hash.digest('hex')}.pack`;
    crashPoint('archive:pack-temp');
    // Same name = same bytes: an existing pack of that name is this very pack — when it is
    // whole. A damaged one (its trailer unreadable, so none of its pages was found and all
    // were stored again) is replaced by these bytes, which are what its name promises: kept,
    // the snapshot just archived would need the damaged file and its plain file is deleted next.
    const dest = join(this.paths.packs, name);
    if (!(await publishNoClobber(this.tmp, dest))) {
      if ((await packProblem(this.paths, name)) === undefined) await fsp.rm(this.tmp, { force: true });
      else await fsp.rename(this.tmp, dest); // the caller fsyncs the folder before the index is written
    }
    return { name, size };
  }

  async discard(): Promise<void> {
    await this.writeback?.settle().catch(() => undefined);
    await this.fh?.close().catch(() => undefined);
    this.fh = undefined;
    await fsp.rm(this.tmp, { force: true }).catch(() => undefined);
  }
}

/**
 * Gathers new pages into blobs of up to BLOB_RAW_BYTES (pages in the order they come, not
 * necessarily adjacent in the file), deflates each blob in one call and appends it to the
 * pack being written; packs close at PACK_TARGET_BYTES. One zlib call per blob instead of
 * one per page: the per-call setup (a zlib stream and its window) was most of the cost of
 * compressing 4 KiB pages. A blob that does not shrink is stored as it is.
 */
class BlobPacker {
  private writer: PackWriter | undefined;
  private readonly buf = Buffer.allocUnsafe(BLOB_RAW_BYTES);
  /** Each blob deflated into this one buffer (PackWriter copies it), never a new one per blob. */
  private readonly zbuf = Buffer.allocUnsafe(BLOB_RAW_BYTES);
  private readonly deflater = new BlobDeflater();
  /** Each deflated blob inflated back here before it is written (a byte over, so an overlong result shows). */
  private readonly inflater = new BlobInflater();
  private readonly back = Buffer.allocUnsafe(BLOB_RAW_BYTES + 1);
  private used = 0;
  /**
   * The pages of the pack being written, not yet in the store: the first 4 bytes of each
   * hash → its row in the pack's trailer, where the whole hash is compared (a number key:
   * no string per page). Two pages whose hashes share those 4 bytes keep the later one: the
   * earlier one is then stored again should it come again, which costs a few bytes, never
   * correctness.
   */
  private readonly pending = new Map<number, number>();
  readonly written: { name: string; size: number }[] = [];
  /**
   * The last pack's write buffer and trailer, for the next pack: a first archive at 500 MB
   * writes ~30 packs, and a new 1 MiB buffer and a trailer grown by doubling for each were
   * ~45 MB of garbage that V8 collected late (10 MB of dead buffers held at a time).
   */
  private spare: { buf: Buffer; table: Buffer } | undefined;

  constructor(
    private readonly paths: ArchivePaths,
    private readonly mode: number,
    private readonly store: PackStore,
  ) {}

  /** Whether the page whose hash is `h[at, at+32)` is already stored or on its way. */
  has(h: Buffer, at: number): boolean {
    if (this.store.has(h, at)) return true;
    const row = this.pending.size > 0 ? this.pending.get(h.readInt32LE(at)) : undefined;
    return row !== undefined && (this.writer as PackWriter).hashIs(row, h, at);
  }

  /** Adds a new page whose hash is `hash[at, at+32)` (copied: `hash` may be reused). */
  async add(hash: Buffer, at: number, page: Uint8Array): Promise<void> {
    if (this.used + page.length > this.buf.length) await this.seal();
    if (!this.writer) {
      this.writer = new PackWriter(this.paths, this.mode, this.spare);
      this.spare = undefined;
    }
    this.pending.set(hash.readInt32LE(at), this.writer.addPage(hash, at, this.used, page.length));
    this.buf.set(page, this.used);
    this.used += page.length;
  }

  private async seal(): Promise<void> {
    if (!this.used) return;
    const raw = this.buf.subarray(0, this.used);
    const zlen = this.deflater.deflate(raw, this.zbuf.subarray(0, this.used));
    // Proven to inflate back to exactly these pages before it is written: the plain file (or
    // the pack being repacked) goes once the archive holds it, and zlib runs through a reused
    // stream (blobZlib.ts). Inflating a blob costs a small part of deflating it.
    if (zlen >= 0 && (this.inflater.inflate(this.zbuf.subarray(0, zlen), this.back) !== this.used || !this.back.subarray(0, this.used).equals(raw))) {
      throw new BackupError('IO', 'zlib deflated a blob of pages that does not inflate back to them; nothing was archived from it.', {
        hint: 'This points at the zlib of this Node/VS Code build; the plain snapshot stays as it is. Please report it.',
      });
    }
    const writer = this.writer as PackWriter; // made by the first add()
    await writer.addBlob(zlen >= 0 ? this.zbuf.subarray(0, zlen) : raw, this.used);
    this.used = 0;
    if (writer.bytes >= PACK_TARGET_BYTES) await this.finishPack();
  }

  private async finishPack(): Promise<void> {
    const w = this.writer;
    this.writer = undefined;
    let done: { name: string; size: number } | undefined;
    try {
      done = await w?.finish();
    } catch (e) {
      await w?.discard(); // its temp file and handle, which discard() below no longer sees
      throw e;
    }
    if (w && done) {
      this.written.push(done);
      this.store.addTrailer(done.name, done.size, PACK_VERSION, w.table, w.rows);
      this.store.intact.add(done.name); // its blobs were inflated back before they were written
      this.store.proven.add(done.name); // …each from pages whose hashes were taken from their bytes
      this.store.provenDirty = true;
    }
    if (w) this.spare = { buf: w.buf, table: w.table }; // copied into the store: free for the next pack
    this.pending.clear();
  }

  /** Seals the last blob and closes the last pack. */
  async finish(): Promise<void> {
    await this.seal();
    await this.finishPack();
    this.deflater.close();
    this.inflater.close();
  }

  async discard(): Promise<void> {
    this.deflater.close();
    this.inflater.close();
    await this.writer?.discard();
    this.writer = undefined;
  }
}

// ---------------------------------------------------------------------------------------
// Indexes

export interface IndexHeader {
  /** 1: the page hashes in the index; 2: a base's, with this index's changed pages over them. */
  v: 1 | 2;
  snapshot: string;
  sha256: string;
  bytes: number;
  piece: number;
  pieces: number;
  /** v2: the sha256 of the base file (`bases/<base>.base`) whose page list this index takes. */
  base?: string;
  /** v2: the base's page count (pages from there on are all among the changed ones). */
  basePieces?: number;
  /** v2: the (page number, sha256) entries after the header, ascending by page. */
  changed?: number;
}

export interface PageIndex {
  header: IndexHeader;
  /** 32 bytes per piece, in file order. */
  hashes: Buffer;
}

interface BaseHeader {
  v: 1;
  piece: number;
  pieces: number;
}

/**
 * A base's bytes in one buffer, laid out before the pages are hashed: `AIMBASE1`, header
 * length, a JSON header of the page size and count only (the same page list makes the same
 * file, so the same name), the page hashes, the sha256 of all that. Each page's hash is
 * written straight into its place: nothing is copied at the end (4 MB at 500 MB, at the peak
 * of archiving). Written as a base only when the snapshot does not take the newest one's.
 */
class BaseBytes {
  /** Where the page hashes go: 32 bytes per piece, in file order. */
  readonly hashes: Buffer;
  private readonly buf: Buffer;

  constructor(
    readonly piece: number,
    readonly pieces: number,
  ) {
    const h: BaseHeader = { v: 1, piece, pieces };
    const json = Buffer.from(JSON.stringify(h), 'utf8');
    const start = 12 + json.length;
    // Every byte is written (the header here, each page's hash as it is read, the sum in
    // finish()). A transient 4 MB buffer: from largeBuffer, so freeing it leaves glibc's
    // thresholds as they were (largeBuffer.ts).
    this.buf = largeBuffer(start + pieces * 32 + 32);
    BASE_MAGIC.copy(this.buf, 0);
    this.buf.writeUInt32LE(json.length, 8);
    json.copy(this.buf, 12);
    this.hashes = this.buf.subarray(start, start + pieces * 32);
  }

  /** The whole file (its own sha256 last) and its name (the sha256 of the whole file). */
  finish(): { bytes: Buffer; name: string } {
    const body = this.buf.subarray(0, this.buf.length - 32);
    createHash('sha256').update(body).digest().copy(this.buf, body.length);
    return { bytes: this.buf, name: createHash('sha256').update(this.buf).digest('hex') };
  }
}

/**
 * An index v2: `AIMIDX02`, header length, the JSON header (v1's, plus the base's sha256 and
 * page count and the number of changed pages), then for each page whose hash is not the
 * base's (ascending; every page past the base's end among them) its number (u32) and its
 * hash, then the sha256 of all that.
 */
function indexV2(h: Omit<IndexHeader, 'v' | 'base' | 'basePieces' | 'changed'>, base: { name: string; pieces: number }, changed: Int32Array, hashes: Buffer): Buffer {
  const header: IndexHeader = { v: 2, snapshot: h.snapshot, sha256: h.sha256, bytes: h.bytes, piece: h.piece, pieces: h.pieces, base: base.name, basePieces: base.pieces, changed: changed.length };
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const start = 12 + json.length;
  const buf = largeBuffer(start + changed.length * CHANGE_BYTES + 32); // every byte written below
  INDEX_MAGIC_V2.copy(buf, 0);
  buf.writeUInt32LE(json.length, 8);
  json.copy(buf, 12);
  for (let k = 0; k < changed.length; k++) {
    const at = start + k * CHANGE_BYTES;
    buf.writeUInt32LE(changed[k], at);
    hashes.copy(buf, at + 4, changed[k] * 32, changed[k] * 32 + 32);
  }
  const body = buf.subarray(0, buf.length - 32);
  createHash('sha256').update(body).digest().copy(buf, body.length);
  return buf;
}

/**
 * A base file's header, through `read` (`size`: the file's bytes): the header, where the page
 * hashes start, and the bytes before them (for the file's sha256); or why it is no base.
 * Whether the header fits what the caller expects (page size, count, file size) is the caller's.
 */
async function readBaseHeader(read: (buf: Buffer, pos: number) => Promise<void>, size: number): Promise<{ header: BaseHeader; start: number; head: Buffer } | string> {
  if (size > MAX_INDEX_BYTES || size < 12 + 32) return 'damaged (not a page list)';
  const prefix = Buffer.alloc(12);
  await read(prefix, 0);
  const jl = prefix.readUInt32LE(8);
  if (!prefix.subarray(0, 8).equals(BASE_MAGIC) || jl > MAX_INDEX_HEADER || 12 + jl > size - 32) return 'damaged (header)';
  const json = Buffer.alloc(jl);
  await read(json, 12);
  try {
    return { header: JSON.parse(json.toString('utf8')) as BaseHeader, start: 12 + jl, head: Buffer.concat([prefix, json]) };
  } catch {
    return 'damaged (header)';
  }
}

/** The base an index v2 names: in bases/, beside the index's snapshots/ folder. */
function basePathFor(indexPath: string, base: string): string {
  return join(dirname(dirname(indexPath)), 'bases', `${base}.base`);
}

/** A buffer readIndex reads into and returns views of (for loops over every index: no 4 MB of garbage per 500 MB snapshot). */
export interface IndexBuffer {
  buf: Buffer;
}

/** An array indexRows fills and returns a view of (for loops over every index: no 0.5 MB array per 500 MB snapshot). */
interface RowsBuffer {
  rows: Int32Array;
}

/** The first `n` of `into`'s array, grown first when shorter (a little room to spare: the next snapshot is a few pages longer at most). */
function rowsFor(into: RowsBuffer, n: number): Int32Array {
  if (into.rows.length < n) into.rows = new Int32Array(n + (n >> 4));
  return into.rows.subarray(0, n);
}

/**
 * Opens a page index: the descriptor is what is checked (a regular file, not a link, never
 * a FIFO that would block the open) and then read, so nothing swapped in under its name
 * between a check and the open is ever read. Errors as readIndex says them.
 */
async function openIndex(path: string): Promise<{ fh: FileHandle; size: number }> {
  try {
    return await openRegular(path, { noFollow: true });
  } catch (e) {
    if (e instanceof NotRegularFileError) throw damaged(`${path} is not a regular file.`);
    if (errnoCode(e) === 'ENOENT') throw damaged(`The page index ${path} is missing.`);
    throw ioError('reading', path, e);
  }
}

/** The first 8 bytes of an open index: which format it is (undefined: neither). */
async function indexVersion(fh: FileHandle, size: number): Promise<1 | 2 | undefined> {
  if (size < 12 + 32) return undefined;
  const magic = Buffer.alloc(8);
  await readExactly(fh, magic, 0);
  return magic.equals(INDEX_MAGIC) ? 1 : magic.equals(INDEX_MAGIC_V2) ? 2 : undefined;
}

/**
 * The page hashes of an index v2, a run of pages at a time in file order: its base's, with
 * the index's changed pages put over them. Memory stays bounded whatever the sizes: the base
 * is read straight into the caller's buffer, the changes through `scratch`. Checked: the
 * index's own sha256 first (a pass over it before anything in it is used: it is small, a
 * quarter of the pages at most), its header, then as the pages go by its shape (changes
 * ascending, inside the snapshot, every page past the base's end among them) and the base's
 * header against the index; at `end()`, the base's own sha256 and its bytes against its name.
 * Errors: ARCHIVE_DAMAGED naming the index, or the base and the snapshot whose index names it.
 */
class ChangedPageHashes {
  private base: FileHandle | undefined;
  private baseStart = 0;
  private baseSize = 0;
  private readonly baseBody = createHash('sha256');
  private readonly baseWhole = createHash('sha256');
  private nextPage = 0;
  /** Changes: the next unread one's place in the index, how many are unread, the ones read into `scratch` ([at, end)). */
  private changePos: number;
  private changesLeft: number;
  private at = 0;
  private end0 = 0;
  private lastChanged = -1;
  readonly basePath: string;

  private constructor(
    private readonly fh: FileHandle,
    private readonly path: string,
    readonly header: IndexHeader,
    start: number,
    private readonly scratch: Buffer,
  ) {
    this.changePos = start;
    this.changesLeft = header.changed as number;
    this.basePath = basePathFor(path, header.base as string);
  }

  private baseDamaged(why: string): BackupError {
    return damaged(`The base ${this.basePath} of ${this.header.snapshot}'s page index is ${why}.`);
  }

  /** Opens index v2 `fh` (`size` bytes) and its base; `scratch` (a few KiB or more) holds the changes read ahead. */
  static async open(fh: FileHandle, size: number, path: string, scratch: Buffer): Promise<ChangedPageHashes> {
    const bad = (why: string) => damaged(`The page index ${path} is damaged (${why}).`);
    if (size > MAX_INDEX_BYTES) throw damaged(`${path} is too large for a page index.`);
    if (size < 12 + 32) throw bad('not a page index');
    const readAt = async (buf: Buffer, pos: number) =>
      readExactly(fh, buf, pos).catch((e: unknown) => {
        throw errnoCode(e) ? e : damaged(`${path} changed while it was read.`);
      });
    const body = createHash('sha256');
    const step = Math.floor(scratch.length / CHANGE_BYTES) * CHANGE_BYTES;
    for (let pos = 0; pos < size - 32; pos += step) {
      const b = scratch.subarray(0, Math.min(step, size - 32 - pos));
      await readAt(b, pos);
      body.update(b);
    }
    const sum = Buffer.alloc(32);
    await readAt(sum, size - 32);
    if (!body.digest().equals(sum)) throw bad('checksum');
    const prefix = Buffer.alloc(12);
    await readAt(prefix, 0);
    const jl = prefix.readUInt32LE(8);
    if (!prefix.subarray(0, 8).equals(INDEX_MAGIC_V2) || jl > MAX_INDEX_HEADER || 12 + jl > size - 32) throw bad('header');
    const json = Buffer.alloc(jl);
    await readAt(json, 12);
    let h: IndexHeader;
    try {
      h = JSON.parse(json.toString('utf8')) as IndexHeader;
    } catch {
      throw bad('header');
    }
    const whole = (n: unknown): n is number => typeof n === 'number' && Number.isInteger(n) && n >= 0;
    if (
      h.v !== 2 ||
      typeof h.base !== 'string' ||
      !/^[0-9a-f]{64}$/.test(h.base) ||
      !whole(h.basePieces) ||
      !whole(h.changed) ||
      !whole(h.pieces) ||
      !whole(h.bytes) ||
      !validPiece(h.piece) ||
      h.pieces !== Math.ceil(h.bytes / h.piece) ||
      h.changed > h.pieces ||
      size - 32 - (12 + jl) !== h.changed * CHANGE_BYTES ||
      h.changed < h.pieces - h.basePieces
    ) {
      throw bad('shape');
    }
    const r = new ChangedPageHashes(fh, path, h, 12 + jl, scratch.subarray(0, step));
    try {
      await r.openBase();
    } catch (e) {
      await r.close();
      throw e;
    }
    return r;
  }

  private async openBase(): Promise<void> {
    try {
      const { fh, size } = await openRegular(this.basePath, { noFollow: true });
      this.base = fh;
      this.baseSize = size;
    } catch (e) {
      if (e instanceof NotRegularFileError) throw this.baseDamaged('not a regular file');
      if (errnoCode(e) === 'ENOENT') throw this.baseDamaged('missing');
      throw ioError('reading', this.basePath, e);
    }
    const read = await readBaseHeader((buf, pos) => this.readBase(buf, pos), this.baseSize);
    if (typeof read === 'string') throw this.baseDamaged(read);
    const { header: b, start, head } = read;
    this.baseStart = start;
    if (b.v !== 1 || b.piece !== this.header.piece || b.pieces !== this.header.basePieces || this.baseSize !== this.baseStart + b.pieces * 32 + 32) {
      throw this.baseDamaged(b.v === 1 && b.pieces * 32 + this.baseStart + 32 === this.baseSize ? 'not the one it names (another page size or count)' : 'damaged (shape)');
    }
    this.baseBody.update(head);
    this.baseWhole.update(head);
  }

  private async readBase(buf: Buffer, pos: number): Promise<void> {
    await readExactly(this.base as FileHandle, buf, pos).catch((e: unknown) => {
      throw errnoCode(e) ? e : this.baseDamaged('shorter than it says (damaged)');
    });
  }

  /** The hashes of the next `n` pages into `out[0, 32n)`. */
  async read(out: Buffer, n: number): Promise<void> {
    const h = this.header;
    const first = this.nextPage;
    if (first + n > h.pieces) throw new Error('ChangedPageHashes: read past the last page');
    const fromBase = Math.max(0, Math.min(n, (h.basePieces as number) - first));
    if (fromBase > 0) {
      const b = out.subarray(0, fromBase * 32);
      await this.readBase(b, this.baseStart + first * 32);
      this.baseBody.update(b);
      this.baseWhole.update(b);
    }
    let pastBase = 0;
    for (;;) {
      if (this.at === this.end0) {
        if (this.changesLeft === 0) break;
        const k = Math.min(this.changesLeft, this.scratch.length / CHANGE_BYTES);
        const b = this.scratch.subarray(0, k * CHANGE_BYTES);
        await readExactly(this.fh, b, this.changePos).catch((e: unknown) => {
          throw errnoCode(e) ? e : damaged(`${this.path} changed while it was read.`);
        });
        this.changePos += b.length;
        this.changesLeft -= k;
        this.at = 0;
        this.end0 = b.length;
      }
      const page = this.scratch.readUInt32LE(this.at);
      if (page >= first + n) break;
      if (page <= this.lastChanged || page < first) throw damaged(`The page index ${this.path} is damaged (shape: changed pages out of order).`);
      this.scratch.copy(out, (page - first) * 32, this.at + 4, this.at + CHANGE_BYTES);
      if (page >= (h.basePieces as number)) pastBase++;
      this.lastChanged = page;
      this.at += CHANGE_BYTES;
    }
    if (pastBase !== n - fromBase) throw damaged(`The page index ${this.path} is damaged (shape: a page past its base's end is not among its changes).`);
    this.nextPage += n;
  }

  /** After the last page: no change left over; the base's own sha256 and its name. */
  async end(): Promise<void> {
    if (this.nextPage !== this.header.pieces) throw new Error('ChangedPageHashes: ended before the last page');
    if (this.at !== this.end0 || this.changesLeft !== 0) throw damaged(`The page index ${this.path} is damaged (shape: a changed page past the snapshot's end).`);
    // The base's pages past the snapshot's end (it was longer), then its own sha256.
    const tailStart = this.baseStart + Math.min(this.header.pieces, this.header.basePieces as number) * 32;
    for (let pos = tailStart; pos < this.baseSize - 32; ) {
      const b = this.scratch.subarray(0, Math.min(this.scratch.length, this.baseSize - 32 - pos));
      await this.readBase(b, pos);
      this.baseBody.update(b);
      this.baseWhole.update(b);
      pos += b.length;
    }
    const sum = Buffer.alloc(32);
    await this.readBase(sum, this.baseSize - 32);
    if (!this.baseBody.digest().equals(sum)) throw this.baseDamaged('damaged (checksum)');
    this.baseWhole.update(sum);
    if (this.baseWhole.digest('hex') !== this.header.base) throw this.baseDamaged('damaged (its bytes do not match its name)');
  }

  async close(): Promise<void> {
    await this.base?.close().catch(() => undefined);
    this.base = undefined;
  }
}

/** Reads and checks an index (magic, its own sha256, shape; v2: its base too). Throws ARCHIVE_DAMAGED. */
export async function readIndex(path: string, into?: IndexBuffer): Promise<PageIndex> {
  let data: Buffer;
  const { fh, size } = await openIndex(path);
  try {
    if (size > MAX_INDEX_BYTES) throw damaged(`${path} is too large for a page index.`);
    if ((await indexVersion(fh, size)) === 2) {
      // Its base's page list with the changes over it, into a buffer of the snapshot's hashes.
      const r = await ChangedPageHashes.open(fh, size, path, Buffer.allocUnsafe(CHANGES_READ_BYTES));
      try {
        const n = r.header.pieces * 32;
        if (into && into.buf.length < n) into.buf = Buffer.allocUnsafe(n + (n >> 4));
        const hashes = into ? into.buf.subarray(0, n) : Buffer.allocUnsafe(n);
        await r.read(hashes, r.header.pieces);
        await r.end();
        return { header: r.header, hashes };
      } finally {
        await r.close();
      }
    }
    let buf: Buffer;
    if (into) {
      // A little room to spare, not double: the next snapshot's index is a few pages longer
      // at most, and doubling made two 8 MB buffers out of 4 MB indexes (gc reads in turn).
      if (into.buf.length < size) into.buf = Buffer.allocUnsafe(size + (size >> 4));
      buf = into.buf;
    } else {
      buf = Buffer.allocUnsafe(size);
    }
    data = buf.subarray(0, size);
    await readExactly(fh, data, 0).catch((e: unknown) => {
      throw errnoCode(e) ? e : damaged(`${path} changed while it was read.`);
    });
  } catch (e) {
    if (e instanceof BackupError) throw e;
    throw ioError('reading', path, e);
  } finally {
    await fh.close().catch(() => undefined);
  }
  const bad = (why: string) => damaged(`The page index ${path} is damaged (${why}).`);
  if (data.length < 12 + 32 || !data.subarray(0, 8).equals(INDEX_MAGIC)) throw bad('not a page index');
  const body = data.subarray(0, data.length - 32);
  if (!createHash('sha256').update(body).digest().equals(data.subarray(data.length - 32))) throw bad('checksum');
  const jl = data.readUInt32LE(8);
  if (jl > MAX_INDEX_HEADER || 12 + jl > body.length) throw bad('header');
  let header: IndexHeader;
  try {
    header = JSON.parse(data.toString('utf8', 12, 12 + jl)) as IndexHeader;
  } catch {
    throw bad('header');
  }
  const hashes = body.subarray(12 + jl);
  if (
    header.v !== 1 ||
    !validPiece(header.piece) ||
    !Number.isInteger(header.bytes) ||
    header.bytes < 0 ||
    hashes.length !== header.pieces * 32 ||
    header.pieces !== Math.ceil(header.bytes / header.piece)
  ) {
    throw bad('shape');
  }
  return { header, hashes };
}

/**
 * What a rebuild needs of an index: its header and, for each page, the row of the pack
 * table holding it (-1: in no pack). Read as readIndex reads it, every check made before
 * anything is used (a damaged index throws exactly what readIndex throws), but a window at
 * a time, each page looked up as its hash goes by: the hashes themselves (4 MB at 500 MB)
 * are read again only to name damaged pages. An index v2 a window of its base's hashes at a
 * time (three quarters of `window`), its changes through the rest. `opts.prev`: the previous
 * snapshot's rows, a first guess for each page's (taken only when the hashes are equal);
 * `opts.into`: an array to fill and return a view of.
 */
async function indexRows(path: string, store: PackStore, window: Buffer, opts: { prev?: Int32Array; into?: RowsBuffer } = {}): Promise<{ header: IndexHeader; rows: Int32Array; firstMissing: number }> {
  const { prev, into } = opts;
  // Any doubt about the file's shape: readIndex reads it whole and says what is wrong.
  const whole = async (): Promise<never> => {
    await readIndex(path);
    throw damaged(`The page index ${path} changed while it was read.`);
  };
  let fh: FileHandle | undefined;
  let changes: ChangedPageHashes | undefined;
  try {
    const opened = await openIndex(path);
    fh = opened.fh;
    const size = opened.size;
    if (size > MAX_INDEX_BYTES || size < 12 + 32) return await whole();
    // Each page's row as its hash goes by.
    let rows: Int32Array = new Int32Array(0);
    let firstMissing = -1;
    const look = (b: Buffer, first: number, n: number) => {
      for (let at = 0, i = first; i < first + n; at += 32, i++) {
        // `prev`: the rows of the previous snapshot's pages. Most pages sit where they sat
        // there: the same hash as that row's is that row, without a lookup.
        const p = prev && i < prev.length ? prev[i] : -1;
        rows[i] = p >= 0 && store.holds(p, b, at) ? p : store.find(b, at);
        if (rows[i] < 0 && firstMissing < 0) firstMissing = i;
      }
    };
    if ((await indexVersion(fh, size)) === 2) {
      const split = Math.floor((window.length * 3) / 4 / 32) * 32;
      changes = await ChangedPageHashes.open(fh, size, path, window.subarray(split));
      const header = changes.header;
      rows = into ? rowsFor(into, header.pieces) : new Int32Array(header.pieces);
      const step = split / 32;
      for (let i = 0; i < header.pieces; i += step) {
        const n = Math.min(step, header.pieces - i);
        await changes.read(window, n);
        look(window, i, n);
      }
      await changes.end();
      return { header, rows, firstMissing };
    }
    const read = async (pos: number, len: number): Promise<Buffer> => {
      const { bytesRead } = await (fh as FileHandle).read(window, 0, len, pos);
      if (bytesRead !== len) throw damaged(`${path} changed while it was read.`);
      return window.subarray(0, len);
    };
    const headBytes = Math.min(size - 32, 12 + MAX_INDEX_HEADER);
    let b = await read(0, headBytes);
    const jl = b.readUInt32LE(8);
    if (!b.subarray(0, 8).equals(INDEX_MAGIC) || jl > MAX_INDEX_HEADER || 12 + jl > headBytes) return await whole();
    let header: IndexHeader;
    try {
      header = JSON.parse(b.toString('utf8', 12, 12 + jl)) as IndexHeader;
    } catch {
      return await whole();
    }
    const start = 12 + jl;
    if (header.v !== 1 || !validPiece(header.piece) || !Number.isInteger(header.bytes) || header.bytes < 0 || size - 32 - start !== header.pieces * 32 || header.pieces !== Math.ceil(header.bytes / header.piece)) return await whole();
    const body = createHash('sha256').update(b.subarray(0, start));
    rows = into ? rowsFor(into, header.pieces) : new Int32Array(header.pieces);
    const step = Math.floor(window.length / 32) * 32;
    for (let pos = start, i = 0; pos < size - 32; ) {
      const len = Math.min(step, size - 32 - pos);
      b = await read(pos, len);
      body.update(b);
      look(b, i, len / 32);
      i += len / 32;
      pos += len;
    }
    if (!body.digest().equals(await read(size - 32, 32))) throw damaged(`The page index ${path} is damaged (checksum).`);
    return { header, rows, firstMissing };
  } catch (e) {
    if (e instanceof BackupError) throw e;
    if (errnoCode(e) === 'ENOENT') throw damaged(`The page index ${path} is missing.`);
    throw ioError('reading', path, e);
  } finally {
    await changes?.close();
    await fh?.close();
  }
}

/** The header of an index (its first bytes only; nothing checked but that they parse): undefined when they do not. */
async function indexHeaderOf(path: string): Promise<IndexHeader | undefined> {
  let fh: FileHandle | undefined;
  try {
    const opened = await openIndex(path);
    fh = opened.fh;
    const head = Buffer.alloc(Math.min(opened.size, 12 + 4096));
    await readExactly(fh, head, 0);
    const jl = head.readUInt32LE(8);
    if (12 + jl > head.length) return undefined;
    return JSON.parse(head.toString('utf8', 12, 12 + jl)) as IndexHeader;
  } catch {
    return undefined;
  } finally {
    await fh?.close().catch(() => undefined);
  }
}

// ---------------------------------------------------------------------------------------
// Archived snapshots in a folder

export interface ArchivedSnapshot {
  name: string;
  manifestPath: string;
  indexPath: string;
  manifest?: Manifest;
  manifestError?: string;
}

/**
 * Archived snapshots (a manifest in snapshots/), by name. One whose index is gone is listed
 * too: archiving writes the index first and deleting removes the manifest first, so no crash
 * leaves a manifest without its index; a lost index is damage, reported when the snapshot is
 * rebuilt ("missing"), and it stops the collection of packs (its pages are not known).
 */
export async function listArchived(dir: string): Promise<ArchivedSnapshot[]> {
  const paths = archivePaths(dir);
  let names: string[];
  try {
    names = await fsp.readdir(paths.snapshots);
  } catch {
    return [];
  }
  const out: ArchivedSnapshot[] = [];
  for (const n of names) {
    if (!n.startsWith('ai-memory-') || !n.endsWith('.manifest.json')) continue;
    const name = `${n.slice(0, -'.manifest.json'.length)}.db`;
    const idx = indexNameFor(name);
    const a: ArchivedSnapshot = { name, manifestPath: join(paths.snapshots, n), indexPath: join(paths.snapshots, idx) };
    try {
      // Only a regular file, with a capped read (regularFile.ts): a FIFO or a huge file named like a manifest never hangs a listing.
      a.manifest = parseManifest(await readSmallRegularBytes(a.manifestPath), a.manifestPath);
      if (a.manifest.snapshot !== name) throw new Error(`it describes "${a.manifest.snapshot}", not ${name}`);
    } catch (e) {
      a.manifest = undefined;
      a.manifestError = errorMessage(e);
    }
    out.push(a);
  }
  return out;
}

async function modeOf(path: string): Promise<number> {
  try {
    return (await fsp.stat(path)).mode & 0o666;
  } catch {
    return 0o600;
  }
}


export interface ArchiveResult {
  name: string;
  pieces: number;
  newPieces: number;
  newPackBytes: number;
}

/**
 * Archives the plain snapshot `name` of `dir` (its manifest checked by the caller): pages
 * into packs, its index and manifest into snapshots/, then the plain file and its manifest
 * go. The plain file's bytes must hash to the manifest's sha256, or nothing is archived.
 * The caller holds the folder lock.
 */
export async function archiveSnapshot(dir: string, name: string, manifest: Manifest, store: PackStore, signal?: AbortSignal): Promise<ArchiveResult> {
  store.needWholeHashes(); // what is found in it is not stored again
  await refuseUnsafeArchiveFolders(dir);
  const paths = archivePaths(dir);
  const plain = join(dir, name);
  const plainManifest = join(dir, manifestNameFor(name));
  const mode = await modeOf(plain);
  // Made no wider than the snapshot (an existing archive folder stays as it is: its files keep their own modes).
  const madePacks = await fsp.mkdir(paths.packs, { recursive: true, mode: dirModeLike(mode) });
  const madeSnapshots = await fsp.mkdir(paths.snapshots, { recursive: true, mode: dirModeLike(mode) });
  const madeBases = await fsp.mkdir(paths.bases, { recursive: true, mode: dirModeLike(mode) });
  // New folders durable before anything in them counts (the plain file goes only after the
  // packs, the base and the index are synced in their folders; those folders' own entries, too).
  if (madePacks !== undefined || madeSnapshots !== undefined || madeBases !== undefined) {
    await fsyncDir(paths.root);
    await fsyncDir(dir);
  }
  // What is read is the descriptor that was checked: a regular file, not a link, never a FIFO swapped in.
  const { fh } = await openRegular(plain, { noFollow: true }).catch((e: unknown) => {
    throw ioError('opening', plain, e);
  });
  const packer = new BlobPacker(paths, mode, store);
  let newPieces = 0;
  let pieceCount = 0;
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw new BackupError('IO', `${plain} is not a regular file; not archived.`);
    if (st.size !== manifest.bytes) throw new BackupError('SIZE_MISMATCH', `${name} is ${st.size} bytes but its manifest says ${manifest.bytes}; it was not archived.`, { hint: 'Run `verify` on it.' });
    const size = st.size;
    const head = Buffer.alloc(Math.min(100, size));
    if (head.length) await readExactly(fh, head, 0);
    const piece = pieceSize(head);
    const pieces = Math.ceil(size / piece);
    pieceCount = pieces;
    // An index larger than readIndex reads would be written, the plain file deleted, and the
    // snapshot never rebuilt ("too large for a page index").
    if (12 + MAX_INDEX_HEADER + pieces * 32 + 32 > MAX_INDEX_BYTES) {
      throw new BackupError('TOO_LARGE', `${name} has ${pieces} pages of ${piece} bytes, more than a page index holds (${Math.floor((MAX_INDEX_BYTES - MAX_INDEX_HEADER - 44) / 32)}); it stays a plain file.`, {
        hint: 'A larger page size (PRAGMA page_size, then VACUUM) makes fewer pages.',
      });
    }
    // An archive not half this snapshot's size (the first one): most pages will be new.
    // Room for them all at once: grown pack by pack, the table doubled several times, each
    // copy garbage, and ended with up to twice the rows it needed (~16 MB at 500 MB).
    if (store.count < pieces / 2) store.reserve(store.count + pieces + (pieces >> 4));
    // The page hashes, laid out as a base: written as one when the snapshot does not take the newest base's.
    const base = new BaseBytes(piece, pieces);
    const hashes = base.hashes;
    const whole = createHash('sha256');
    const chunk = Math.max(piece, Math.floor(READ_BYTES / piece) * piece);
    const bufs = [Buffer.allocUnsafe(chunk), Buffer.allocUnsafe(chunk)];
    const readAt = async (pos: number, b: Buffer) => {
      const len = Math.min(chunk, size - pos);
      await readExactly(fh, b.subarray(0, len), pos);
      return len;
    };
    let turn = 0;
    /** The packs this snapshot shares pages with (by their number in the store). */
    const shared = new Set<number>();
    let lastShared = -1;
    let next: Promise<number> | undefined = size > 0 ? readAt(0, bufs[0]) : undefined;
    let i = 0;
    for (let pos = 0; pos < size; pos += chunk) {
      const len = await (next as Promise<number>);
      const buf = bufs[turn];
      turn ^= 1;
      next = pos + chunk < size ? readAt(pos + chunk, bufs[turn]) : undefined;
      next?.catch(() => undefined);
      if (signal?.aborted) throw new BackupError('CANCELLED', 'Cancelled; the snapshot stays a plain file.');
      whole.update(buf.subarray(0, len));
      for (let o = 0; o < len; o += piece, i++) {
        const page = buf.subarray(o, Math.min(len, o + piece));
        pageHashInto(page, hashes, i * 32);
        // A page already in a pack is not stored again: that pack is proven whole below.
        const r = store.find(hashes, i * 32);
        if (r >= 0) {
          const p = store.packOf(r);
          if (p !== lastShared) shared.add((lastShared = p));
          continue;
        }
        if (packer.has(hashes, i * 32)) continue;
        newPieces++;
        await packer.add(hashes, i * 32, page);
      }
    }
    const sha256 = whole.digest('hex');
    if (sha256 !== manifest.sha256) {
      throw new BackupError('SHA_MISMATCH', `${name} no longer matches its manifest (sha256 ${sha256}, manifest ${manifest.sha256}); it was not archived.`, {
        hint: 'The plain snapshot is damaged; it stays as it is. Run `verify` on it.',
      });
    }
    // Every pack it shares pages with, proven whole (its bytes hash to its name) before the
    // plain file goes: a page of a damaged pack was taken as stored, and the only good copy
    // of the snapshot was deleted for an archived one that cannot be rebuilt.
    const bad = await firstDamagedPack(paths, store, shared, signal);
    if (bad) {
      throw damaged(`${name} was not archived: pack ${bad.pack}, which holds pages it shares with archived snapshots, is damaged (${bad.problem}); it stays a plain file.`, 'Run `verify --all` to see which archived snapshots the pack affects; they rebuild only from a copy of it.');
    }
    // …and holding what its trailer lists. A pack's name proves its bytes, not that each page
    // it lists is what its trailer says: a pack that lies (whole, named by its own bytes:
    // made by hand, copied in, or written wrong) made an archived copy that rebuilt to other
    // bytes, and the plain file, the only good copy, was deleted for it. Packs we wrote are
    // such by construction; any other is proven entry by entry once (firstUnprovenPack).
    const lying = await firstUnprovenPack(paths, store, shared, signal);
    if (lying) {
      throw damaged(`${name} was not archived: its archived copy would not rebuild (pack ${lying.pack} does not hold what its trailer lists: ${lying.problem}); it stays a plain file.`, 'Run `verify --all` to see which pack is at fault and which archived snapshots it affects.');
    }
    // The manifest is kept byte for byte (a signed manifest's bytes are what its signature
    // covers). The caller checked it moments ago under the lock; read again here (the rule of
    // regularFile.ts), it must still be the manifest of the bytes just hashed, or one replaced
    // meanwhile would be the only one left.
    const manifestBytes = await readSmallRegularBytes(plainManifest).catch((e: unknown) => {
      throw ioError('reading', plainManifest, e);
    });
    const again = parseManifest(manifestBytes, plainManifest);
    if (again.sha256 !== sha256 || again.bytes !== manifest.bytes || again.snapshot !== manifest.snapshot) {
      throw new BackupError('MANIFEST_INVALID', `${plainManifest} changed while ${name} was archived; ${name} stays a plain file.`, { hint: 'Something else writes into the backup folder; check what, then run the backup again.' });
    }
    await packer.finish();
    if (packer.written.length) await fsyncDir(paths.packs);
    crashPoint('archive:after-packs');
    // The page list: the newest base's with this snapshot's changes over it, or (too many
    // changes, or none to take) its own, a new base, durable in its folder before the index
    // that names it is written.
    const taken = await sharedBase(dir, manifest, mode, hashes, piece, pieces, bufs[0], store);
    let baseRef: { name: string; pieces: number };
    let changed: Int32Array;
    if (taken) {
      baseRef = taken.base;
      changed = taken.changed;
    } else {
      const own = base.finish();
      await publishBase(paths, own.name, own.bytes, mode);
      crashPoint('archive:after-base');
      baseRef = { name: own.name, pieces };
      changed = new Int32Array(0);
    }
    const index = indexV2({ snapshot: name, sha256, bytes: size, piece, pieces }, baseRef, changed, hashes);
    await writeFileAtomic(join(paths.snapshots, indexNameFor(name)), index, mode, { purpose: 'index', syncDir: false });
    store.lastBase.set(manifest.source_db, { name: baseRef.name, stored: (taken?.stored ?? 0) + changed.length * CHANGE_BYTES });
    crashPoint('archive:after-index');
    await writeFileAtomic(join(paths.snapshots, manifestNameFor(name)), manifestBytes, mode, { purpose: 'manifest', syncDir: false });
    await fsyncDir(paths.snapshots);
    crashPoint('archive:after-manifest');
  } catch (e) {
    await packer.discard();
    throw e;
  } finally {
    await fh.close();
  }
  await saveProven(paths, store, mode);
  await dropPlain(dir, name);
  return { name, pieces: pieceCount, newPieces, newPackBytes: packer.written.reduce((a, w) => a + w.size, 0) };
}

/**
 * The base a snapshot being archived takes, with its changed pages, or undefined (it writes
 * its own). The candidate is the base of the newest archived snapshot of the same database
 * (`source_db`; a v1 index has none). Taken when the base is whole (its own sha256 and its
 * name, checked as it is read: the plain file goes once the index naming it is written),
 * readable by exactly those who can read the snapshot (`mode`), of the same page size, at most
 * BASE_MAX_CHANGED of the snapshot's pages differ from it, and the changes the kept indexes on
 * it store, these included, stay within its size. `buf`: a read buffer (a multiple of 32 bytes).
 */
async function sharedBase(
  dir: string,
  manifest: Manifest,
  mode: number,
  hashes: Buffer,
  piece: number,
  pieces: number,
  buf: Buffer,
  store: PackStore,
): Promise<{ base: { name: string; pieces: number }; changed: Int32Array; stored: number } | undefined> {
  const paths = archivePaths(dir);
  let last = store.lastBase.get(manifest.source_db);
  if (!last) {
    const archived = (await listArchived(dir)).sort((x, y) => (x.name < y.name ? 1 : -1));
    const mine = archived.find((a) => a.manifest?.source_db === manifest.source_db);
    const newest = mine ? await indexHeaderOf(mine.indexPath) : undefined;
    const name = newest?.v === 2 && typeof newest.base === 'string' && /^[0-9a-f]{64}$/.test(newest.base) ? newest.base : undefined;
    if (!name) return undefined;
    // What the kept indexes on it store already (headers only).
    let stored = 0;
    for (const a of archived) {
      const h = await indexHeaderOf(a.indexPath);
      if (h?.v === 2 && h.base === name) stored += (h.changed ?? 0) * CHANGE_BYTES;
    }
    last = { name, stored };
  }
  const { name, stored } = last;
  const limit = Math.floor(pieces * BASE_MAX_CHANGED);
  let fh: FileHandle | undefined;
  try {
    const opened = await openRegular(join(paths.bases, `${name}.base`), { noFollow: true });
    fh = opened.fh;
    const size = opened.size;
    if (size < 12 + 32 || size > MAX_INDEX_BYTES) return undefined;
    // Readable by others exactly when the snapshot is (a private database's pages' hashes in a base others read; a shared one's in a base they cannot).
    if (((await fh.stat()).mode & 0o044) !== (mode & 0o044)) return undefined;
    const read = await readBaseHeader((b, pos) => readExactly(fh as FileHandle, b, pos), size);
    if (typeof read === 'string') return undefined;
    const { header: h, start, head } = read;
    if (h.v !== 1 || h.piece !== piece || !Number.isInteger(h.pieces) || size !== start + h.pieces * 32 + 32) return undefined;
    const past = Math.max(0, pieces - h.pieces);
    if (past > limit) return undefined;
    const body = createHash('sha256').update(head);
    const wholeFile = createHash('sha256').update(head);
    const room = largeBuffer(Math.max(4, limit * 4)); // up to a quarter of the pages (128 KiB at 500 MB): largeBuffer.ts
    const changed = new Int32Array(room.buffer, room.byteOffset, limit);
    let count = 0;
    const step = Math.floor(buf.length / 32) * 32;
    for (let pos = start, i = 0; pos < size - 32; ) {
      const b = buf.subarray(0, Math.min(step, size - 32 - pos));
      await readExactly(fh, b, pos);
      body.update(b);
      wholeFile.update(b);
      for (let at = 0; at < b.length && i < pieces; at += 32, i++) {
        if (hashes.compare(b, at, at + 32, i * 32, i * 32 + 32) === 0) continue;
        if (count + past >= limit) return undefined;
        changed[count++] = i;
      }
      pos += b.length;
    }
    const sum = Buffer.alloc(32);
    await readExactly(fh, sum, size - 32);
    if (!body.digest().equals(sum) || wholeFile.update(sum).digest('hex') !== name) return undefined; // damaged: not taken
    for (let i = h.pieces; i < pieces; i++) changed[count++] = i;
    if (stored + count * CHANGE_BYTES > size) return undefined;
    return { base: { name, pieces: h.pieces }, changed: changed.subarray(0, count), stored };
  } catch {
    return undefined; // unreadable: the snapshot writes its own
  } finally {
    await fh?.close().catch(() => undefined);
  }
}

/**
 * Writes a base: temp → fsync → its content-hash name, never replacing a base (link), then
 * the folder fsynced. An existing base of that name is these very bytes when whole; a damaged
 * one is replaced by them (what its name promises).
 */
async function publishBase(paths: ArchivePaths, name: string, bytes: Buffer, mode: number): Promise<void> {
  const tmp = tempPath(paths.bases, 'base');
  const dest = join(paths.bases, `${name}.base`);
  try {
    const fh = await fsp.open(tmp, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL, mode);
    try {
      await writeAll(fh, bytes, 0);
      await fh.sync();
    } finally {
      await fh.close();
    }
    if (!(await publishNoClobber(tmp, dest))) {
      if ((await fileProblem(dest, name)) === undefined) await fsp.rm(tmp, { force: true });
      else await fsp.rename(tmp, dest);
    }
  } catch (e) {
    await fsp.rm(tmp, { force: true }).catch(() => undefined);
    throw e instanceof BackupError ? e : ioError('writing', dest, e);
  }
  await fsyncDir(paths.bases);
}

/**
 * Why the archived snapshot `name` would not rebuild to `manifest`, short of rebuilding it:
 * its index read and checked, every page in a pack, each pack it uses whole (its bytes hash
 * to its name; once per store, `store.intact`). Undefined when it would. For dropping a plain
 * copy of the same snapshot, which may be the good one (a copy put back after damage).
 */
export async function archivedProblem(dir: string, name: string, manifest: Manifest, store: PackStore): Promise<string | undefined> {
  // Rebuilt (hashed, nothing written) against the manifest's sha256: its index read and
  // checked, its header against the manifest, every page in a pack, and then the bytes. The
  // checks short of a rebuild (pages in packs, packs whole) passed an index that is whole but
  // names other pages, and a pack whose bytes match its name but whose trailer says a page is
  // what it is not: the plain file, the only good copy, was dropped for a copy that rebuilds
  // to other bytes (and pull took such a copy as present).
  try {
    const r = await rebuildArchived(dir, name, undefined, { store });
    if (r.sha256 !== manifest.sha256 || r.bytes !== manifest.bytes) return 'its archived manifest is not this one';
    return undefined;
  } catch (e) {
    if (e instanceof BackupError && e.code === 'CANCELLED') throw e;
    return errorMessage(e);
  }
}

/**
 * The first of `packs` (numbers in `store`) whose bytes do not hash to its name; each proven
 * one is remembered in `store.intact`, so a run hashes a pack at most once.
 */
async function firstDamagedPack(paths: ArchivePaths, store: PackStore, packs: Iterable<number>, signal?: AbortSignal): Promise<{ pack: string; problem: string } | undefined> {
  for (const p of packs) {
    const pack = store.packs[p];
    if (store.intact.has(pack)) continue;
    const problem = await packProblem(paths, pack, signal);
    if (problem) return { pack, problem };
    store.intact.add(pack);
  }
  return undefined;
}

/**
 * The record of proven packs (PackStore.proven), in the archive folder: a first line, then a
 * pack name a line. Only a shortcut: lost, damaged or absent, each pack a snapshot shares
 * pages with is proven again the next time (a hash-only rebuild of a 500 MB snapshot at each
 * archiving was ~4 s, more than the archiving itself). It never vouches for bytes: every
 * pack shared is still hashed to its name before a plain file goes (firstDamagedPack), so a
 * pack changed since it was proven fails there. Whoever can write this record can as well
 * replace the plain snapshots and their manifests; it is trusted no more than the folder.
 */
const PROVEN_NAME = 'proven-packs';
const PROVEN_HEAD = 'ai-memory-backup proven packs 1';
const PACK_FILE_RE = /^[0-9a-f]{64}\.pack$/;

async function loadProven(paths: ArchivePaths, store: PackStore): Promise<void> {
  if (store.provenLoaded) return;
  store.provenLoaded = true;
  let lines: string[];
  try {
    lines = (await readSmallRegularBytes(join(paths.root, PROVEN_NAME), 16 << 20)).toString('utf8').split('\n');
  } catch {
    return; // none yet, or unreadable: packs are proven again as they are used
  }
  if (lines[0] !== PROVEN_HEAD) return;
  for (const l of lines.slice(1)) if (PACK_FILE_RE.test(l)) store.proven.add(l);
}

/** Writes the record when it gained packs: those of them still in the folder. Best effort (a full disk only costs a proof later). */
async function saveProven(paths: ArchivePaths, store: PackStore, mode: number): Promise<void> {
  if (!store.provenDirty) return;
  try {
    await loadProven(paths, store); // packs proven by an earlier run stay listed
    const present = new Set(await fsp.readdir(paths.packs));
    const names = [...store.proven].filter((n) => present.has(n)).sort();
    await writeFileAtomic(join(paths.root, PROVEN_NAME), `${PROVEN_HEAD}\n${names.join('\n')}\n`, mode & 0o666, { purpose: 'proven', syncDir: false });
    store.provenDirty = false;
  } catch {
    // the record stays as it was
  }
}

/**
 * The first of `packs` (numbers in `store`) with a trailer entry that is not the page it
 * says (its blob does not inflate, or to bytes of another hash), or undefined. Packs in the
 * record (or written by this process) are not read; each other one is read entry by entry
 * once and then recorded.
 */
async function firstUnprovenPack(paths: ArchivePaths, store: PackStore, packs: Iterable<number>, signal?: AbortSignal): Promise<{ pack: string; problem: string } | undefined> {
  await loadProven(paths, store);
  let source: PageSource | undefined;
  try {
    for (const p of packs) {
      const pack = store.packs[p];
      if (store.proven.has(pack)) continue;
      source ??= new PageSource(paths, store);
      for (let r = store.packStart[p]; r < store.packEnd[p]; r++) {
        if (signal?.aborted) throw new BackupError('CANCELLED', 'Cancelled; the snapshot stays a plain file.');
        const what = `entry ${r - store.packStart[p] + 1} of its trailer`;
        let page: Buffer;
        try {
          page = await source.page(r, what);
        } catch (e) {
          if (e instanceof BackupError && e.code === 'CANCELLED') throw e;
          return { pack, problem: errorMessage(e) };
        }
        if (!pageHashIs(page, store.hashOf(r), 0)) return { pack, problem: `${what} is not the page it lists` };
      }
      store.proven.add(pack);
      store.provenDirty = true;
    }
  } finally {
    await source?.close();
  }
  return undefined;
}

/** Deletes the plain copy of a snapshot that is archived: the file, then its manifest. */
export async function dropPlain(dir: string, name: string): Promise<void> {
  await fsp.rm(join(dir, name), { force: true });
  crashPoint('archive:plain-between');
  await fsp.rm(join(dir, manifestNameFor(name)), { force: true });
  await fsyncDir(dir);
}

/** Deletes an archived snapshot: its manifest (then it no longer exists), then its index. */
export async function deleteArchived(dir: string, name: string): Promise<void> {
  await refuseUnsafeArchiveFolders(dir);
  const paths = archivePaths(dir);
  await fsp.rm(join(paths.snapshots, manifestNameFor(name)), { force: true });
  crashPoint('archive:delete-between');
  await fsp.rm(join(paths.snapshots, indexNameFor(name)), { force: true });
  await fsyncDir(paths.snapshots);
}

// ---------------------------------------------------------------------------------------
// Rebuild

/**
 * The buffers a rebuild works with (read windows, inflated blobs, write buffers, the index),
 * handed from one rebuild to the next where a caller rebuilds one snapshot after another
 * (`verify --all`). Each rebuild making its own left ~15 MB of dead buffers a snapshot;
 * freed, they left the process's heap in pieces too small for what came next, and its RSS
 * grew ~16 MB above what it held.
 */
export class RebuildBuffers {
  // One rebuild at a time: a rebuild takes them and gives them back when it ends.
  readonly index: IndexBuffer = { buf: Buffer.alloc(0) };
  /** Each page's row in the packs' table. */
  readonly rows: RowsBuffer = { rows: new Int32Array(0) };
  /** Each page's next use of its blob (PageSource.plan). */
  readonly nextUse: RowsBuffer = { rows: new Int32Array(0) };
  /** Read windows (REBUILD_WINDOW_BYTES), inflated blobs' slots, write buffers: free ones. */
  readonly windows: Buffer[] = [];
  readonly slots: Buffer[] = [];
  readonly writes: Buffer[] = [];

  /**
   * Lets go of the free read windows, blob slots and write buffers (~5 MiB), for a caller
   * whose next work needs memory of its own: `verify --all` checks each rebuilt snapshot with
   * sql.js, whose buffers otherwise came on top of these, kept for the next rebuild. That
   * rebuild makes them again (a few allocations). The page-sized arrays stay.
   */
  dropFree(): void {
    this.windows.length = 0;
    this.slots.length = 0;
    this.writes.length = 0;
  }
}

/**
 * Reads blobs from packs through a window per pack (pages of one snapshot sit mostly in
 * order), with the next window of each pack read ahead on the thread pool while the current
 * one is inflated: a rebuild otherwise waits for the disk at every window.
 *
 * A recent snapshot takes its pages from dozens of packs (one per archiving run that changed
 * some), a few pages from each, interleaved. So packs stay open (up to MAX_OPEN_PACKS
 * descriptors) while only the last WINDOWS of them keep a window; and a pack read where its
 * last window did not end gets only what it needs (SPARSE_READ_BYTES), not a whole window.
 * Opening, closing and re-reading a whole window for every few pages was most of such a
 * rebuild (the newest of 45 archived 500 MB snapshots: 12,189 opens and 256 KiB reads, 8.7 s,
 * against 3.0 s for the oldest, whose pages are in 17 packs).
 */
class PackReader {
  /** Open descriptors, least recently used first. */
  private readonly handles = new Map<string, FileHandle>();
  /** Packs holding a window, least recently used first. */
  private readonly open = new Map<string, OpenPack>();
  /** Where each pack's last window ended (kept when its window goes): a read there is sequential. */
  private readonly lastEnd = new Map<string, number>();
  /** Packs opened (RebuildResult.reads). */
  opened = 0;

  constructor(
    private readonly paths: ArchivePaths,
    /** Free read windows, shared with the next rebuild (RebuildBuffers.windows). */
    private readonly pool: Buffer[],
  ) {}

  private async handle(pack: string): Promise<FileHandle> {
    const fh = this.handles.get(pack);
    if (fh) {
      this.handles.delete(pack); // most recently used last
      this.handles.set(pack, fh);
      return fh;
    }
    if (this.handles.size >= MAX_OPEN_PACKS) {
      const oldest = this.handles.keys().next().value as string;
      const o = this.open.get(oldest);
      if (o) {
        this.open.delete(oldest);
        await this.dropWindow(oldest, o);
      }
      await this.handles.get(oldest)?.close().catch(() => undefined);
      this.handles.delete(oldest);
    }
    let opened: FileHandle | undefined;
    for (let attempt = 1; !opened; attempt++) {
      try {
        opened = (await openRegular(join(this.paths.packs, pack))).fh;
      } catch (e) {
        if (errnoCode(e) === 'ENOENT') throw new PackGone(pack);
        // Out of descriptors (a low limit, or a busy host process): close those without a window, once.
        if ((errnoCode(e) === 'EMFILE' || errnoCode(e) === 'ENFILE') && attempt === 1 && (await this.closeIdle())) continue;
        throw ioError('opening', join(this.paths.packs, pack), e);
      }
    }
    this.handles.set(pack, opened);
    this.opened++;
    return opened;
  }

  /** Closes the descriptors of packs without a window; whether there were any. */
  private async closeIdle(): Promise<boolean> {
    let closed = false;
    for (const [pack, fh] of [...this.handles]) {
      if (this.open.has(pack)) continue;
      this.handles.delete(pack);
      await fh.close().catch(() => undefined);
      closed = true;
    }
    return closed;
  }

  async read(pack: string, off: number, len: number): Promise<Buffer> {
    let p = this.open.get(pack);
    if (p) {
      this.open.delete(pack); // most recently used last
      this.open.set(pack, p);
    } else {
      const fh = await this.handle(pack);
      if (this.open.size >= WINDOWS) {
        const [oldest, o] = this.open.entries().next().value as [string, OpenPack];
        this.open.delete(oldest);
        await this.dropWindow(oldest, o);
      }
      p = { fh, start: 0, window: this.pool.pop() ?? Buffer.allocUnsafe(REBUILD_WINDOW_BYTES), filled: 0, spare: undefined, ahead: undefined };
      this.open.set(pack, p);
    }
    if (off >= p.start && off + len <= p.start + p.filled) return p.window.subarray(off - p.start, off - p.start + len);
    const ahead = p.ahead;
    p.ahead = undefined;
    const got = ahead ? await ahead.done : 0; // never read into the spare while its read is in flight
    if (ahead && got >= 0 && off >= ahead.start && off + len <= ahead.start + got) {
      [p.window, p.spare] = [p.spare as Buffer, p.window];
      p.start = ahead.start;
      p.filled = got;
    } else {
      if (len > p.window.length) p.window = Buffer.allocUnsafe(len);
      // Where the last window of this pack ended (or just before, as a blob cut by it): the
      // pack is being read in order, a whole window. Anywhere else: only what is needed.
      const end = p.filled ? p.start + p.filled : (this.lastEnd.get(pack) ?? -1);
      const sequential = off <= end && off >= end - BLOB_RAW_BYTES;
      const want = sequential ? p.window.length : Math.min(p.window.length, Math.max(len, SPARSE_READ_BYTES));
      const { bytesRead } = await p.fh.read(p.window, 0, want, off);
      p.start = off;
      p.filled = bytesRead;
      if (bytesRead < len) throw damaged(`Pack ${pack} is shorter than its trailer says.`);
    }
    if (p.filled === p.window.length) {
      // The next window, read while this one is used; a failed read-ahead is only a miss (read
      // again, and reported, above). It overlaps this one by the largest blob, so the blob
      // cut by this window's end lies whole in the next (a v2 blob never exceeds BLOB_RAW_BYTES).
      const at = p.start + p.filled - Math.min(BLOB_RAW_BYTES, p.filled >> 1);
      if (!p.spare || p.spare.length < p.window.length) p.spare = (p.window.length === REBUILD_WINDOW_BYTES ? this.pool.pop() : undefined) ?? Buffer.allocUnsafe(p.window.length);
      p.ahead = { start: at, done: p.fh.read(p.spare, 0, p.spare.length, at).then((r) => r.bytesRead, () => -1) };
    }
    return p.window.subarray(off - p.start, off - p.start + len);
  }

  private giveBack(window: Buffer | undefined): void {
    if (window?.length === REBUILD_WINDOW_BYTES) this.pool.push(window);
  }

  /** Gives a pack's window back (its descriptor stays open). */
  private async dropWindow(pack: string, p: OpenPack): Promise<void> {
    await p.ahead?.done; // never gives back the spare under a read in flight
    if (p.filled) this.lastEnd.set(pack, p.start + p.filled);
    this.giveBack(p.window);
    this.giveBack(p.spare);
  }

  async close(): Promise<void> {
    for (const [pack, p] of this.open) await this.dropWindow(pack, p);
    this.open.clear();
    for (const fh of this.handles.values()) await fh.close().catch(() => undefined);
    this.handles.clear();
  }
}

interface OpenPack {
  fh: FileHandle;
  start: number;
  window: Buffer;
  filled: number;
  /** The next window's buffer (from the second window on), being read into while `ahead` is set. */
  spare: Buffer | undefined;
  ahead: { start: number; done: Promise<number> } | undefined;
}

class PackGone extends Error {
  constructor(readonly pack: string) {
    super(`pack ${pack} vanished`);
  }
}

/**
 * Pages out of packs: each blob read and inflated once, kept in a small cache (by bytes), so
 * a snapshot whose pages come from many blobs in turn (the base's, then those of later
 * changes) inflates a blob as few times as it can while it walks the file.
 *
 * A rebuild knows its whole plan (every page's row), so the cache drops the blob needed
 * again furthest ahead, or never (Belady's rule; `plan` below), not the least recently used:
 * a recent snapshot takes a few pages from each of thousands of blobs, scattered through the
 * file, and LRU dropped a blob between its pages for blobs already used up (the newest of 45
 * archived 500 MB snapshots inflated 19,292 blobs for 9,930 distinct ones). Without a plan
 * (repack: every blob in pack order, each used once), least recently used.
 */
class PageSource {
  private readonly reader: PackReader;
  /** Inflated blobs by (pack, offset): held in our own buffers (`buf`), `len` bytes of each; `next`: the page that needs it next (-1: none; LRU order without a plan). */
  private readonly cache = new Map<number, { buf: Buffer; len: number; next: number }>();
  private cached = 0;
  /** Buffers of evicted blobs, reused for the next ones (and by the next PageSource given the same). */
  private readonly free: Buffer[];
  private readonly inflater = new BlobInflater();
  /** Per page of the rebuild: the next page (index) whose row is in the same blob, or -1. */
  private nextUse: Int32Array | undefined;
  /** Distinct blobs the plan uses, and blobs inflated (or copied) so far (RebuildResult.reads). */
  blobs = 0;
  inflated = 0;

  constructor(
    paths: ArchivePaths,
    private readonly store: PackStore,
    buffers = new RebuildBuffers(),
  ) {
    this.reader = new PackReader(paths, buffers.windows);
    this.free = buffers.slots;
  }

  /**
   * The rebuild's plan: page i is row rows[i]. Computes each page's next use of its blob, in
   * `into` (reused by the next rebuild). One backward pass; a Map over the blobs used.
   */
  plan(rows: Int32Array, into: RowsBuffer): void {
    const n = rows.length;
    const next = rowsFor(into, n);
    const seen = new Map<number, number>();
    for (let i = n - 1; i >= 0; i--) {
      const k = this.store.blobKey(rows[i]);
      next[i] = seen.get(k) ?? -1;
      seen.set(k, i);
    }
    this.nextUse = next;
    this.blobs = seen.size;
  }

  /**
   * Row `r`'s page (page `i` of the plan) when its blob is cached (most pages: 16 share a
   * blob), else undefined — without a promise per page, which a rebuild of 500 MB made
   * 125,000 of.
   */
  cachedPage(r: number, i: number): Buffer | undefined {
    const blob = this.cache.get(this.store.blobKey(r));
    if (!blob) return undefined;
    if (this.nextUse) blob.next = this.nextUse[i];
    return blob.buf.subarray(this.store.pageStart(r), this.store.pageEnd(r));
  }

  /** The entry to drop: needed never, or furthest ahead (with a plan); else the least recently used. */
  private victim(): number {
    const first = this.cache.keys().next().value as number;
    if (!this.nextUse) return first;
    let best = first;
    let far = -2;
    for (const [k, b] of this.cache) {
      if (b.next === -1) return k;
      if (b.next > far) {
        far = b.next;
        best = k;
      }
    }
    return best;
  }
  /**
   * A buffer for `len` bytes and one more (so that a blob inflating to more than its
   * trailer says shows as longer): an evicted blob's, or a new one. Blobs are inflated
   * straight into it (blobZlib.ts), so a rebuild makes no Buffer per blob.
   */
  private slot(len: number): Buffer {
    const i = this.free.findIndex((b) => b.length > len);
    if (i !== -1) return this.free.splice(i, 1)[0];
    return Buffer.allocUnsafe(Math.max(len, BLOB_RAW_BYTES) + 1);
  }

  /** The bytes of row `r`'s page (valid until the next call); `what` names it in errors ("page 7 of X"); `i`: its page in the plan. */
  async page(r: number, what: string, i = -1): Promise<Buffer> {
    const row = this.store.rowAt(r);
    const key = this.store.blobKey(r);
    let blob = this.cache.get(key);
    const next = this.nextUse && i >= 0 ? this.nextUse[i] : -1;
    if (blob) {
      this.cache.delete(key); // most recently used last
      this.cache.set(key, blob);
      blob.next = next;
    } else {
      const pack = this.store.packs[row.pack];
      const stored = await this.reader.read(pack, row.off, row.len);
      while (this.cache.size && this.cached + row.blobRaw > BLOB_CACHE_BYTES) {
        const k = this.victim();
        const old = this.cache.get(k) as { buf: Buffer; len: number };
        this.cache.delete(k);
        this.cached -= old.len;
        this.free.push(old.buf);
      }
      const buf = this.slot(row.blobRaw);
      if (this.store.deflated(r)) {
        const n = this.inflater.inflate(stored, buf.subarray(0, row.blobRaw + 1));
        if (n !== row.blobRaw) {
          this.free.push(buf);
          if (n < 0 || n > row.blobRaw) throw damaged(`Pack ${pack} is damaged: ${what} does not decompress.`);
          throw damaged(`Pack ${pack} is damaged: ${what} decompresses to ${n} bytes, not ${row.blobRaw}.`);
        }
      } else {
        stored.copy(buf, 0, 0, row.len); // a view of the read window: copied before the next read
      }
      blob = { buf, len: row.blobRaw, next };
      this.inflated++;
      this.cache.set(key, blob);
      this.cached += blob.len;
    }
    return blob.buf.subarray(this.store.pageStart(r), this.store.pageEnd(r));
  }

  get packsOpened(): number {
    return this.reader.opened;
  }

  async close(): Promise<void> {
    await this.reader.close();
    this.inflater.close();
    for (const b of this.cache.values()) this.free.push(b.buf);
    this.cache.clear();
  }
}

export interface RebuildResult {
  sha256: string;
  bytes: number;
  manifest: Manifest;
  packsUsed: string[];
  /** What the rebuild read: distinct blobs it needed, blobs it inflated (more when one was dropped and needed again), packs it opened. */
  reads: { blobs: number; inflated: number; packsOpened: number };
}

/**
 * Rebuilds the archived snapshot `name` of `dir` into the new file `out` (created, fsynced),
 * checking the whole file against the manifest's sha256 and byte count. Memory stays flat:
 * a page at a time into a write buffer, through small read windows and a few inflated blobs.
 * The pages' own hashes are checked only when the whole file does not match (or when
 * `checkPages`): the manifest's sha256 already proves every byte, and the per-page pass
 * then names the damaged pack(s) and pages. Throws ARCHIVE_DAMAGED naming the pack (or the
 * index) at fault.
 */
export async function rebuildArchived(
  dir: string,
  name: string,
  /** The new file to write; undefined: nothing is written, the rebuilt bytes are only hashed (is it what its manifest says?). */
  out: string | undefined,
  opts: { signal?: AbortSignal; onBytes?: (done: number, total: number) => void; store?: PackStore; checkPages?: boolean; buffers?: RebuildBuffers; mode?: number } = {},
): Promise<RebuildResult> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await rebuildOnce(dir, name, out, attempt === 1 ? opts.store : undefined, opts);
    } catch (e) {
      // A repack replaced a pack while we read (only without pins; a restore pins): once more with fresh trailers.
      if (!(e instanceof PackGone) || attempt >= 2) {
        if (e instanceof PackGone) throw damaged(`Pack ${e.pack}, which ${name} needs, is missing.`);
        throw e;
      }
    }
  }
}

async function rebuildOnce(
  dir: string,
  name: string,
  out: string | undefined,
  given: PackStore | undefined,
  opts: { signal?: AbortSignal; onBytes?: (done: number, total: number) => void; checkPages?: boolean; buffers?: RebuildBuffers; mode?: number },
): Promise<RebuildResult> {
  const buffers = opts.buffers ?? new RebuildBuffers();
  const paths = archivePaths(dir);
  const manifestPath = join(paths.snapshots, manifestNameFor(name));
  let manifest: Manifest;
  try {
    manifest = parseManifest(await readSmallRegularBytes(manifestPath), manifestPath);
  } catch (e) {
    if (errnoCode(e) === 'ENOENT') throw new BackupError('SNAPSHOT_NOT_FOUND', `${name} is not in the archive of ${dir}.`, { hint: 'Run `list` to see the snapshots.' });
    if (e instanceof BackupError) throw e;
    throw ioError('reading', manifestPath, e);
  }
  const indexPath = join(paths.snapshots, indexNameFor(name));
  const store = given ?? (await PackStore.load(paths, { readOnly: true }));
  // Every page's row first: a page in no pack fails before anything is written.
  const window = buffers.windows.pop() ?? Buffer.allocUnsafe(REBUILD_WINDOW_BYTES);
  const { header: h, rows, firstMissing } = await indexRows(indexPath, store, window, { into: buffers.rows }).finally(() => buffers.windows.push(window));
  if (h.snapshot !== name || h.sha256 !== manifest.sha256 || h.bytes !== manifest.bytes) {
    throw damaged(`The page index of ${name} does not match its manifest.`);
  }
  if (firstMissing >= 0) {
    throw damaged(`Page ${firstMissing + 1} of ${name} is in no pack${store.unreadable.size ? ` (unreadable packs: ${[...store.unreadable].map(([n, why]) => `${n}: ${why}`).join('; ')})` : ''}.`);
  }
  const usedPacks = new Uint8Array(store.packs.length);
  for (let i = 0; i < h.pieces; i++) usedPacks[store.packOf(rows[i])] = 1;
  const packsUsed = store.packs.filter((_, p) => usedPacks[p]);
  // The hashes themselves only to check each page (checkPages) or to name damaged ones.
  let hashes = opts.checkPages ? (await readIndex(indexPath, buffers.index)).hashes : undefined;
  const source = new PageSource(paths, store, buffers);
  source.plan(rows, buffers.nextUse);
  // As its folders let others reach it, and its group bits only for its own group (atomicFs.reachableMode): a rebuild lands outside the archive (materialize, a mirror).
  // `mode`: the caller's (a private temp file in the system's temp folder is 0600).
  const mode = out === undefined ? 0o600 : (opts.mode ?? ((await reachableMode(manifestPath, dirname(out)).catch(() => 0o600)) & 0o666));
  const fh =
    out === undefined
      ? undefined
      : await fsp.open(out, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL, mode).catch((e: unknown) => {
          throw ioError('creating', out, e);
        });
  const whole = createHash('sha256');
  const writeBytes = Math.max(h.piece, Math.floor(REBUILD_WRITE_BYTES / h.piece) * h.piece);
  const writeBuf = (): Buffer => {
    const i = buffers.writes.findIndex((b) => b.length === writeBytes);
    return i === -1 ? Buffer.allocUnsafe(writeBytes) : buffers.writes.splice(i, 1)[0];
  };
  let used0 = 0;
  let written = 0;
  let pending: Promise<void> | undefined;
  const bufs = [writeBuf(), writeBuf()];
  let turn = 0;
  const writeback = fh && new EarlyWriteback(fh);
  const flush = async () => {
    if (!used0) return;
    const b = bufs[turn].subarray(0, used0);
    whole.update(b);
    if (pending) await pending;
    const at = written;
    if (fh && writeback) {
      writeback.wrote(used0);
      pending = writeAll(fh, b, at).catch((e: unknown) => {
        throw ioError('writing', out as string, e);
      });
      pending.catch(() => undefined); // awaited at the next flush; no unhandled rejection meanwhile
    }
    written += used0;
    used0 = 0;
    turn ^= 1;
    opts.onBytes?.(written, h.bytes);
  };
  const badPages: number[] = [];
  try {
    for (let i = 0; i < h.pieces; i++) {
      const want = i === h.pieces - 1 ? h.bytes - i * h.piece : h.piece;
      const page = source.cachedPage(rows[i], i) ?? (await source.page(rows[i], `page ${i + 1} of ${name}`, i));
      if (page.length !== want) throw damaged(`Pack ${store.packs[store.packOf(rows[i])]} is damaged: page ${i + 1} of ${name} is ${page.length} bytes, not ${want}.`);
      if (hashes && !pageHashIs(page, hashes, i * 32)) badPages.push(i);
      if (used0 + page.length > bufs[turn].length) await flush();
      page.copy(bufs[turn], used0);
      used0 += page.length;
      if ((i & 255) === 0 && opts.signal?.aborted) throw new BackupError('CANCELLED', 'Cancelled.');
    }
    await flush();
    if (pending) await pending;
    try {
      await writeback?.settle();
      await fh?.sync();
    } catch (e) {
      throw ioError('saving', out as string, e);
    }
  } catch (e) {
    await pending?.catch(() => undefined);
    buffers.writes.push(...bufs);
    await writeback?.settle().catch(() => undefined);
    await fh?.close().catch(() => undefined);
    await source.close();
    if (out !== undefined) await fsp.rm(out, { force: true }).catch(() => undefined);
    throw e;
  }
  buffers.writes.push(...bufs); // every write is done
  await fh?.close();
  const sha256 = whole.digest('hex');
  if (sha256 !== manifest.sha256 || written !== manifest.bytes || badPages.length) {
    if (out !== undefined) await fsp.rm(out, { force: true }).catch(() => undefined);
    try {
      // Which pages, in which packs: each page again, against its hash.
      if (!opts.checkPages) {
        hashes = (await readIndex(indexPath, buffers.index)).hashes;
        if (hashes.length !== h.pieces * 32) throw damaged(`The page index ${indexPath} changed while ${name} was rebuilt.`);
        for (let i = 0; i < h.pieces; i++) {
          const page = await source.page(rows[i], `page ${i + 1} of ${name}`, i);
          if (!pageHashIs(page, hashes, i * 32)) badPages.push(i);
        }
      }
    } finally {
      await source.close();
    }
    if (badPages.length) {
      const byPack = new Map<string, number[]>();
      for (const i of badPages) {
        const p = store.packs[store.packOf(rows[i])];
        byPack.set(p, [...(byPack.get(p) ?? []), i + 1]);
      }
      const list = (n: number[]) => `${n.length === 1 ? 'page' : 'pages'} ${n.slice(0, 5).join(', ')}${n.length > 5 ? ` and ${n.length - 5} more` : ''}`;
      throw damaged(`${[...byPack].map(([p, n]) => `Pack ${p} is damaged: ${list(n)} of ${name} do${n.length === 1 ? 'es' : ''} not match ${n.length === 1 ? 'its hash' : 'their hashes'}`).join('; ')}.`);
    }
    throw damaged(`${name} rebuilt to sha256 ${sha256} (${written} bytes), not its manifest's ${manifest.sha256} (${manifest.bytes} bytes), though every page matches its index: the index is wrong.`);
  }
  await source.close();
  return { sha256, bytes: written, manifest, packsUsed, reads: { blobs: source.blobs, inflated: source.inflated, packsOpened: source.packsOpened } };
}

// ---------------------------------------------------------------------------------------
// Garbage collection

export interface GcResult {
  deletedPacks: string[];
  /** Bases no kept index names (collected like packs; their bytes count in freedBytes). */
  deletedBases: string[];
  repacked: string[];
  freedBytes: number;
  cleaned: string[];
  warnings: string[];
}

/**
 * Collects what no kept archived snapshot needs: temps of dead runs, indexes without their
 * manifest, packs none of whose pages any index names, and (without pins) repacks packs
 * that are mostly dead. The caller holds the folder lock.
 */
export async function collectGarbage(dir: string, opts: { pinned: boolean; repack?: boolean; store?: PackStore }): Promise<GcResult> {
  opts.store?.needWholeHashes(); // a pack keeps its place only for the pages an index names
  const paths = archivePaths(dir);
  const res: GcResult = { deletedPacks: [], deletedBases: [], repacked: [], freedBytes: 0, cleaned: [], warnings: [] };
  try {
    await fsp.access(paths.root);
  } catch {
    return res;
  }
  const unsafe = await archiveFoldersProblem(dir);
  if (unsafe) {
    res.warnings.push(`nothing in the archive was collected: ${unsafe}`);
    return res;
  }
  res.cleaned.push(...(await cleanStaleTemps(paths.root)), ...(await cleanStaleTemps(paths.packs)), ...(await cleanStaleTemps(paths.snapshots)), ...(await cleanStaleTemps(paths.bases)));
  // Indexes whose manifest is gone: a crash while archiving or deleting.
  const names = await fsp.readdir(paths.snapshots).catch(() => [] as string[]);
  const have = new Set(names);
  for (const n of names) {
    if (!n.endsWith('.idx')) continue;
    const m = `${n.slice(0, -4)}.manifest.json`;
    if (!have.has(m)) {
      await fsp.rm(join(paths.snapshots, n), { force: true });
      res.cleaned.push(n);
    }
  }
  const archived = await listArchived(dir);
  const store = opts.store ?? (await PackStore.load(paths));
  // Reference counts, rebuilt from every index: a mark on the row each named page is read
  // from. One unreadable index and nothing is deleted.
  const live = new Uint8Array(store.count);
  // Each index read a window at a time (every check of readIndex made), each page's row
  // found as its hash goes by, with the previous snapshot's rows as the first guess: 4 bytes
  // a page held for the previous index, not its 32-byte hashes (two whole indexes in
  // turn were 8.5 MB at 500 MB, at the peak of an hourly backup that archives).
  const window = Buffer.allocUnsafe(REBUILD_WINDOW_BYTES);
  // Two arrays in turn, this index's rows and the previous one's: an array per index was
  // garbage that piled up with the number of archived snapshots (hourly backups at 500 MB:
  // peak RSS +0.5 MB an archived snapshot).
  const turns: RowsBuffer[] = [{ rows: new Int32Array(0) }, { rows: new Int32Array(0) }];
  let turn = 0;
  let prev: Int32Array | undefined;
  /** The bases the kept indexes name (their reference counts, like the packs', from the indexes every time). */
  const liveBases = new Set<string>();
  for (const a of archived.sort((x, y) => (x.name < y.name ? -1 : 1))) {
    try {
      const { header, rows, firstMissing } = await indexRows(a.indexPath, store, window, { prev, into: turns[turn] });
      if (header.base) liveBases.add(header.base);
      // A page a kept snapshot needs is in no pack: a pack lost, unreadable, or whose trailer
      // lies about a hash. Its pages may be in a pack that looks unused: nothing is deleted.
      if (firstMissing >= 0) throw damaged(`Page ${firstMissing + 1} of ${a.name} is in no pack${store.unreadable.size ? ` (unreadable packs: ${[...store.unreadable.keys()].join(', ')})` : ''}; run \`verify --all\``);
      turn ^= 1;
      for (let i = 0; i < rows.length; i++) if (rows[i] >= 0) live[rows[i]] = 1;
      prev = rows;
    } catch (e) {
      res.warnings.push(`no pack was collected: ${errorMessage(e)}`);
      return res;
    }
  }
  // Plain files that are also archived (a crash before the plain copy went) are complete
  // through their plain copy; their pages count as live anyway (read above).
  if (store.unreadable.size) {
    res.warnings.push(`unreadable packs left as they are: ${[...store.unreadable].map(([n, why]) => `${n} (${why})`).join(', ')}`);
  }
  const toRepack: number[] = [];
  for (let p = 0; p < store.packs.length; p++) {
    let liveRows = 0;
    // A page stored twice (in two packs) is live in both: a pack is only deleted when none of its pages is named.
    for (let r = store.packStart[p]; r < store.packEnd[p]; r++) liveRows += live[store.canon(r)];
    const rows = store.packEnd[p] - store.packStart[p];
    if (liveRows === 0) {
      await fsp.rm(join(paths.packs, store.packs[p]), { force: true });
      res.deletedPacks.push(store.packs[p]);
      res.freedBytes += store.packBytes[p];
      crashPoint('archive:gc-between');
    } else if (opts.repack !== false && !opts.pinned && liveRows * 2 < rows) {
      toRepack.push(p);
    }
  }
  if (res.deletedPacks.length) await fsyncDir(paths.packs);
  // Bases no kept index names: a run that died between its base and its index, or every
  // snapshot on it deleted. Every index was read above (one unreadable and nothing is deleted).
  for (const n of await fsp.readdir(paths.bases).catch(() => [] as string[])) {
    if (!/^[0-9a-f]{64}\.base$/.test(n) || liveBases.has(n.slice(0, 64))) continue;
    const size = (await fsp.lstat(join(paths.bases, n)).catch(() => undefined))?.size ?? 0;
    await fsp.rm(join(paths.bases, n), { force: true });
    res.deletedBases.push(n);
    res.freedBytes += size;
    crashPoint('archive:gc-base-between');
  }
  if (res.deletedBases.length) await fsyncDir(paths.bases);
  // Packs are repacked only with packs of their own mode: the pages of a private (0600)
  // database's snapshots never move into a pack that others can read (the first pack's
  // mode was the new one's), nor a shared database's into one they cannot.
  const byMode = new Map<number, number[]>();
  for (const p of toRepack) {
    const m = await modeOf(join(paths.packs, store.packs[p]));
    const g = byMode.get(m);
    if (g) g.push(p);
    else byMode.set(m, [p]);
  }
  for (const [mode, group] of byMode) await repack(paths, store, group, live, res, mode);
  return res;
}

/** Copies the live pages of `packs` into new packs (new blobs), then deletes the old ones. */
async function repack(paths: ArchivePaths, store: PackStore, packs: number[], live: Uint8Array, res: GcResult, mode: number): Promise<void> {
  const source = new PageSource(paths, store);
  const old = new Set(packs);
  const packer = new BlobPacker(paths, mode, store);
  const copied = new Uint8Array(store.count);
  try {
    for (const p of packs) {
      for (let r = store.packStart[p]; r < store.packEnd[p]; r++) {
        const c = store.canon(r);
        // Dead, done, or read from a pack not being repacked (kept there): nothing to copy.
        if (!live[c] || copied[c] || !old.has(store.packOf(c))) continue;
        copied[c] = 1;
        const page = await source.page(c, `a page of pack ${store.packs[store.packOf(c)]}`);
        // Only pages that match their hash move: the old pack is deleted once the new one holds them.
        if (!pageHashIs(page, store.hashOf(c), 0)) throw damaged(`Pack ${store.packs[store.packOf(c)]} is damaged: a page does not match its hash; it was not repacked.`);
        await packer.add(store.hashOf(c), 0, page);
      }
    }
    await packer.finish();
  } catch (e) {
    await packer.discard();
    await source.close();
    res.warnings.push(`repacking stopped: ${errorMessage(e)}`);
    return;
  }
  await source.close();
  await fsyncDir(paths.packs);
  await saveProven(paths, store, mode); // the new packs: every page moved was checked against its hash
  crashPoint('archive:repack-written');
  for (const p of packs) {
    await fsp.rm(join(paths.packs, store.packs[p]), { force: true });
    res.repacked.push(store.packs[p]);
    res.freedBytes += store.packBytes[p];
  }
  await fsyncDir(paths.packs);
}

// ---------------------------------------------------------------------------------------
// Verification of packs

/** Free read buffers of packProblem (one each for the checks running at once). */
const packReadBuffers: Buffer[] = [];

/** Why pack `name` is not whole (its bytes do not hash to its name, or it cannot be read); undefined when it is. */
async function packProblem(paths: ArchivePaths, name: string, signal?: AbortSignal): Promise<string | undefined> {
  return await fileProblem(join(paths.packs, name), name.replace(/\.pack$/, ''), signal);
}

/** Why the file at `path` (a pack or a base) does not hash to `sha256` (hex), or cannot be read; undefined when it does. */
async function fileProblem(path: string, sha256: string, signal?: AbortSignal): Promise<string | undefined> {
  if (signal?.aborted) throw new BackupError('CANCELLED', 'Cancelled.');
  const h = createHash('sha256');
  // One read buffer for every pack checked (a new 1 MiB one a pack, freed only when V8 next
  // collected, took the archive step from 80 to 105 MB of peak RSS).
  const buf = packReadBuffers.pop() ?? Buffer.allocUnsafe(READ_BYTES);
  try {
    const { fh } = await openRegular(path);
    try {
      for (let pos = 0; ; ) {
        const { bytesRead } = await fh.read(buf, 0, buf.length, pos);
        if (!bytesRead) break;
        h.update(buf.subarray(0, bytesRead));
        pos += bytesRead;
      }
    } finally {
      await fh.close();
    }
  } catch (e) {
    return errorMessage(e);
  } finally {
    packReadBuffers.push(buf);
  }
  return h.digest('hex') === sha256 ? undefined : 'its bytes do not match its name (sha256)';
}

/** Checks every pack's bytes against its name; returns the damaged ones with the archived snapshots that use them. */
export async function verifyPacks(dir: string, signal?: AbortSignal): Promise<{ pack: string; problem: string; snapshots: string[] }[]> {
  const paths = archivePaths(dir);
  const names = (await fsp.readdir(paths.packs).catch(() => [] as string[])).filter((n) => n.endsWith('.pack'));
  const bad: { pack: string; problem: string; snapshots: string[] }[] = [];
  for (const n of names) {
    const problem = await packProblem(paths, n, signal);
    if (problem) bad.push({ pack: n, problem, snapshots: [] });
  }
  if (!bad.length) return bad;
  // Which snapshots use them: any page whose only copy is in a bad pack.
  const store = await PackStore.load(paths, { readOnly: true });
  const badPack = new Uint8Array(store.packs.length);
  const badSet = new Set(bad.map((b) => b.pack));
  store.packs.forEach((n, p) => (badPack[p] = badSet.has(n) ? 1 : 0));
  // A bad pack whose trailer cannot be read lists no page: the snapshots with a page in no
  // readable pack are the ones it may hold pages of (they were said to use no damaged pack).
  const unlisted = bad.filter((b) => !store.packs.includes(b.pack));
  const into: IndexBuffer = { buf: Buffer.alloc(0) };
  for (const a of await listArchived(dir)) {
    try {
      const idx = await readIndex(a.indexPath, into);
      const hit = new Set<string>();
      let missing = false;
      for (let i = 0; i < idx.header.pieces; i++) {
        const r = store.find(idx.hashes, i * 32);
        if (r < 0) missing = true;
        else if (badPack[store.packOf(r)]) hit.add(store.packs[store.packOf(r)]);
      }
      for (const b of bad) if (hit.has(b.pack) || (missing && unlisted.includes(b))) b.snapshots.push(a.name);
    } catch {
      // the index itself is reported by the snapshot's own verification
    }
  }
  return bad;
}
