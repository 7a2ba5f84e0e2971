/**
 * Restore refuses a snapshot whose schema is newer than the database it would replace:
 * the older ai-memory that owns that database would open it cleanly and then silently drop
 * the newer columns on its next write (ai-memory 1.0 refuses the same case, #2444/#2445,
 * against its own binary's schema; we compare with the database being replaced, the best
 * stand-in for "the ai-memory that uses it" we can read). `--force` overrides it. The same
 * read tells whether the database being replaced is ai-memory's at all (restore.ts).
 *
 * The live database is read through the same consistent reader as backup (main file +
 * committed WAL, no lock, never writing the live files), but only the pages that hold its
 * schema and its `schema_version` table (btree.ts): a few pages whatever its size — a
 * 20 GB browser history is answered as fast as a small database, nothing is copied to
 * disk, and what is held in memory is capped ({@link MAX_PICKED_BYTES}). sql.js then answers
 * from those pages alone.
 *
 * What cannot be known: an encrypted file (SQLCipher: not plain SQLite) shows no schema
 * without its key, and a database damaged in its schema pages, or busy beyond the
 * reader's patience, shows none either. liveFacts says why (`unknown`); restore refuses an
 * encrypted one (restore.ts) and says so for the others.
 */
import { inspectDatabase, readConsistentImage, type ImageInfo, type ImageSink } from '../sqlite/image';
import { BtreeError, schemaPages } from '../sqlite/btree';
import { MAX_CHECKABLE_BYTES, openPickedPages } from '../sqlite/sqlEngine';
import { errorMessage } from '../common/errors';

/** At most this much of the live database is held in memory to read its schema (then: unknown). */
const MAX_PICKED_BYTES = 64 << 20;

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

/** Why the live database's schema could not be read; `encrypted` when it is not plain SQLite. */
export interface UnknownFacts {
  unknown: string;
  encrypted?: boolean;
}

/** Collects the pages handed over by a select-mode read (image.ts). */
class PickSink implements ImageSink {
  readonly pages = new Map<number, Uint8Array>();
  info: ImageInfo | undefined;
  async begin(info: ImageInfo): Promise<void> {
    this.info = info;
    this.pages.clear();
  }
  buffer(_position: number, length: number): Uint8Array {
    return new Uint8Array(length);
  }
  async chunk(data: Uint8Array, position: number): Promise<void> {
    const size = (this.info as ImageInfo).pageSize;
    this.pages.set(position / size + 1, data);
  }
  async reset(): Promise<void> {
    this.pages.clear();
  }
  async resize(): Promise<void> {
    throw new Error('a select-mode read is never caught up');
  }
  async patch(): Promise<void> {
    throw new Error('a select-mode read is never caught up');
  }
}

/** The live database's schema version and tables, or why they cannot be known. */
export async function liveFacts(dbPath: string, signal?: AbortSignal): Promise<LiveFacts | UnknownFacts> {
  try {
    const db = await inspectDatabase(dbPath);
    if (db.kind !== 'sqlite') return { unknown: 'it is not plain SQLite: encrypted (SQLCipher, or another program\'s encryption), its tables cannot be read without its key', encrypted: true };
    const sink = new PickSink();
    let versionUnread = false;
    const info = await readConsistentImage(dbPath, sink, {
      signal,
      maxAttempts: 5,
      select: async (read, image) => {
        const limits = { maxPage: image.pages, maxPages: Math.max(16, Math.floor(MAX_PICKED_BYTES / image.pageSize)) };
        const { unread } = await schemaPages(read, limits, ['schema_version']);
        versionUnread = unread.length > 0;
      },
    });
    if (info.bytes > MAX_CHECKABLE_BYTES) return { unknown: `it is ${info.bytes} bytes, more than sql.js can open` };
    const file = await openPickedPages(dbPath, { pageSize: info.pageSize, bytes: info.bytes, pages: sink.pages });
    try {
      const tables: string[] = [];
      let tableCount = 0;
      // Real tables only (a view could read forever); sqlite_% are SQLite's own.
      file.each("SELECT name FROM main.sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND sql NOT LIKE 'CREATE VIRTUAL%'", undefined, (r) => {
        if (tables.length < 6) tables.push(String(r[0]));
        tableCount++;
      });
      const has = (name: string) => file.value("SELECT count(*) FROM main.sqlite_master WHERE type = 'table' AND name = ? AND sql NOT LIKE 'CREATE VIRTUAL%'", [name]) === 1;
      // NOT INDEXED: the table's own b-tree, the pages read; never an index's (not read).
      const v = has('schema_version') && !versionUnread ? file.value('SELECT max(version) FROM main."schema_version" NOT INDEXED') : undefined;
      return { schemaVersion: typeof v === 'number' ? v : undefined, hasMemories: has('memories'), tables, tableCount };
    } finally {
      file.close();
    }
  } catch (e) {
    if (e instanceof BtreeError) return { unknown: `its schema pages are damaged (${e.message})` };
    return { unknown: errorMessage(e) };
  }
}
