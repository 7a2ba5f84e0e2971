/**
 * Child-process entry of the native SQLite writer (see nativeWriter.ts for the parent API
 * and writerProtocol.ts for what each transaction does).
 *
 * Run as `node out/test/support/nativeWriterProcess.js '<WriterConfig JSON>'` with an IPC
 * channel (child_process.fork). It opens the database like the ai-memory server (WAL,
 * busy_timeout=5000, synchronous=NORMAL, foreign_keys=ON), keeps it open for its whole life
 * (so -wal and -shm exist), commits transactions continuously and interleaves explicit
 * checkpoints (PASSIVE / FULL / RESTART / TRUNCATE, https://www.sqlite.org/pragma.html#pragma_wal_checkpoint)
 * with the automatic ones (wal_autocheckpoint).
 *
 * Lifecycle:
 *  - SIGTERM or an IPC 'stop' ⇒ finish the current transaction, report a summary, close
 *    the database cleanly (SQLite checkpoints and removes the -wal), exit 0.
 *  - IPC channel closed (the parent died) or parent PID changed ⇒ same as stop, without
 *    a summary. This is what keeps a SIGKILLed test runner from leaving an orphan writer.
 *  - maxLifetimeMs elapsed ⇒ same as stop (last-resort orphan guard).
 *  - Any SQLite error ⇒ report it, close, exit 1.
 */
import * as fs from 'fs';
import { applyAiMemorySchema, applyServerPragmas } from './aiMemorySchema';
import { NativeDb, Statement, openNative, pragmaInt } from './sqlite';
import { rfc3339 } from './textGen';
import {
  CheckpointModeName, CheckpointStats, WRITER_AGENT_ID, WRITER_AUDIT_EVENT, WRITER_HEAD_NAMESPACE, WRITER_HEAD_TITLE,
  WRITER_LOG_DDL, WriterChildSummary, WriterConfig, WriterMessage, blobChecksum, txChecksum, writerBlob, writerBlobId,
  writerBlobSize, writerContent, writerEmbedding, writerHeadContent, writerNamespace, writerRowCount, writerTitle,
  writerTitleRange,
} from './writerProtocol';

function send(msg: WriterMessage, cb?: () => void): void {
  if (process.send && process.connected) {
    process.send(msg, undefined, {}, () => cb?.());
  } else {
    cb?.();
  }
}

/**
 * Report a fatal error and exit 1 once the message is flushed. Does not throw: callers
 * return right after, so no further transaction is attempted and the IPC message is not
 * lost to an uncaught-exception exit.
 */
function fail(err: unknown): void {
  if (failed) {
    return;
  }
  failed = true;
  const e = err instanceof Error ? err : new Error(String(err));
  process.stderr.write(`[native-writer ${process.pid}] ${e.stack ?? e.message}\n`);
  try {
    if (db?.open) {
      db.close();
    }
  } catch {
    // Closing after an error is best effort; the error itself is what gets reported.
  }
  send({ type: 'error', message: e.message, stack: e.stack }, () => process.exit(1));
  // If the channel is stuck, exit anyway.
  setTimeout(() => process.exit(1), 2000).unref();
}

const config = JSON.parse(process.argv[2] ?? '{}') as WriterConfig;
let db: NativeDb | undefined;
let failed = false;

interface Prepared {
  insertLog: Statement;
  insertMemory: Statement;
  selectRowId: Statement<unknown>;
  touchRows: Statement;
  deleteRows: Statement;
  insertLink: Statement;
  updateHead: Statement;
  insertAudit: Statement;
  insertBlob: Statement;
  deleteBlob: Statement;
}

