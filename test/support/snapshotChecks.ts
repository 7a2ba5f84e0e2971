/**
 * Verify that a backup snapshot is a self-contained, consistent image of an ai-memory
 * database — and, when the native writer (nativeWriter.ts) was running while it was taken,
 * that it contains only whole transactions and nothing committed before the backup began
 * is missing.
 *
 * Checks, all reported (not just the first failure):
 *  - file: SQLite magic; header bytes 18-19 both 1 (rollback mode: a WAL-mode snapshot
 *    needs a -wal to be read correctly, https://www.sqlite.org/fileformat2.html#file_format_version_numbers);
 *    no -wal / -journal beside it; size == page_size × in-header page count;
 *  - native: PRAGMA integrity_check == ok; PRAGMA foreign_key_check empty; schema_version;
 *    FTS5 'integrity-check' with rank=1 (index consistent with the `memories` content),
 *    https://www.sqlite.org/fts5.html#the_integrity_check_command — it is an INSERT, so it
 *    runs on a throwaway copy, never on the snapshot;
 *  - writer invariants (writerProtocol.ts): writer_log seqs are exactly 1..K (gap-free),
 *    K >= minSeq (and <= maxSeq when given), and for every k <= K all effects of tx k are
 *    present, for every other k none: rows + checksums, touches, deletes, links, head row,
 *    audit rows, blobs.
 *
 * The snapshot itself is opened READ-ONLY and only when it is a rollback-mode file with no
 * sidecars, so SQLite creates nothing beside it. Otherwise the checks run on a temp copy of
 * the main file (for diagnostics) and the header problem is reported as a failure.
 */
import * as fs from 'fs';
import * as path from 'path';
import { AI_MEMORY_SCHEMA_VERSION } from './aiMemorySchema';
import { NativeDb, openNative } from './sqlite';
import { DbHeader, readDbHeader, sidecars } from './sqliteFiles';
import { makeTempDir, removeTempDir } from './tmp';
import {
  WRITER_AUDIT_EVENT, WRITER_HEAD_NAMESPACE, WRITER_HEAD_TITLE, WRITER_TITLE_MAX, WRITER_TITLE_MIN, WRITER_TITLE_RE,
  WriterLogRow, blobChecksum, txChecksum, writerBlobId, writerHeadContent, writerTitle,
} from './writerProtocol';

export interface SnapshotCheckOptions {
  /** Every seq <= minSeq must be in the snapshot (last seq reported before the backup began). */
  minSeq?: number;
  /** No seq > maxSeq may be in the snapshot (e.g. the writer's final seq after stop()). */
  maxSeq?: number;
  /** Require writer_log (default: true when minSeq > 0). */
  requireWriterLog?: boolean;
  /** Expected schema_version (default 28; null = do not check). */
  schemaVersion?: number | null;
  /** At most this many per-transaction failures are listed (default 20). */
  maxListed?: number;
}

export interface SnapshotReport {
  ok: boolean;
  failures: string[];
  header: DbHeader;
  integrity: string;
  fts: string;
  foreignKeyViolations: number;
  schemaVersion: number | null;
  memories: number;
  /** K: highest (= count of) writer seq in the snapshot; 0 when there is no writer_log. */
  maxSeq: number;
  writerLogPresent: boolean;
  /** Whether the checks ran on the snapshot itself (false: on a temp copy of its main file). */
  openedInPlace: boolean;
}

interface WriterMemoryRow {
  id: string;
  title: string;
  content: string;
  embedding: Buffer | null;
  access_count: number;
}

