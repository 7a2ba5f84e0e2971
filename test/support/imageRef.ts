/**
 * Reference images for the engine's differential tests: what native SQLite itself makes of
 * a database + WAL, as one self-contained file, to compare byte-for-byte with our image.
 */
import * as fs from 'fs';
import * as path from 'path';
import { readConsistentImage, type ImageInfo, type ImageSink, type ReadImageOptions } from '../../src/core/sqlite/image';
import { openNative } from './sqlite';
import { makeTempDir, removeTempDir } from './tmp';

/** An ImageSink that keeps the image in memory. */
export class MemorySink implements ImageSink {
  image = new Uint8Array(0);
  /** true: the reader fills the whole image at once (buffered mode); false: it streams chunks. */
  constructor(readonly holdsImage = true) {}
  begins = 0;
  resets = 0;
  async begin(info: ImageInfo): Promise<void> {
    this.begins++;
    this.image = new Uint8Array(info.bytes);
  }
  buffer(position: number, length: number): Uint8Array {
    return this.image.subarray(position, position + length);
  }
  async chunk(): Promise<void> {}
  patches = 0;
  async resize(info: ImageInfo): Promise<void> {
    const image = new Uint8Array(info.bytes);
    image.set(this.image.subarray(0, Math.min(info.bytes, this.image.length)));
    this.image = image;
  }
  async patch(data: Uint8Array, position: number): Promise<void> {
    this.patches++;
    this.image.set(data, position);
  }
  async reset(): Promise<void> {
    this.resets++;
  }
}

/** Which read path to use: the whole image at once, or streamed in chunks (large databases). */
export type ReadMode = 'buffered' | 'streaming';

export async function captureImage(dbPath: string, opts: ReadImageOptions & { mode?: ReadMode } = {}): Promise<{ image: Buffer; info: ImageInfo; sink: MemorySink }> {
  const streaming = opts.mode === 'streaming';
  const sink = new MemorySink(!streaming);
  const info = await readConsistentImage(dbPath, sink, { chunkBytes: 64 * 1024, ...(streaming ? { bufferBytes: 0 } : {}), ...opts });
  return { image: Buffer.from(sink.image), info, sink };
}

/**
 * Copies `dbPath` and whatever `-wal` sits beside it (no `-shm`, so SQLite must recover
 * the WAL from the file alone, exactly the rules our reader follows), lets native SQLite
 * checkpoint everything into the main file, and returns that file's bytes with header
 * bytes 18–19 set to 1 (rollback mode), as our snapshots have them.
 */
export function nativeCheckpointedImage(dbPath: string, walBytes?: Buffer): Buffer {
  const dir = makeTempDir('aimb-ref-');
  try {
    const copy = path.join(dir, 'ref.db');
    fs.copyFileSync(dbPath, copy);
    const wal = walBytes ?? (fs.existsSync(`${dbPath}-wal`) ? fs.readFileSync(`${dbPath}-wal`) : undefined);
    if (wal) fs.writeFileSync(`${copy}-wal`, wal);
    const db = openNative(copy);
    try {
      db.pragma('wal_checkpoint(TRUNCATE)');
    } finally {
      db.close();
    }
    const out = fs.readFileSync(copy);
    if (out[18] === 2) out[18] = 1;
    if (out[19] === 2) out[19] = 1;
    return out;
  } finally {
    removeTempDir(dir);
  }
}

/** Rows of a table via native SQLite, from a self-contained file (opened read-only). */
export function nativeRows<T = Record<string, unknown>>(file: string, sql: string): T[] {
  const db = openNative(file, { readonly: true, fileMustExist: true });
  try {
    return db.prepare<T>(sql).all();
  } finally {
    db.close();
  }
}