function main(): void {
  if (!config.dbPath) {
    fail(new Error('nativeWriterProcess: no dbPath in config'));
    return;
  }
  if (!config.createIfMissing && !fs.existsSync(config.dbPath)) {
    fail(new Error(`nativeWriterProcess: ${config.dbPath} does not exist`));
    return;
  }
  const started = Date.now();
  const parentPid = process.ppid;
  const conn = openNative(config.dbPath, { timeout: 5000 });
  db = conn;
  applyServerPragmas(conn);
  conn.pragma(`wal_autocheckpoint = ${config.walAutocheckpoint}`);
  applyAiMemorySchema(conn); // no-op on an existing ai-memory database
  // writer_log and the head row appear in one transaction, so any snapshot has both or neither.
  conn.transaction(() => {
    conn.exec(WRITER_LOG_DDL);
    const now0 = rfc3339(Date.now());
    conn.prepare(`INSERT INTO memories (id, tier, namespace, title, content, tags, priority, source, created_at, updated_at, metadata)
        VALUES (?, 'long', ?, ?, ?, '["writer"]', 5, 'api', ?, ?, ?)
        ON CONFLICT(title, namespace) DO NOTHING`)
      .run(`writer-head-${process.pid}-${started}`, WRITER_HEAD_NAMESPACE, WRITER_HEAD_TITLE, writerHeadContent(0), now0, now0,
        JSON.stringify({ agent_id: WRITER_AGENT_ID, scope: 'private' }));
  }).immediate();
  const startSeq = Number(conn.prepare('SELECT coalesce(max(seq), 0) FROM writer_log').pluck().get());

  const st: Prepared = {
    insertLog: conn.prepare(`INSERT INTO writer_log (seq, committed_at, n_rows, checksum, deleted_seq, touched_seq, linked_seq,
        blob_bytes, blob_checksum, blob_deleted_seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
    insertMemory: conn.prepare(`INSERT INTO memories (id, tier, namespace, title, content, tags, priority, confidence, source,
        access_count, created_at, updated_at, metadata, embedding, embedding_dim)
        VALUES (?, 'mid', ?, ?, ?, '["writer"]', 5, 1.0, 'api', 0, ?, ?, ?, ?, ?)`),
    selectRowId: conn.prepare('SELECT id FROM memories WHERE title = ? AND namespace = ?').pluck(),
    touchRows: conn.prepare(`UPDATE memories SET access_count = access_count + 1, last_accessed_at = ?
        WHERE title >= ? AND title < ?`),
    deleteRows: conn.prepare('DELETE FROM memories WHERE title >= ? AND title < ?'),
    insertLink: conn.prepare(`INSERT INTO memory_links (source_id, target_id, relation, created_at, observed_by, attest_level)
        VALUES (?, ?, 'related_to', ?, ?, 'unsigned')`),
    updateHead: conn.prepare('UPDATE memories SET content = ?, updated_at = ?, access_count = access_count + 1 WHERE title = ? AND namespace = ?'),
    insertAudit: conn.prepare(`INSERT INTO audit_log (id, agent_id, event_type, requested_family, granted, attestation_tier, timestamp)
        VALUES (?, ?, ?, NULL, 1, 'unsigned', ?)`),
    insertBlob: conn.prepare(`INSERT INTO memory_transcripts (id, namespace, created_at, compressed_size, original_size, zstd_level, content_blob)
        VALUES (?, 'writer', ?, ?, ?, 3, ?)`),
    deleteBlob: conn.prepare('DELETE FROM memory_transcripts WHERE id = ?'),
  };

  let seq = startSeq;
  let commits = 0;
  let stopping = false;
  let idleReported = false;
  let modeIndex = 0;
  let lastCheckpoint = Date.now();
  let lastVacuum = Date.now();
  let reportedSeq = startSeq;
  const checkpoints: Record<CheckpointModeName, CheckpointStats> = {
    PASSIVE: { runs: 0, busy: 0 }, FULL: { runs: 0, busy: 0 }, RESTART: { runs: 0, busy: 0 }, TRUNCATE: { runs: 0, busy: 0 },
  };
  let vacuums = 0;
  let pageCountMin = pragmaInt(conn, 'page_count');
  let pageCountMax = pageCountMin;

  const oneTransaction = conn.transaction((k: number) => {
    const ts = rfc3339(Date.now());
    const n = writerRowCount(k, config.insertsPerTx);
    const rows: Array<{ content: string; embedding: Buffer | null }> = [];
    for (let i = 0; i < n; i++) {
      rows.push({ content: writerContent(config.seed, k, i), embedding: writerEmbedding(config.seed, k, i, config.embeddingDim) });
    }
    const deleted = k - config.deleteLag >= 1 ? k - config.deleteLag : 0;
    const touched = k - 1 >= 1 && k - 1 !== deleted ? k - 1 : 0;
    let blobBytes = 0;
    let blobSum: string | null = null;
    const blobDeleted = config.growBlobs && k - config.blobLag >= 1 ? k - config.blobLag : 0;
    let blob: Buffer | null = null;
    if (config.growBlobs) {
      blob = writerBlob(config.seed, k, writerBlobSize(k));
      blobBytes = blob.length;
      blobSum = blobChecksum(blob);
    }
    // Link row 0 of k to row 0 of k-1 when k-1's rows still exist after this transaction.
    const prevId = k - 1 >= 1 && k - 1 !== deleted
      ? (st.selectRowId.get(writerTitle(k - 1, 0), writerNamespace(k - 1)) as string | undefined)
      : undefined;
    st.insertLog.run(k, ts, n, txChecksum(rows), deleted, touched, prevId ? k - 1 : 0, blobBytes, blobSum, blobDeleted);
    let firstId = '';
    for (let i = 0; i < n; i++) {
      const id = `w${String(k).padStart(10, '0')}-${i}-${config.seed}`;
      if (i === 0) {
        firstId = id;
      }
      st.insertMemory.run(id, writerNamespace(k), writerTitle(k, i), rows[i].content, ts, ts,
        JSON.stringify({ agent_id: WRITER_AGENT_ID, scope: 'private', writer_seq: k }),
        rows[i].embedding, rows[i].embedding ? config.embeddingDim : null);
    }
    if (touched) {
      const [lo, hi] = writerTitleRange(touched);
      st.touchRows.run(ts, lo, hi);
    }
    if (deleted) {
      const [lo, hi] = writerTitleRange(deleted);
      st.deleteRows.run(lo, hi);
    }
    if (prevId) {
      st.insertLink.run(firstId, prevId, ts, WRITER_AGENT_ID);
    }
    const head = st.updateHead.run(writerHeadContent(k), ts, WRITER_HEAD_TITLE, WRITER_HEAD_NAMESPACE);
    if (head.changes !== 1) {
      throw new Error(`writer head row missing (changes=${head.changes})`);
    }
    st.insertAudit.run(`writer-${k}`, WRITER_AGENT_ID, WRITER_AUDIT_EVENT, ts);
    if (blob) {
      st.insertBlob.run(writerBlobId(k), ts, blob.length, blob.length, blob);
    }
    if (blobDeleted) {
      st.deleteBlob.run(writerBlobId(blobDeleted));
    }
  });

  function notePages(): void {
    const pc = pragmaInt(conn, 'page_count');
    pageCountMin = Math.min(pageCountMin, pc);
    pageCountMax = Math.max(pageCountMax, pc);
  }

  function maybeCheckpoint(): void {
    if (config.checkpointEveryMs <= 0 || config.modes.length === 0) {
      return;
    }
    if (Date.now() - lastCheckpoint < config.checkpointEveryMs) {
      return;
    }
    const mode = config.modes[modeIndex % config.modes.length];
    modeIndex++;
    const t0 = Date.now();
    const r = conn.prepare(`PRAGMA wal_checkpoint(${mode})`).get() as { busy: number; log: number; checkpointed: number };
    lastCheckpoint = Date.now();
    checkpoints[mode].runs++;
    if (r.busy) {
      checkpoints[mode].busy++;
    }
    send({ type: 'checkpoint', mode, busy: r.busy, log: r.log, checkpointed: r.checkpointed, seq, ms: lastCheckpoint - t0 });
  }

  function maybeVacuum(): void {
    if (config.vacuumEveryMs <= 0 || Date.now() - lastVacuum < config.vacuumEveryMs) {
      return;
    }
    const before = pragmaInt(conn, 'page_count');
    const t0 = Date.now();
    conn.exec('VACUUM');
    lastVacuum = Date.now();
    vacuums++;
    const after = pragmaInt(conn, 'page_count');
    notePages();
    send({ type: 'vacuum', seq, pagesBefore: before, pagesAfter: after, ms: lastVacuum - t0 });
  }

  function writingAllowed(): boolean {
    return config.stopWritingAfter <= 0 || commits < config.stopWritingAfter;
  }

  function commitOne(): void {
    const k = seq + 1;
    oneTransaction.immediate(k);
    seq = k;
    commits++;
  }

  const interval = config.txPerSecond > 0 ? 1000 / config.txPerSecond : 0;
  let nextDue = performance.now();

  function finish(withSummary: boolean): void {
    if (!conn.open) {
      return;
    }
    notePages();
    const summaryBase = {
      pid: process.pid, startSeq, lastSeq: seq, commits, checkpoints, vacuums, pageCountMin, pageCountMax,
      finalPageCount: pragmaInt(conn, 'page_count'), freelistCount: pragmaInt(conn, 'freelist_count'),
      walBytesAtStop: fs.existsSync(`${config.dbPath}-wal`) ? fs.statSync(`${config.dbPath}-wal`).size : 0,
    };
    let closed = false;
    try {
      conn.close();
      closed = true;
    } catch (err) {
      process.stderr.write(`[native-writer ${process.pid}] close failed: ${String(err)}\n`);
    }
    const summary: WriterChildSummary = { ...summaryBase, durationMs: Date.now() - started, closed };
    if (withSummary) {
      send({ type: 'summary', summary }, () => process.exit(closed ? 0 : 1));
      setTimeout(() => process.exit(closed ? 0 : 1), 2000).unref();
    } else {
      process.exit(closed ? 0 : 1);
    }
  }

  function tick(): void {
    if (failed) {
      return;
    }
    try {
      if (stopping) {
        finish(true);
        return;
      }
      if (Date.now() - started > config.maxLifetimeMs || process.ppid !== parentPid) {
        finish(false);
        return;
      }
      const tickStart = performance.now();
      if (writingAllowed()) {
        if (interval === 0) {
          // Unthrottled: write for ~10 ms, then yield so signals and IPC are handled.
          while (performance.now() - tickStart < 10 && writingAllowed()) {
            commitOne();
          }
        } else {
          // Catch up with the schedule, but never more than 50 ms of work per tick.
          while (performance.now() >= nextDue && performance.now() - tickStart < 50 && writingAllowed()) {
            commitOne();
            nextDue += interval;
          }
          if (performance.now() - nextDue > 1000) {
            nextDue = performance.now(); // fell far behind (slow disk): do not burst forever
          }
        }
      } else if (!idleReported) {
        idleReported = true;
        send({ type: 'idle', seq });
      }
      if (seq !== reportedSeq) {
        reportedSeq = seq;
        send({ type: 'committed', seq, hrtimeNs: process.hrtime.bigint().toString() });
      }
      if (writingAllowed()) {
        // Once writing has stopped (stopWritingAfter) the files stay exactly as the last
        // commit left them: no explicit checkpoint or VACUUM either.
        maybeCheckpoint();
        maybeVacuum();
      }
      if (writingAllowed() && commits % 64 === 0) {
        notePages();
      }
      let delay: number;
      if (!writingAllowed()) {
        delay = 20; // idle: just wait for stop/kill
      } else if (interval === 0) {
        delay = 0;
      } else {
        delay = Math.max(0, nextDue - performance.now());
      }
      if (delay === 0) {
        setImmediate(tick);
      } else {
        setTimeout(tick, delay);
      }
    } catch (err) {
      fail(err); // no reschedule: the process exits once the error is reported
    }
  }

  process.on('SIGTERM', () => {
    stopping = true;
  });
  process.on('message', (m: unknown) => {
    if (typeof m === 'object' && m !== null && (m as { type?: unknown }).type === 'stop') {
      stopping = true;
    }
  });
  process.on('disconnect', () => {
    // Parent gone (or it closed the channel): never outlive it.
    if (failed) {
      return;
    }
    stopping = true;
    try {
      finish(false);
    } catch {
      process.exit(1);
    }
  });

  send({ type: 'ready', pid: process.pid, startSeq, sqliteVersion: String(conn.prepare('SELECT sqlite_version()').pluck().get()) });
  setImmediate(tick);
}

try {
  main();
} catch (err) {
  fail(err);
}
