/**
 * What the native writer process (nativeWriterProcess.ts) writes, shared with the
 * snapshot checker (snapshotChecks.ts) so both agree on the invariants, and the IPC
 * messages between the writer and its parent (nativeWriter.ts).
 *
 * Transaction k (k = 1, 2, ...; one SQLite transaction, BEGIN IMMEDIATE ... COMMIT) does:
 *  - INSERT writer_log(seq=k, n_rows, checksum, deleted_seq, touched_seq, linked_seq, blob_*)
 *  - INSERT n_rows memories titled writer-<k>-<i>; content starts with "writer seq=k row=i";
 *    `checksum` is the SHA-256 of those rows' content and embedding bytes (FTS insert trigger)
 *  - UPDATE the memories of tx k-1: access_count 0 → 1 (touched_seq = k-1; FTS update trigger)
 *  - DELETE the memories of tx k-deleteLag (deleted_seq; FTS delete trigger, link cascade)
 *  - INSERT a memory_links row writer-<k>-0 → writer-<k-1>-0 when both exist (linked_seq)
 *  - UPDATE the head memory "writer-head": content = "writer head seq=k"
 *  - INSERT audit_log(id='writer-<k>', event_type='writer_tx')
 *  - optionally (growBlobs) INSERT a memory_transcripts blob of varying size and DELETE the
 *    one of tx k-blobLag, so pages are allocated and freed (freelist churn, overflow chains)
 * Every effect of tx k is therefore recorded in, or derivable from, writer_log, and a
 * snapshot can be checked for "all effects of k present, or none" for every k.
 */
import * as crypto from 'crypto';
import { Prng, embedding, prose, subSeed } from './textGen';

export const WRITER_LOG_DDL = `CREATE TABLE IF NOT EXISTS writer_log (
    seq              INTEGER PRIMARY KEY,
    committed_at     TEXT NOT NULL,
    n_rows           INTEGER NOT NULL,
    checksum         TEXT NOT NULL,
    deleted_seq      INTEGER NOT NULL DEFAULT 0,
    touched_seq      INTEGER NOT NULL DEFAULT 0,
    linked_seq       INTEGER NOT NULL DEFAULT 0,
    blob_bytes       INTEGER NOT NULL DEFAULT 0,
    blob_checksum    TEXT,
    blob_deleted_seq INTEGER NOT NULL DEFAULT 0
)`;

export interface WriterLogRow {
  seq: number;
  committed_at: string;
  n_rows: number;
  checksum: string;
  deleted_seq: number;
  touched_seq: number;
  linked_seq: number;
  blob_bytes: number;
  blob_checksum: string | null;
  blob_deleted_seq: number;
}

export const WRITER_AGENT_ID = 'native-writer';
export const WRITER_HEAD_TITLE = 'writer-head';
export const WRITER_HEAD_NAMESPACE = 'writer';
export const WRITER_AUDIT_EVENT = 'writer_tx';
/** Lower/upper bounds of all per-transaction titles ('-' < '0'-'9' < '.'). */
export const WRITER_TITLE_MIN = 'writer-0';
export const WRITER_TITLE_MAX = 'writer-:';
export const WRITER_TITLE_RE = /^writer-(\d{10})-(\d+)$/;

function pad(seq: number): string {
  return String(seq).padStart(10, '0');
}

export function writerTitle(seq: number, row: number): string {
  return `writer-${pad(seq)}-${row}`;
}

/** [lo, hi) title range covering exactly the rows of tx `seq` (uses the (title, namespace) index). */
export function writerTitleRange(seq: number): [string, string] {
  return [`writer-${pad(seq)}-`, `writer-${pad(seq)}.`];
}

export function writerNamespace(seq: number): string {
  return `writer/p${seq % 4}`;
}

/** Rows inserted by tx `seq` (1..insertsPerTx, varying so transactions differ in size). */
export function writerRowCount(seq: number, insertsPerTx: number): number {
  return 1 + (seq % Math.max(1, insertsPerTx));
}

