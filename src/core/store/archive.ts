/**
 * The page-dedup archive: older kept snapshots stored as content-addressed, compressed
 * pages, so a folder's size grows with what changed, not with the database's size.
 *
 * Layout, inside the backup folder (one hidden subfolder; ai-memory's CLI never looks in it):
 *
 *   .ai-memory-archive/packs/<sha256 of the pack file>.pack
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
 * - A pack is a run of raw-deflate blobs (one per page, so any page is read alone) and a
 *   trailer listing (page sha256, offset, compressed and raw length) for each, ending with
 *   `AIMPACK1`. Its name is the sha256 of the whole file, so `verify --all` proves each
 *   pack intact without trusting anything inside it.
 * - An index is `AIMIDX01`, a JSON header (snapshot name, sha256, bytes, page size,
 *   pages), the page hashes in file order (32 bytes each), and the sha256 of all that.
 *   Where a page lives is not in the index: it comes from the packs' trailers. So packs can
 *   be rewritten (repacked) without touching any index.
 *
 * Crash safety: every file is temp → fsync → rename (packs, then the index, then the
 * manifest, each folder fsynced), and only then is the plain snapshot deleted. An archived
 * snapshot exists once its manifest is in `snapshots/` (the index is always there first);
 * it is deleted manifest first, then its index. Whatever the instant of a crash, each kept
 * snapshot is whole in one form or the other; leftovers (temps, an index without its
 * manifest, packs no index needs) are collected by the next run.
 *
 * Packs are dropped only when no kept snapshot's index names one of their pages; the
 * reference counts are rebuilt from every index each time, never stored. A pack whose live
 * pages are under half of its bytes is repacked (its live blobs copied, still compressed,
 * into a new pack, which is durable before the old one goes) — but never while a restore
 * holds a pin, since it may be reading that pack.
 *
 * Compression: zlib's raw deflate at level 1 (Node's own zlib; no native module).
 * Measured on ai-memory pages, level 1 compresses nearly as well as level 6 at several
 * times the speed, and brotli's fastest level is slower for the same size (bench/archive).
 */
import * as nodeCrypto from 'node:crypto';
import { createHash } from 'node:crypto';
import { constants as fsc, promises as fsp } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { deflateRawSync, inflateRawSync, constants as zc } from 'node:zlib';
import { BackupError, errnoCode, errorMessage, ioError } from '../common/errors';
import { readSmallRegular } from '../common/regularFile';
import { crashPoint } from '../common/testHooks';
import { cleanStaleTemps, fsyncDir, publishNoClobber, tempPath, writeAll } from './atomicFs';
import { parseManifest, type Manifest } from './manifest';
import { manifestNameFor } from './naming';

export const ARCHIVE_DIR = '.ai-memory-archive';
const PACK_MAGIC = Buffer.from('AIMPACK1', 'latin1');
const INDEX_MAGIC = Buffer.from('AIMIDX01', 'latin1');
const ENTRY_BYTES = 44; // sha256 (32) | offset u32 | compressed length u32 | raw length u32
const FOOTER_BYTES = 16; // entry count u32 | version u32 | magic (8)
const PACK_TARGET_BYTES = 16 << 20;
const READ_BYTES = 4 << 20;
const WINDOW_BYTES = 1 << 20;
const DEFLATE_OPTIONS = { level: 1, strategy: zc.Z_DEFAULT_STRATEGY };
const MAX_INDEX_HEADER = 64 << 10;

export interface ArchivePaths {
  root: string;
  packs: string;
  snapshots: string;
}