/** Run all checks; never throws for a bad snapshot (only for a missing file). */
export function checkSnapshotConsistency(snapshotPath: string, opts: SnapshotCheckOptions = {}): SnapshotReport {
  if (!fs.existsSync(snapshotPath)) {
    throw new Error(`checkSnapshotConsistency: ${snapshotPath} does not exist`);
  }
  const failures: string[] = [];
  const header = readDbHeader(snapshotPath);
  const report: SnapshotReport = {
    ok: false, failures, header, integrity: 'not run', fts: 'not run', foreignKeyViolations: 0,
    schemaVersion: null, memories: -1, maxSeq: 0, writerLogPresent: false, openedInPlace: false,
  };

  if (!header.magicOk) {
    failures.push('not a plain SQLite database: the header magic "SQLite format 3\\0" is missing (encrypted or garbage?)');
    return report;
  }
  if (header.writeVersion !== 1 || header.readVersion !== 1) {
    failures.push(`header bytes 18-19 are ${header.writeVersion},${header.readVersion}: expected 1,1 (rollback mode); ` +
      'a WAL-mode snapshot is not self-contained');
  }
  const side = sidecars(snapshotPath);
  for (const [name, p] of [['-wal', side.wal], ['-journal', side.journal]] as const) {
    if (fs.existsSync(p)) {
      failures.push(`a ${name} file exists beside the snapshot (${path.basename(p)}): the snapshot is not self-contained`);
    }
  }
  if (!header.pageCountValid) {
    failures.push('in-header database size is not valid (version-valid-for != change counter)');
  } else if (header.pageCount * header.pageSize !== header.fileBytes) {
    failures.push(`file is ${header.fileBytes} bytes but the header says ${header.pageCount} pages × ${header.pageSize} = ` +
      `${header.pageCount * header.pageSize} (truncated or padded)`);
  }

  const inPlace = failures.length === 0;
  report.openedInPlace = inPlace;
  const scratch = makeTempDir('aimb-snapcheck-');
  try {
    let target = snapshotPath;
    if (!inPlace) {
      // Diagnostics on a copy of the main file alone: never let SQLite see (or create)
      // sidecars next to the snapshot.
      target = path.join(scratch, 'main-only.db');
      fs.copyFileSync(snapshotPath, target);
    }
    let db: NativeDb;
    try {
      db = openNative(target, { readonly: true, fileMustExist: true });
    } catch (err) {
      failures.push(`native SQLite cannot open the snapshot: ${errorText(err)}`);
      return report;
    }
    try {
      runReadOnlyChecks(db, report, opts);
    } finally {
      db.close();
    }
    report.fts = ftsIntegrity(snapshotPath, scratch);
    if (report.fts !== 'ok') {
      failures.push(`FTS5 integrity-check (rank=1) failed: ${report.fts}`);
    }
  } finally {
    removeTempDir(scratch);
  }
  report.ok = failures.length === 0;
  return report;
}

