/**
 * Restore refuses a snapshot whose schema is newer than the database it would replace:
 * the older ai-memory that owns that database would open it cleanly and then silently drop
 * the newer columns on its next write (ai-memory 1.0 refuses the same case, #2444/#2445,
 * against its own binary's schema; we compare with the database being replaced, the best
 * stand-in for "the ai-memory that uses it" we can read). `--force` overrides it.
 *
 * The live database's version is read through the same consistent reader as backup (main
 * file + committed WAL, no lock, never writing), in memory, with sql.js.
 */
import type { ImageInfo, ImageSink } from '../sqlite/image';
import { inspectDatabase, readConsistentImage } from '../sqlite/image';
import { checkImage, MAX_CHECKABLE_BYTES } from '../sqlite/sqlEngine';

class MemoryImageSink implements ImageSink {
  image: Uint8Array = new Uint8Array(0);
  readonly holdsImage = true;
  async begin(info: ImageInfo): Promise<void> {
    if (this.image.length !== info.bytes) this.image = new Uint8Array(info.bytes);
  }
  buffer(position: number, length: number): Uint8Array {
    return this.image.subarray(position, position + length);
  }
  async chunk(data: Uint8Array, position: number): Promise<void> {
    if (data.buffer !== this.image.buffer) this.image.set(data, position);
  }
  async reset(): Promise<void> {}
}

/** `max(version) FROM schema_version` of the live database; undefined when it cannot be read here. */
export async function liveSchemaVersion(dbPath: string, signal?: AbortSignal): Promise<number | undefined> {
  try {
    const db = await inspectDatabase(dbPath);
    if (db.kind !== 'sqlite' || db.size > MAX_CHECKABLE_BYTES) return undefined;
    const sink = new MemoryImageSink();
    await readConsistentImage(dbPath, sink, { signal, maxAttempts: 5 });
    return (await checkImage(sink.image, 'facts')).schemaVersion;
  } catch {
    return undefined; // not readable as plain SQLite here: nothing to compare with
  }
}