export function archivePaths(dir: string): ArchivePaths {
  const root = join(dir, ARCHIVE_DIR);
  return { root, packs: join(root, 'packs'), snapshots: join(root, 'snapshots') };
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
const oneShot = (nodeCrypto as unknown as { hash?: (alg: string, data: Uint8Array, enc: 'buffer') => Buffer }).hash;
export function pageHash(page: Uint8Array): Buffer {
  return oneShot ? oneShot('sha256', page, 'buffer') : createHash('sha256').update(page).digest();
}

function damaged(message: string, hint = 'Run `verify --all` to see which snapshots are affected; restore another snapshot.'): BackupError {
  return new BackupError('ARCHIVE_DAMAGED', message, { hint });
}

// ---------------------------------------------------------------------------------------
// Packs

/** Where every page of every pack is: hash (latin1 key) → slot; slots in flat arrays. */
export class PackStore {
  readonly packs: string[] = [];
  readonly packBytes: number[] = [];
  private readonly keys = new Map<string, number>();
  private readonly slotPack: number[] = [];
  private readonly slotOff: number[] = [];
  private readonly slotLen: number[] = [];
  private readonly slotRaw: number[] = [];
  /** Per pack: its entries' keys, in order (for reference counting and repacking). */
  readonly packKeys: string[][] = [];
  /** Packs whose trailer could not be read: name → why. */
  readonly unreadable = new Map<string, string>();

  static async load(paths: ArchivePaths): Promise<PackStore> {
    const store = new PackStore();
    let names: string[];
    try {
      names = (await fsp.readdir(paths.packs)).filter((n) => /^[0-9a-f]{64}\.pack$/.test(n)).sort();
    } catch (e) {
      if (errnoCode(e) === 'ENOENT') return store;
      throw ioError('reading', paths.packs, e);
    }
    for (const name of names) {
      try {
        await store.addPack(join(paths.packs, name), name);
      } catch (e) {
        store.unreadable.set(name, errorMessage(e));
      }
    }
    return store;
  }

  private async addPack(path: string, name: string): Promise<void> {
    const fh = await fsp.open(path, fsc.O_RDONLY);
    try {
      const st = await fh.stat();
      if (!st.isFile() || st.size < FOOTER_BYTES) throw new Error('too short for a pack');
      const foot = Buffer.alloc(FOOTER_BYTES);
      await readExactly(fh, foot, st.size - FOOTER_BYTES);
      if (!foot.subarray(8).equals(PACK_MAGIC) || foot.readUInt32LE(4) !== 1) throw new Error('no pack trailer');
      const count = foot.readUInt32LE(0);
      const tableBytes = count * ENTRY_BYTES;
      const dataEnd = st.size - FOOTER_BYTES - tableBytes;
      if (dataEnd < 0) throw new Error('trailer larger than the pack');
      const table = Buffer.alloc(tableBytes);
      await readExactly(fh, table, dataEnd);
      const p = this.packs.length;
      const keys: string[] = [];
      for (let i = 0; i < count; i++) {
        const e = i * ENTRY_BYTES;
        const off = table.readUInt32LE(e + 32);
        const len = table.readUInt32LE(e + 36);
        const raw = table.readUInt32LE(e + 40);
        if (off + len > dataEnd || raw === 0 || raw > 65536) throw new Error(`entry ${i} points outside the pack`);
        const key = table.toString('latin1', e, e + 32);
        keys.push(key);
        if (!this.keys.has(key)) {
          this.keys.set(key, this.slotPack.length);
          this.slotPack.push(p);
          this.slotOff.push(off);
          this.slotLen.push(len);
          this.slotRaw.push(raw);
        }
      }
      this.packs.push(name);
      this.packBytes.push(st.size);
      this.packKeys.push(keys);
    } finally {
      await fh.close();
    }
  }

  has(key: string): boolean {
    return this.keys.has(key);
  }

  /** Records pages of a pack this process just wrote. */
  addWritten(name: string, size: number, entries: { key: string; off: number; len: number; raw: number }[]): void {
    const p = this.packs.length;
    this.packs.push(name);
    this.packBytes.push(size);
    this.packKeys.push(entries.map((e) => e.key));
    for (const e of entries) {
      if (this.keys.has(e.key)) continue;
      this.keys.set(e.key, this.slotPack.length);
      this.slotPack.push(p);
      this.slotOff.push(e.off);
      this.slotLen.push(e.len);
      this.slotRaw.push(e.raw);
    }
  }

  locate(key: string): { pack: string; off: number; len: number; raw: number } | undefined {
    const s = this.keys.get(key);
    if (s === undefined) return undefined;
    return { pack: this.packs[this.slotPack[s]], off: this.slotOff[s], len: this.slotLen[s], raw: this.slotRaw[s] };
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
  private buf = Buffer.allocUnsafe(WINDOW_BYTES);
  private used = 0;
  private readonly hash = createHash('sha256');
  readonly entries: { key: string; off: number; len: number; raw: number }[] = [];

  constructor(
    private readonly paths: ArchivePaths,
    private readonly mode: number,
  ) {
    this.tmp = tempPath(paths.packs, 'pack');
  }

  get bytes(): number {
    return this.pos + this.used;
  }

  async add(key: string, blob: Uint8Array, raw: number): Promise<void> {
    if (!this.fh) this.fh = await fsp.open(this.tmp, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL, this.mode);
    this.entries.push({ key, off: this.bytes, len: blob.length, raw });
    await this.append(blob);
  }

  private async append(data: Uint8Array): Promise<void> {
    if (this.used + data.length > this.buf.length) await this.flush();
    if (data.length > this.buf.length) {
      this.hash.update(data);
      await writeAll(this.fh as FileHandle, data, this.pos);
      this.pos += data.length;
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
    this.used = 0;
  }

  /** Finishes the pack under its final name; returns it (undefined when empty). */
  async finish(): Promise<{ name: string; size: number } | undefined> {
    if (!this.fh) return undefined;
    const table = Buffer.alloc(this.entries.length * ENTRY_BYTES + FOOTER_BYTES);
    this.entries.forEach((e, i) => {
      const o = i * ENTRY_BYTES;
      table.write(e.key, o, 'latin1');
      table.writeUInt32LE(e.off, o + 32);
      table.writeUInt32LE(e.len, o + 36);
      table.writeUInt32LE(e.raw, o + 40);
    });
    const f = this.entries.length * ENTRY_BYTES;
    table.writeUInt32LE(this.entries.length, f);
    table.writeUInt32LE(1, f + 4);
    PACK_MAGIC.copy(table, f + 8);
    await this.append(table);
    await this.flush();
    const size = this.pos;
    try {
      await this.fh.sync();
    } finally {
      await this.fh.close();
      this.fh = undefined;
    }
    const name = `${this.hash.digest('hex')}.pack`;
    crashPoint('archive:pack-temp');
    // Same name = same bytes: an existing pack of that name is this very pack.
    if (!(await publishNoClobber(this.tmp, join(this.paths.packs, name)))) await fsp.rm(this.tmp, { force: true });
    return { name, size };
  }

  async discard(): Promise<void> {
    await this.fh?.close().catch(() => undefined);
    this.fh = undefined;
    await fsp.rm(this.tmp, { force: true }).catch(() => undefined);
  }
}

// ---------------------------------------------------------------------------------------
// Indexes

export interface IndexHeader {
  v: 1;
  snapshot: string;
  sha256: string;
  bytes: number;
  piece: number;
  pieces: number;
}

export interface PageIndex {
  header: IndexHeader;
  /** 32 bytes per piece, in file order. */
  hashes: Buffer;
}

function encodeIndex(h: IndexHeader, hashes: Buffer): Buffer {
  const json = Buffer.from(JSON.stringify(h), 'utf8');
  const head = Buffer.alloc(12);
  INDEX_MAGIC.copy(head, 0);
  head.writeUInt32LE(json.length, 8);
  const body = Buffer.concat([head, json, hashes]);
  return Buffer.concat([body, createHash('sha256').update(body).digest()]);
}

/** Reads and checks an index (magic, its own sha256, shape). Throws ARCHIVE_DAMAGED. */
export async function readIndex(path: string): Promise<PageIndex> {
  let data: Buffer;
  try {
    const st = await fsp.lstat(path);
    if (!st.isFile()) throw damaged(`${path} is not a regular file.`);
    if (st.size > 256 << 20) throw damaged(`${path} is too large for a page index.`);
    data = await fsp.readFile(path);
  } catch (e) {
    if (e instanceof BackupError) throw e;
    if (errnoCode(e) === 'ENOENT') throw damaged(`The page index ${path} is missing.`);
    throw ioError('reading', path, e);
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
  if (header.v !== 1 || hashes.length !== header.pieces * 32 || header.pieces !== Math.ceil(header.bytes / header.piece)) throw bad('shape');
  return { header, hashes };
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

/** Archived snapshots (a manifest in snapshots/ with its index beside it), by name. */
export async function listArchived(dir: string): Promise<ArchivedSnapshot[]> {
  const paths = archivePaths(dir);
  let names: string[];
  try {
    names = await fsp.readdir(paths.snapshots);
  } catch {
    return [];
  }
  const have = new Set(names);
  const out: ArchivedSnapshot[] = [];
  for (const n of names) {
    if (!n.startsWith('ai-memory-') || !n.endsWith('.manifest.json')) continue;
    const name = `${n.slice(0, -'.manifest.json'.length)}.db`;
    const idx = indexNameFor(name);
    if (!have.has(idx)) continue;
    const a: ArchivedSnapshot = { name, manifestPath: join(paths.snapshots, n), indexPath: join(paths.snapshots, idx) };
    try {
      // Only a regular file, with a capped read (regularFile.ts): a FIFO or a huge file named like a manifest never hangs a listing.
      a.manifest = parseManifest(await readSmallRegular(a.manifestPath), a.manifestPath);
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

async function writeDurable(dir: string, finalPath: string, data: Uint8Array, mode: number, purpose: string): Promise<void> {
  const tmp = tempPath(dir, purpose);
  let fh: FileHandle | undefined;
  try {
    fh = await fsp.open(tmp, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL, mode);
    await writeAll(fh, data, 0);
    await fh.sync();
    await fh.close();
    fh = undefined;
    await fsp.rename(tmp, finalPath);
  } catch (e) {
    await fh?.close().catch(() => undefined);
    await fsp.rm(tmp, { force: true }).catch(() => undefined);
    throw ioError('writing', finalPath, e);
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
  const paths = archivePaths(dir);
  const plain = join(dir, name);
  const plainManifest = join(dir, manifestNameFor(name));
  await fsp.mkdir(paths.packs, { recursive: true });
  await fsp.mkdir(paths.snapshots, { recursive: true });
  const mode = await modeOf(plain);
  const fh = await fsp.open(plain, fsc.O_RDONLY | (fsc.O_NOFOLLOW ?? 0)).catch((e: unknown) => {
    throw ioError('opening', plain, e);
  });
  let writer: PackWriter | undefined;
  const written: { name: string; size: number }[] = [];
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
    // zlib's default window and memLevel: a page-sized window with memLevel 4 (tried before)
    // sets up less state per call but compresses 3× slower and 13% larger (its small hash
    // table makes long match chains): measured on the 50 MB fixture's pages, 4 KiB each.
    const hashes = Buffer.alloc(pieces * 32);
    const whole = createHash('sha256');
    const pending = new Set<string>();
    const chunk = Math.max(piece, Math.floor(READ_BYTES / piece) * piece);
    const bufs = [Buffer.allocUnsafe(chunk), Buffer.allocUnsafe(chunk)];
    const readAt = async (pos: number, b: Buffer) => {
      const len = Math.min(chunk, size - pos);
      await readExactly(fh, b.subarray(0, len), pos);
      return len;
    };
    /** Closes the pack being written (when there is one) and counts it in the store. */
    const finishPack = async (): Promise<void> => {
      const w = writer;
      writer = undefined;
      const done = await w?.finish();
      if (w && done) {
        written.push(done);
        store.addWritten(done.name, done.size, w.entries);
      }
    };
    let turn = 0;
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
        const digest = pageHash(page);
        digest.copy(hashes, i * 32);
        const key = digest.toString('latin1');
        if (store.has(key) || pending.has(key)) continue;
        pending.add(key);
        newPieces++;
        if (!writer) writer = new PackWriter(paths, mode);
        await writer.add(key, deflateRawSync(page, { ...DEFLATE_OPTIONS, chunkSize: page.length + 64 }), page.length);
        if (writer.bytes >= PACK_TARGET_BYTES) await finishPack();
      }
    }
    const sha256 = whole.digest('hex');
    if (sha256 !== manifest.sha256) {
      throw new BackupError('SHA_MISMATCH', `${name} no longer matches its manifest (sha256 ${sha256}, manifest ${manifest.sha256}); it was not archived.`, {
        hint: 'The plain snapshot is damaged; it stays as it is. Run `verify` on it.',
      });
    }
    await finishPack();
    if (written.length) await fsyncDir(paths.packs);
    crashPoint('archive:after-packs');
    const index = encodeIndex({ v: 1, snapshot: name, sha256, bytes: size, piece, pieces }, hashes);
    await writeDurable(paths.snapshots, join(paths.snapshots, indexNameFor(name)), index, mode, 'index');
    crashPoint('archive:after-index');
    // Byte for byte (a signed manifest's bytes are what its signature covers); the caller checked it moments ago under the lock.
    const manifestBytes = await fsp.readFile(plainManifest);
    await writeDurable(paths.snapshots, join(paths.snapshots, manifestNameFor(name)), manifestBytes, mode, 'manifest');
    await fsyncDir(paths.snapshots);
    crashPoint('archive:after-manifest');
  } catch (e) {
    await writer?.discard();
    throw e;
  } finally {
    await fh.close();
  }
  await dropPlain(dir, name);
  return { name, pieces: pieceCount, newPieces, newPackBytes: written.reduce((a, w) => a + w.size, 0) };
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
  const paths = archivePaths(dir);
  await fsp.rm(join(paths.snapshots, manifestNameFor(name)), { force: true });
  crashPoint('archive:delete-between');
  await fsp.rm(join(paths.snapshots, indexNameFor(name)), { force: true });
  await fsyncDir(paths.snapshots);
}

// ---------------------------------------------------------------------------------------
// Rebuild

/** Reads blobs from packs through a 1 MiB window per pack (pages of one snapshot sit mostly in order). */
class PackReader {
  private readonly open = new Map<string, { fh: FileHandle; start: number; window: Buffer; filled: number }>();

  constructor(private readonly paths: ArchivePaths) {}

  async read(pack: string, off: number, len: number): Promise<Buffer> {
    let p = this.open.get(pack);
    if (!p) {
      if (this.open.size >= 8) {
        const [oldest, o] = this.open.entries().next().value as [string, { fh: FileHandle }];
        this.open.delete(oldest);
        await o.fh.close();
      }
      let fh: FileHandle;
      try {
        fh = await fsp.open(join(this.paths.packs, pack), fsc.O_RDONLY);
      } catch (e) {
        if (errnoCode(e) === 'ENOENT') throw new PackGone(pack);
        throw ioError('opening', join(this.paths.packs, pack), e);
      }
      p = { fh, start: 0, window: Buffer.allocUnsafe(WINDOW_BYTES), filled: 0 };
      this.open.set(pack, p);
    }
    if (off >= p.start && off + len <= p.start + p.filled) return p.window.subarray(off - p.start, off - p.start + len);
    if (len > p.window.length) p.window = Buffer.allocUnsafe(len);
    const { bytesRead } = await p.fh.read(p.window, 0, p.window.length, off);
    p.start = off;
    p.filled = bytesRead;
    if (bytesRead < len) throw damaged(`Pack ${pack} is shorter than its trailer says.`);
    return p.window.subarray(0, len);
  }

  async close(): Promise<void> {
    for (const p of this.open.values()) await p.fh.close().catch(() => undefined);
    this.open.clear();
  }
}

class PackGone extends Error {
  constructor(readonly pack: string) {
    super(`pack ${pack} vanished`);
  }
}

export interface RebuildResult {
  sha256: string;
  bytes: number;
  manifest: Manifest;
  packsUsed: string[];
}

/**
 * Rebuilds the archived snapshot `name` of `dir` into the new file `out` (created, fsynced),
 * checking every page against its hash and the whole file against the manifest's sha256 and
 * byte count. Memory stays flat: one page at a time, through small read windows.
 * Throws ARCHIVE_DAMAGED naming the pack (or the index) at fault.
 */
export async function rebuildArchived(dir: string, name: string, out: string, opts: { signal?: AbortSignal; onBytes?: (done: number, total: number) => void; store?: PackStore } = {}): Promise<RebuildResult> {
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

async function rebuildOnce(dir: string, name: string, out: string, given: PackStore | undefined, opts: { signal?: AbortSignal; onBytes?: (done: number, total: number) => void }): Promise<RebuildResult> {
  const paths = archivePaths(dir);
  const manifestPath = join(paths.snapshots, manifestNameFor(name));
  let manifest: Manifest;
  try {
    manifest = parseManifest(await readSmallRegular(manifestPath), manifestPath);
  } catch (e) {
    if (errnoCode(e) === 'ENOENT') throw new BackupError('SNAPSHOT_NOT_FOUND', `${name} is not in the archive of ${dir}.`, { hint: 'Run `list` to see the snapshots.' });
    if (e instanceof BackupError) throw e;
    throw ioError('reading', manifestPath, e);
  }
  const index = await readIndex(join(paths.snapshots, indexNameFor(name)));
  const h = index.header;
  if (h.snapshot !== name || h.sha256 !== manifest.sha256 || h.bytes !== manifest.bytes) {
    throw damaged(`The page index of ${name} does not match its manifest.`);
  }
  const store = given ?? (await PackStore.load(paths));
  const reader = new PackReader(paths);
  const used = new Set<string>();
  const mode = await modeOf(manifestPath);
  const fh = await fsp.open(out, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL, mode).catch((e: unknown) => {
    throw ioError('creating', out, e);
  });
  const whole = createHash('sha256');
  const outBuf = Buffer.allocUnsafe(Math.max(h.piece, Math.floor(READ_BYTES / h.piece) * h.piece));
  let used0 = 0;
  let written = 0;
  let pending: Promise<void> | undefined;
  const spare = Buffer.allocUnsafe(outBuf.length);
  const bufs = [outBuf, spare];
  let turn = 0;
  const flush = async () => {
    if (!used0) return;
    const b = bufs[turn].subarray(0, used0);
    whole.update(b);
    if (pending) await pending;
    const at = written;
    pending = writeAll(fh, b, at);
    written += used0;
    used0 = 0;
    turn ^= 1;
    opts.onBytes?.(written, h.bytes);
  };
  try {
    for (let i = 0; i < h.pieces; i++) {
      const want = i === h.pieces - 1 ? h.bytes - i * h.piece : h.piece;
      const key = index.hashes.toString('latin1', i * 32, i * 32 + 32);
      const loc = store.locate(key);
      if (!loc) {
        throw damaged(`Page ${i + 1} of ${name} is in no pack${store.unreadable.size ? ` (unreadable packs: ${[...store.unreadable.keys()].join(', ')})` : ''}.`);
      }
      used.add(loc.pack);
      const blob = await reader.read(loc.pack, loc.off, loc.len);
      let page: Buffer;
      try {
        // An output chunk the size of the page (+ slack so zlib sees the end in one call):
        // the default 16 KiB chunk per page was most of a restore's garbage.
        page = inflateRawSync(blob, { chunkSize: loc.raw + 64 });
      } catch {
        throw damaged(`Pack ${loc.pack} is damaged: page ${i + 1} of ${name} does not decompress.`);
      }
      if (page.length !== want || !pageHash(page).equals(index.hashes.subarray(i * 32, i * 32 + 32))) {
        throw damaged(`Pack ${loc.pack} is damaged: page ${i + 1} of ${name} does not match its hash.`);
      }
      if (used0 + page.length > bufs[turn].length) await flush();
      page.copy(bufs[turn], used0);
      used0 += page.length;
      if (opts.signal?.aborted) throw new BackupError('CANCELLED', 'Cancelled.');
    }
    await flush();
    if (pending) await pending;
    await fh.sync();
  } catch (e) {
    await fh.close().catch(() => undefined);
    await reader.close();
    await fsp.rm(out, { force: true }).catch(() => undefined);
    throw e;
  }
  await fh.close();
  await reader.close();
  const sha256 = whole.digest('hex');
  if (sha256 !== manifest.sha256 || written !== manifest.bytes) {
    await fsp.rm(out, { force: true }).catch(() => undefined);
    throw damaged(`${name} rebuilt to sha256 ${sha256} (${written} bytes), not its manifest's ${manifest.sha256} (${manifest.bytes} bytes).`);
  }
  return { sha256, bytes: written, manifest, packsUsed: [...used] };
}

// ---------------------------------------------------------------------------------------
// Garbage collection

export interface GcResult {
  deletedPacks: string[];
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
  const paths = archivePaths(dir);
  const res: GcResult = { deletedPacks: [], repacked: [], freedBytes: 0, cleaned: [], warnings: [] };
  try {
    await fsp.access(paths.root);
  } catch {
    return res;
  }
  res.cleaned.push(...(await cleanStaleTemps(paths.packs)), ...(await cleanStaleTemps(paths.snapshots)));
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
  // Reference counts, rebuilt from every index. One unreadable index and nothing is deleted.
  const live = new Set<string>();
  let prev: PageIndex | undefined;
  for (const a of archived.sort((x, y) => (x.name < y.name ? -1 : 1))) {
    try {
      const idx = await readIndex(a.indexPath);
      for (let i = 0; i < idx.header.pieces; i++) {
        // Most pages sit where they sat in the previous snapshot: already counted, no key to make.
        if (prev && i < prev.header.pieces && idx.hashes.compare(prev.hashes, i * 32, i * 32 + 32, i * 32, i * 32 + 32) === 0) continue;
        live.add(idx.hashes.toString('latin1', i * 32, i * 32 + 32));
      }
      prev = idx;
    } catch (e) {
      res.warnings.push(`no pack was collected: ${errorMessage(e)}`);
      return res;
    }
  }
  // Plain files that are also archived (a crash before the plain copy went) are complete
  // through their plain copy; their pages count as live anyway (read above).
  const store = opts.store ?? (await PackStore.load(paths));
  if (store.unreadable.size) {
    res.warnings.push(`unreadable packs left as they are: ${[...store.unreadable].map(([n, why]) => `${n} (${why})`).join(', ')}`);
  }
  const toRepack: number[] = [];
  for (let p = 0; p < store.packs.length; p++) {
    const keys = store.packKeys[p];
    const liveKeys = keys.filter((k) => live.has(k)).length;
    if (liveKeys === 0) {
      await fsp.rm(join(paths.packs, store.packs[p]), { force: true });
      res.deletedPacks.push(store.packs[p]);
      res.freedBytes += store.packBytes[p];
      crashPoint('archive:gc-between');
    } else if (opts.repack !== false && !opts.pinned && liveKeys * 2 < keys.length) {
      toRepack.push(p);
    }
  }
  if (res.deletedPacks.length) await fsyncDir(paths.packs);
  if (toRepack.length) await repack(paths, store, toRepack, live, res);
  return res;
}

/** Copies the live blobs of `packs` (still compressed) into new packs, then deletes the old ones. */
async function repack(paths: ArchivePaths, store: PackStore, packs: number[], live: Set<string>, res: GcResult): Promise<void> {
  const reader = new PackReader(paths);
  const old = new Set(packs.map((p) => store.packs[p]));
  let writer: PackWriter | undefined;
  const copied = new Set<string>();
  try {
    for (const p of packs) {
      const name = store.packs[p];
      const mode = await modeOf(join(paths.packs, name));
      for (const key of store.packKeys[p]) {
        if (!live.has(key) || copied.has(key)) continue;
        const loc = store.locate(key);
        // Kept elsewhere (a pack not being repacked): nothing to copy.
        if (!loc || !old.has(loc.pack)) continue;
        copied.add(key);
        const blob = Buffer.from(await reader.read(loc.pack, loc.off, loc.len));
        if (!writer) writer = new PackWriter(paths, mode);
        await writer.add(key, blob, loc.raw);
        if (writer.bytes >= PACK_TARGET_BYTES) {
          await writer.finish();
          writer = undefined;
        }
      }
    }
    if (writer) await writer.finish();
    writer = undefined;
  } catch (e) {
    await writer?.discard();
    await reader.close();
    res.warnings.push(`repacking stopped: ${errorMessage(e)}`);
    return;
  }
  await reader.close();
  await fsyncDir(paths.packs);
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

/** Checks every pack's bytes against its name; returns the damaged ones with the archived snapshots that use them. */
export async function verifyPacks(dir: string, signal?: AbortSignal): Promise<{ pack: string; problem: string; snapshots: string[] }[]> {
  const paths = archivePaths(dir);
  const names = (await fsp.readdir(paths.packs).catch(() => [] as string[])).filter((n) => n.endsWith('.pack'));
  const bad: { pack: string; problem: string; snapshots: string[] }[] = [];
  for (const n of names) {
    if (signal?.aborted) throw new BackupError('CANCELLED', 'Cancelled.');
    const h = createHash('sha256');
    try {
      const fh = await fsp.open(join(paths.packs, n), fsc.O_RDONLY);
      try {
        const buf = Buffer.allocUnsafe(READ_BYTES);
        for (let pos = 0; ; ) {
          const { bytesRead } = await fh.read(buf, 0, buf.length, pos);
          if (!bytesRead) break;
          h.update(buf.subarray(0, bytesRead));
          pos += bytesRead;
        }
      } finally {
        await fh.close();
      }
      if (`${h.digest('hex')}.pack` !== n) bad.push({ pack: n, problem: 'its bytes do not match its name (sha256)', snapshots: [] });
    } catch (e) {
      bad.push({ pack: n, problem: errorMessage(e), snapshots: [] });
    }
  }
  if (!bad.length) return bad;
  // Which snapshots use them: any page whose only copy is in a bad pack.
  const store = await PackStore.load(paths);
  const badSet = new Set(bad.map((b) => b.pack));
  for (const a of await listArchived(dir)) {
    try {
      const idx = await readIndex(a.indexPath);
      const hit = new Set<string>();
      for (let i = 0; i < idx.header.pieces; i++) {
        const loc = store.locate(idx.hashes.toString('latin1', i * 32, i * 32 + 32));
        if (loc && badSet.has(loc.pack)) hit.add(loc.pack);
      }
      for (const b of bad) if (hit.has(b.pack)) b.snapshots.push(a.name);
    } catch {
      // the index itself is reported by the snapshot's own verification
    }
  }
  return bad;
}
