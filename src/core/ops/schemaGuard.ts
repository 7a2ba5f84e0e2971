/**
 * Restore refuses a snapshot whose schema is newer than the database it would replace:
 * the older ai-memory that owns that database would open it cleanly and then silently drop
 * the newer columns on its next write (ai-memory 1.0 refuses the same case, #2444/#2445,
 * against its own binary's schema; we compare with the database being replaced, the best
 * stand-in for "the ai-memory that uses it" we can read). `--force` overrides it.
 *
 * The live database's version is read through the same consistent reader as backup (main
 * file + committed WAL, no lock, never writing the live files) into a private temp file
 * (0600, removed at once), which sql.js then reads lazily — memory stays flat.
 */
import { consistentTempCopy, type TempFileSink } from '../store/fileSink';
import { inspectDatabase } from '../sqlite/image';
import { checkFile, MAX_CHECKABLE_BYTES } from '../sqlite/sqlEngine';

/** Above this, the comparison is skipped (it would copy a large live database once more). */
const MAX_COMPARED_BYTES = 256 << 20;

/** `max(version) FROM schema_version` of the live database; undefined when it cannot be read here. */
export async function liveSchemaVersion(dbPath: string, signal?: AbortSignal): Promise<number | undefined> {
  let sink: TempFileSink | undefined;
  try {
    const db = await inspectDatabase(dbPath);
    if (db.kind !== 'sqlite' || db.size > Math.min(MAX_CHECKABLE_BYTES, MAX_COMPARED_BYTES)) return undefined;
    sink = await consistentTempCopy(dbPath, 'schema', { signal, maxAttempts: 5 });
    return (await checkFile(sink.path, 'facts')).schemaVersion;
  } catch {
    return undefined; // not readable as plain SQLite here: nothing to compare with
  } finally {
    await sink?.discard().catch(() => undefined);
  }
}