export function writerContent(seed: number, seq: number, row: number): string {
  const rng = new Prng(subSeed(seed, seq, row, 1));
  return `writer seq=${seq} row=${row}\n${prose(rng, rng.int(300, 1200))}`;
}

export function writerEmbedding(seed: number, seq: number, row: number, dim: number): Buffer | null {
  if (dim <= 0) {
    return null;
  }
  return embedding(new Prng(subSeed(seed, seq, row, 2)), dim);
}

export function writerHeadContent(seq: number): string {
  return `writer head seq=${seq}`;
}

/** SHA-256 (hex, 32 chars) over the rows' content and embedding bytes, in row order. */
export function txChecksum(rows: ReadonlyArray<{ content: string; embedding: Buffer | null }>): string {
  const h = crypto.createHash('sha256');
  for (const r of rows) {
    h.update(r.content, 'utf8');
    h.update('\u0000');
    if (r.embedding) {
      h.update(r.embedding);
    }
    h.update('\u0001');
  }
  return h.digest('hex').slice(0, 32);
}

export function writerBlobId(seq: number): string {
  return `writer-blob-${pad(seq)}`;
}

/** Saw-tooth 1–63 KB, with a 256 KB blob every 50th transaction (long overflow chains). */
export function writerBlobSize(seq: number): number {
  return seq % 50 === 0 ? 256 * 1024 : 1024 + (seq % 32) * 2048;
}

export function writerBlob(seed: number, seq: number, size: number): Buffer {
  return new Prng(subSeed(seed, seq, 3)).bytes(size);
}

export function blobChecksum(blob: Buffer): string {
  return crypto.createHash('sha256').update(blob).digest('hex').slice(0, 32);
}

export type CheckpointModeName = 'PASSIVE' | 'FULL' | 'RESTART' | 'TRUNCATE';

/** Configuration the parent passes to the child (argv[2], JSON). All fields resolved. */
export interface WriterConfig {
  dbPath: string;
  seed: number;
  /** Transactions per second; 0 = as fast as possible. */
  txPerSecond: number;
  insertsPerTx: number;
  embeddingDim: number;
  deleteLag: number;
  /** Explicit checkpoint period (0 = none). */
  checkpointEveryMs: number;
  modes: CheckpointModeName[];
  /** PRAGMA wal_autocheckpoint (0 disables automatic checkpoints). */
  walAutocheckpoint: number;
  growBlobs: boolean;
  blobLag: number;
  /** Period of a full VACUUM (0 = never); VACUUM shrinks the page count. */
  vacuumEveryMs: number;
  /** Stop writing (but keep the database open) after this many commits in this run (0 = never). */
  stopWritingAfter: number;
  createIfMissing: boolean;
  /** The child exits by itself after this long, whatever happens (orphan guard). */
  maxLifetimeMs: number;
}

export interface CheckpointStats {
  runs: number;
  /** Runs that returned busy=1 (could not complete, e.g. a reader held an old snapshot). */
  busy: number;
}

export interface WriterChildSummary {
  pid: number;
  startSeq: number;
  lastSeq: number;
  commits: number;
  checkpoints: Record<CheckpointModeName, CheckpointStats>;
  vacuums: number;
  pageCountMin: number;
  pageCountMax: number;
  finalPageCount: number;
  freelistCount: number;
  walBytesAtStop: number;
  durationMs: number;
  /** true when the database was closed without error. */
  closed: boolean;
}

export type WriterMessage =
  | { type: 'ready'; pid: number; startSeq: number; sqliteVersion: string }
  | { type: 'committed'; seq: number; hrtimeNs: string }
  | { type: 'checkpoint'; mode: CheckpointModeName; busy: number; log: number; checkpointed: number; seq: number; ms: number }
  | { type: 'vacuum'; seq: number; pagesBefore: number; pagesAfter: number; ms: number }
  | { type: 'idle'; seq: number }
  | { type: 'summary'; summary: WriterChildSummary }
  | { type: 'error'; message: string; stack?: string };
