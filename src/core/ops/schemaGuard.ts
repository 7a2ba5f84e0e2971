/**
 * Restore refuses a snapshot whose schema is newer than the database it would replace:
 * the older ai-memory that owns that database would open it cleanly and then silently drop
 * the newer columns on its next write (ai-memory 1.0 refuses the same case, #2444/#2445,
 * against its own binary's schema; we compare with the database being replaced, the best
 * stand-in for "the ai-memory that uses it" we can read). `--force` overrides it. The same
 * read tells whether the database being replaced is ai-memory's at all (restore.ts).
 *
 * The live database's version is read through the same consistent reader as backup (main
 * file + committed WAL, no lock, never writing the live files) into a private temp file
 * (0600, removed at once), which sql.js then reads lazily — memory stays flat.
 */
import { consistentTempCopy, type TempFileSink } from '../store/fileSink';
import { inspectDatabase } from '../sqlite/image';
import { MAX_CHECKABLE_BYTES, openSnapshotFile } from '../sqlite/sqlEngine';

/** Above this, the comparison is skipped (it would copy a large live database once more). */
const MAX_COMPARED_BYTES = 256 << 20;

/** What restore compares with the snapshot before it replaces the live database. */
export interface LiveFacts {
  /** `max(version) FROM schema_version`, when it has that table. */
  schemaVersion?: number;
  /** Whether it has ai-memory's `memories` table (a real table, not a view). */
  hasMemories: boolean;
  /** Its real tables (sqlite_master order; at most 6 named) and how many there are. */
  tables: string[];
  tableCount: number;
}

/** The live database's schema version and tables; undefined when it cannot be read here. */
export async function liveFacts(dbPath: string, signal?: AbortSignal): Promise<LiveFacts | undefined> {
  let sink: TempFileSink | undefined;
  try {
    const db = await inspectDatabase(dbPath);
    if (db.kind !== 'sqlite' || db.size > Math.min(MAX_CHECKABLE_BYTES, MAX_COMPARED_BYTES)) return undefined;
    sink = await consistentTempCopy(dbPath, 'schema', { signal, maxAttempts: 5 });
    const file = await openSnapshotFile(sink.path);
    try {
      const tables: string[] = [];
      let tableCount = 0;
      // Real tables only (a view could read forever); sqlite_% are SQLite's own.
      file.each("SELECT name FROM main.sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND sql NOT LIKE 'CREATE VIRTUAL%'", undefined, (r) => {
        if (tables.length < 6) tables.push(String(r[0]));
        tableCount++;
      });
      const has = (name: string) => file.value("SELECT count(*) FROM main.sqlite_master WHERE type = 'table' AND name = ? AND sql NOT LIKE 'CREATE VIRTUAL%'", [name]) === 1;
      const v = has('schema_version') ? file.value('SELECT max(version) FROM main."schema_version"') : undefined;
      return { schemaVersion: typeof v === 'number' ? v : undefined, hasMemories: has('memories'), tables, tableCount };
    } finally {
      file.close();
    }
  } catch {
    return undefined; // not readable as plain SQLite here: nothing to compare with
  } finally {
    await sink?.discard().catch(() => undefined);
  }
}