/** Like {@link checkSnapshotConsistency} but throws an Error listing every failure. */
export function assertSnapshotConsistent(snapshotPath: string, opts: SnapshotCheckOptions = {}): SnapshotReport {
  const r = checkSnapshotConsistency(snapshotPath, opts);
  if (!r.ok) {
    throw new Error(`snapshot ${snapshotPath} is not consistent:\n  - ${r.failures.join('\n  - ')}`);
  }
  return r;
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** FTS5 integrity-check is an INSERT: run it on a throwaway copy of the main file only. */
function ftsIntegrity(snapshotPath: string, scratch: string): string {
  const copy = path.join(scratch, 'fts-check.db');
  fs.copyFileSync(snapshotPath, copy);
  let db: NativeDb | undefined;
  try {
    db = openNative(copy, { fileMustExist: true });
    db.exec("INSERT INTO memories_fts(memories_fts, rank) VALUES('integrity-check', 1)");
    return 'ok';
  } catch (err) {
    return errorText(err);
  } finally {
    db?.close();
  }
}

function tableExists(db: NativeDb, name: string): boolean {
  return db.prepare("SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = ?").get(name) !== undefined;
}

function runReadOnlyChecks(db: NativeDb, report: SnapshotReport, opts: SnapshotCheckOptions): void {
  const failures = report.failures;
  try {
    const rows = db.prepare('PRAGMA integrity_check').pluck().all() as unknown[];
    report.integrity = rows.map(String).join('\n');
  } catch (err) {
    report.integrity = errorText(err);
  }
  if (report.integrity !== 'ok') {
    failures.push(`PRAGMA integrity_check: ${report.integrity.split('\n').slice(0, 10).join(' | ')}`);
  }
  try {
    report.foreignKeyViolations = db.prepare('PRAGMA foreign_key_check').all().length;
    if (report.foreignKeyViolations > 0) {
      failures.push(`PRAGMA foreign_key_check reports ${report.foreignKeyViolations} violation(s)`);
    }
  } catch (err) {
    failures.push(`PRAGMA foreign_key_check failed: ${errorText(err)}`);
  }
  try {
    report.memories = Number(db.prepare('SELECT count(*) FROM memories').pluck().get());
  } catch (err) {
    failures.push(`cannot count memories: ${errorText(err)}`);
  }
  const expectVersion = opts.schemaVersion === undefined ? AI_MEMORY_SCHEMA_VERSION : opts.schemaVersion;
  try {
    const versions = db.prepare('SELECT version FROM schema_version').pluck().all() as unknown[];
    report.schemaVersion = versions.length ? Number(versions[0]) : null;
    if (expectVersion !== null && (versions.length !== 1 || report.schemaVersion !== expectVersion)) {
      failures.push(`schema_version holds ${JSON.stringify(versions)}; expected exactly [${expectVersion}]`);
    }
  } catch (err) {
    if (expectVersion !== null) {
      failures.push(`cannot read schema_version: ${errorText(err)}`);
    }
  }
  try {
    checkWriterInvariants(db, report, opts);
  } catch (err) {
    // A damaged file can make any query throw (SQLITE_CORRUPT): that is a finding, not a crash.
    failures.push(`writer invariants could not be checked: ${errorText(err)}`);
  }
}

function checkWriterInvariants(db: NativeDb, report: SnapshotReport, opts: SnapshotCheckOptions): void {
  const failures = report.failures;
  const minSeq = opts.minSeq ?? 0;
  const requireLog = opts.requireWriterLog ?? minSeq > 0;
  const maxListed = opts.maxListed ?? 20;
  report.writerLogPresent = tableExists(db, 'writer_log');
  if (!report.writerLogPresent) {
    if (requireLog) {
      failures.push(`no writer_log table: the snapshot has none of the writer's transactions (minSeq ${minSeq})`);
    }
    return;
  }
  let txFailures = 0;
  const txFail = (msg: string): void => {
    txFailures++;
    if (txFailures <= maxListed) {
      failures.push(msg);
    }
  };

  const log = db.prepare<WriterLogRow>('SELECT * FROM writer_log ORDER BY seq').all();
  const K = log.length ? log[log.length - 1].seq : 0;
  report.maxSeq = K;
  // Gap-free prefix: seq is the INTEGER PRIMARY KEY, so distinct; 1..K exactly iff count == K and min == 1.
  if (log.length !== K || (log.length > 0 && log[0].seq !== 1)) {
    const have = new Set(log.map((r) => r.seq));
    const missing: number[] = [];
    for (let s = 1; s <= K && missing.length < 10; s++) {
      if (!have.has(s)) {
        missing.push(s);
      }
    }
    failures.push(`writer_log seqs are not the gap-free prefix 1..${K} (${log.length} rows; first missing: ${missing.join(', ')})`);
  }
  if (K < minSeq) {
    failures.push(`snapshot ends at writer seq ${K} but seq ${minSeq} was committed before the backup began (stale snapshot)`);
  }
  if (opts.maxSeq !== undefined && K > opts.maxSeq) {
    failures.push(`snapshot contains writer seq ${K} > maxSeq ${opts.maxSeq}`);
  }

  const bySeq = new Map<number, WriterLogRow>(log.map((r) => [r.seq, r]));
  const deleted = new Set<number>();
  const touched = new Set<number>();
  const blobDeleted = new Set<number>();
  for (const r of log) {
    if (r.deleted_seq > 0) {
      deleted.add(r.deleted_seq);
    }
    if (r.touched_seq > 0) {
      touched.add(r.touched_seq);
    }
    if (r.blob_deleted_seq > 0) {
      blobDeleted.add(r.blob_deleted_seq);
    }
  }

  // All per-transaction memories, grouped by seq.
  const rows = db.prepare<WriterMemoryRow>(
    'SELECT id, title, content, embedding, access_count FROM memories WHERE title >= ? AND title < ? ORDER BY title',
  ).all(WRITER_TITLE_MIN, WRITER_TITLE_MAX);
  const groups = new Map<number, Map<number, WriterMemoryRow>>();
  for (const r of rows) {
    const m = WRITER_TITLE_RE.exec(r.title);
    if (!m) {
      continue;
    }
    const seq = Number(m[1]);
    const idx = Number(m[2]);
    let g = groups.get(seq);
    if (!g) {
      g = new Map();
      groups.set(seq, g);
    }
    g.set(idx, r);
  }
  for (const seq of groups.keys()) {
    if (!bySeq.has(seq)) {
      txFail(`memories of tx ${seq} are present but writer_log has no row ${seq} (effects of an uncommitted or torn transaction)`);
    }
  }

  const idOfRow0 = new Map<number, string>();
  for (const r of log) {
    const k = r.seq;
    const g = groups.get(k);
    if (deleted.has(k)) {
      if (g && g.size > 0) {
        txFail(`tx ${k}: its memories should have been deleted by a later transaction, but ${g.size} remain`);
      }
      continue;
    }
    if (!g || g.size !== r.n_rows) {
      txFail(`tx ${k}: ${g?.size ?? 0} of its ${r.n_rows} memories are present (partial transaction)`);
      continue;
    }
    const ordered: WriterMemoryRow[] = [];
    for (let i = 0; i < r.n_rows; i++) {
      const row = g.get(i);
      if (!row) {
        break;
      }
      ordered.push(row);
    }
    if (ordered.length !== r.n_rows) {
      txFail(`tx ${k}: memory titles are not ${writerTitle(k, 0)}..${writerTitle(k, r.n_rows - 1)}`);
      continue;
    }
    idOfRow0.set(k, ordered[0].id);
    const sum = txChecksum(ordered.map((x) => ({ content: x.content, embedding: x.embedding })));
    if (sum !== r.checksum) {
      txFail(`tx ${k}: content/embedding checksum ${sum} != logged ${r.checksum} (torn or corrupted rows)`);
    }
    const expectAccess = touched.has(k) ? 1 : 0;
    const bad = ordered.filter((x) => x.access_count !== expectAccess);
    if (bad.length > 0) {
      txFail(`tx ${k}: access_count is ${bad.map((x) => x.access_count).join(',')} but ${expectAccess} expected ` +
        `(the touch by tx ${k + 1} is ${expectAccess ? 'committed' : 'not committed'})`);
    }
  }

  // Links row0(k) -> row0(k-1) must exist exactly when tx k logged one and neither side is deleted.
  const linkRows = db.prepare<{ source_id: string; target_id: string }>(
    "SELECT source_id, target_id FROM memory_links WHERE observed_by = 'native-writer'",
  ).all();
  const links = new Set(linkRows.map((l) => `${l.source_id}>${l.target_id}`));
  let expectedLinks = 0;
  for (const r of log) {
    if (r.linked_seq > 0 && !deleted.has(r.seq) && !deleted.has(r.linked_seq)) {
      expectedLinks++;
      const a = idOfRow0.get(r.seq);
      const b = idOfRow0.get(r.linked_seq);
      if (a && b && !links.has(`${a}>${b}`)) {
        txFail(`tx ${r.seq}: its link to tx ${r.linked_seq} is missing`);
      }
    }
  }
  if (linkRows.length !== expectedLinks) {
    txFail(`writer links: ${linkRows.length} present, ${expectedLinks} expected`);
  }

  const head = db.prepare<{ content: string }>('SELECT content FROM memories WHERE title = ? AND namespace = ?')
    .get(WRITER_HEAD_TITLE, WRITER_HEAD_NAMESPACE);
  if (!head) {
    failures.push('the writer head memory is missing');
  } else if (head.content !== writerHeadContent(K)) {
    failures.push(`writer head says "${head.content}" but writer_log ends at ${K} (head update and log row torn apart)`);
  }

  const audits = Number(db.prepare('SELECT count(*) FROM audit_log WHERE event_type = ?').pluck().get(WRITER_AUDIT_EVENT));
  if (audits !== K) {
    failures.push(`${audits} writer audit_log rows but writer_log ends at ${K}`);
  }

  // Blobs (growBlobs): present with the logged size/checksum unless deleted later.
  const blobs = db.prepare<{ id: string; content_blob: Buffer }>(
    "SELECT id, content_blob FROM memory_transcripts WHERE namespace = 'writer'",
  ).all();
  const blobById = new Map(blobs.map((b) => [b.id, b.content_blob]));
  let expectedBlobs = 0;
  for (const r of log) {
    if (r.blob_bytes <= 0) {
      continue;
    }
    const b = blobById.get(writerBlobId(r.seq));
    if (blobDeleted.has(r.seq)) {
      if (b) {
        txFail(`tx ${r.seq}: its blob should have been deleted by a later transaction`);
      }
      continue;
    }
    expectedBlobs++;
    if (!b) {
      txFail(`tx ${r.seq}: its ${r.blob_bytes}-byte blob is missing`);
    } else if (b.length !== r.blob_bytes || blobChecksum(b) !== r.blob_checksum) {
      txFail(`tx ${r.seq}: blob is ${b.length} bytes / checksum ${blobChecksum(b)}, logged ${r.blob_bytes} / ${r.blob_checksum}`);
    }
  }
  if (blobs.length !== expectedBlobs) {
    txFail(`writer blobs: ${blobs.length} present, ${expectedBlobs} expected`);
  }
  if (txFailures > maxListed) {
    failures.push(`... and ${txFailures - maxListed} more transaction-level failures`);
  }
}
