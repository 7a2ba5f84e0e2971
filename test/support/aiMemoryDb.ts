/**
 * Realistic ai-memory databases for tests, built and inspected with native SQLite
 * (better-sqlite3), plus the "leftover -wal" fixture.
 *
 * ## How the leftover-WAL fixture is made (and why)
 *
 * `createAiMemoryDb(path, { leaveWalCommits: N })` produces `path` + `path-wal` where the
 * main file holds everything up to a checkpoint and the -wal holds the last N committed
 * transactions (and nothing else has been backfilled), i.e. the state a server leaves
 * behind when it crashes, or the state a hot backup sees while the server runs.
 *
 * The difficulty: SQLite checkpoints and DELETES the -wal when the last connection closes
 * (https://www.sqlite.org/wal.html#the_wal_file: "When the last connection to a database
 * closes, that connection does one last checkpoint and then deletes the WAL"). The knobs
 * that prevent it, SQLITE_FCNTL_PERSIST_WAL and SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, are not
 * reachable from better-sqlite3, and better-sqlite3 closes open handles at process exit.
 *
 * Method used here ("copy while open"): with wal_autocheckpoint=0 and one explicit
 * checkpoint before the tail, commit the N tail transactions; then, while this (only)
 * connection is still open and idle, copy the main file and the -wal aside; close (which
 * checkpoints and deletes the originals); move the copies back. The main file is not
 * touched after the pre-tail checkpoint and every tail frame has been written (write(2);
 * visible to a reader in the same OS even without fsync) before COMMIT returned, so the
 * copies are exactly the on-disk state at that instant. It is synchronous, deterministic,
 * needs no child process, and leaves no -shm (the next opener rebuilds the wal-index from
 * the -wal: https://www.sqlite.org/walformat.html#recovery).
 *
 * The alternative, a child process SIGKILLed after its last commit, is provided by
 * nativeWriter.ts (`startWriter({ stopWritingAfter })` then `kill()`): it additionally
 * leaves a real -shm. Use it when a test needs the crash shape with a stale -shm.
 */
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import {
  AI_MEMORY_SCHEMA_VERSION, RELATIONS, applyAiMemorySchema, applyServerPragmas,
} from './aiMemorySchema';
import { NativeDb, openNative, pragmaInt } from './sqlite';
import { readWalHeader, removeDbFiles, sidecars } from './sqliteFiles';
import {
  AGENT_IDS, BASE_TIME_MS, NAMESPACES, Prng, SCOPES, embedding, prose, rfc3339, subSeed, tags, title, uuid4,
} from './textGen';
import { makeTempDir, removeTempDir } from './tmp';

export type CheckpointMode = 'PASSIVE' | 'FULL' | 'RESTART' | 'TRUNCATE';

/** A row of `memories` as inserted (generated columns excluded). */
export interface MemoryRow {
  id: string;
  tier: string;
  namespace: string;
  title: string;
  content: string;
  tags: string;
  priority: number;
  confidence: number;
  source: string;
  access_count: number;
  created_at: string;
  updated_at: string;
  last_accessed_at: string | null;
  expires_at: string | null;
  metadata: string;
  embedding: Buffer | null;
  embedding_dim: number | null;
}

export interface CreateAiMemoryDbOptions {
  /** Number of memories in total, tail included (default 100). */
  memories?: number;
  /** PRNG seed: same seed ⇒ byte-identical content (default 1). */
  seed?: number;
  /** Embedding dimension: 384, 768, or 0 for none (default 384). */
  embeddingDim?: 0 | 384 | 768;
  /** Fraction of memories that have an embedding (default 1). */
  embeddingFraction?: number;
  /** Approximate links per memory (default 0.3). */
  linksPerMemory?: number;
  /** Database page size (default 4096). Must be a power of two in 512..65536. */
  pageSize?: number;
  /** WAL mode like the server (default true). false ⇒ rollback journal (journal_mode=DELETE). */
  walMode?: boolean;
  /** Memories per bulk transaction (default 250). */
  batchSize?: number;
  /** wal_autocheckpoint during the bulk load (default 1000, SQLite's default). */
  walAutocheckpoint?: number;
  /** Also fill the minor tables (audit_log, transcripts, signed_events, ...) (default true). */
  minorTables?: boolean;
  /**
   * Leave the last N transactions in an un-checkpointed -wal (default 0). Each tail
   * transaction inserts one new memory and "touches" (access_count+1) one older memory.
   * Requires walMode. See the module comment for how the -wal is preserved.
   */
  leaveWalCommits?: number;
  /**
   * Extra "recall" transactions in the tail (default 0), spread evenly among the
   * `leaveWalCommits` stores: each only touches (access_count+1, last_accessed_at) one
   * older memory, as the server does when a memory is recalled; the FTS5 update trigger
   * re-indexes it (~10 pages of WAL per commit). Lets the -wal hold thousands of commits
   * without thousands of new memories. Needs leaveWalCommits > 0.
   */
  tailRecalls?: number;
  /**
   * Checkpoint run just before the tail (default 'TRUNCATE': the -wal then holds only the
   * tail). 'PASSIVE' leaves the old, already backfilled frames in the file: the first tail
   * commit restarts the WAL from frame 1 with new salts, so stale frames with old salts
   * remain after the valid ones — a good test for WAL readers. 'none' keeps whatever the
   * autocheckpoint left before the tail, too.
   */
  checkpointBeforeTail?: CheckpointMode | 'none';
  /**
   * Final checkpoint (default true when leaveWalCommits is 0). false ⇒ keep the -wal as the
   * last commit left it (everything since the last autocheckpoint stays in the -wal).
   */
  checkpoint?: boolean;
  /** Delete an existing database at `path` first (default false: refuse). */
  overwrite?: boolean;
}

export interface TailCommit {
  /** Memory inserted by this transaction (absent from the main file alone). */
  insertedId: string;
  insertedTitle: string;
  /** Older memory whose access_count this transaction incremented (null if none existed). */
  touchedId: string | null;
}

export interface CreatedAiMemoryDb {
  path: string;
  /** All memory ids in insertion order (tail included). */
  memoryIds: string[];
  memories: number;
  links: number;
  pageSize: number;
  walMode: boolean;
  /** The transactions left in the -wal (empty when leaveWalCommits is 0). */
  tail: TailCommit[];
  /** Size of the -wal left beside the database (0 when none). */
  walBytes: number;
  /** Recall-only transactions in the -wal (see tailRecalls). */
  tailRecalls: number;
  /** sum(access_count) over all memories after the last commit: a copy without the -wal's last commit differs. */
  accessCountTotal: number;
  schemaVersion: number;
}

const INSERT_MEMORY_SQL = `INSERT INTO memories (
  id, tier, namespace, title, content, tags, priority, confidence, source, access_count,
  created_at, updated_at, last_accessed_at, expires_at, metadata, embedding, embedding_dim
) VALUES (
  @id, @tier, @namespace, @title, @content, @tags, @priority, @confidence, @source, @access_count,
  @created_at, @updated_at, @last_accessed_at, @expires_at, @metadata, @embedding, @embedding_dim
)`;

const SOURCES = ['api', 'mcp', 'cli', 'import', 'hook'];

/**
 * The memory with this ordinal for this seed. Depends only on (seed, ordinal, embedding
 * options), so it is stable whatever the batch size or tail length.
 */
export function generateMemory(
  seed: number, ordinal: number, embeddingDim: number, embeddingFraction = 1,
): MemoryRow {
  const rng = new Prng(subSeed(seed, ordinal));
  const tier = rng.chance(0.4) ? 'long' : rng.chance(0.6) ? 'mid' : 'short';
  const createdMs = BASE_TIME_MS + ordinal * 37 * 60_000 + rng.int(0, 59_999);
  const updatedMs = createdMs + (rng.chance(0.3) ? rng.int(1, 30) * 3_600_000 : 0);
  const expiresMs = tier === 'short' ? createdMs + 6 * 3_600_000 : tier === 'mid' ? createdMs + 7 * 86_400_000 : null;
  const meta: Record<string, unknown> = {
    agent_id: rng.pick(AGENT_IDS),
    scope: rng.chance(0.6) ? 'private' : rng.pick(SCOPES),
    origin: 'fixture',
  };
  if (rng.chance(0.2)) {
    delete meta.scope; // exercises the generated column's coalesce(..., 'private')
  }
  if (rng.chance(0.15)) {
    meta.entity_id = `entity:${rng.pick(['alice', 'bob', 'payments', 'search', 'ci'])}`;
  }
  const hasEmbedding = embeddingDim > 0 && rng.next() < embeddingFraction;
  return {
    id: uuid4(rng),
    tier,
    namespace: rng.pick(NAMESPACES),
    title: title(rng, ordinal),
    content: prose(rng, rng.int(600, 1500)),
    tags: JSON.stringify(tags(rng)),
    priority: Math.min(10, Math.max(1, Math.round(5 + rng.gauss() * 2))),
    confidence: Math.round((0.5 + rng.next() * 0.5) * 100) / 100,
    source: rng.pick(SOURCES),
    access_count: rng.int(0, 40),
    created_at: rfc3339(createdMs),
    updated_at: rfc3339(updatedMs),
    last_accessed_at: rng.chance(0.5) ? rfc3339(updatedMs + rng.int(1, 100) * 60_000) : null,
    expires_at: expiresMs === null ? null : rfc3339(expiresMs),
    metadata: JSON.stringify(meta),
    embedding: hasEmbedding ? embedding(rng, embeddingDim) : null,
    embedding_dim: hasEmbedding ? embeddingDim : null,
  };
}

/** Open a database the way ai-memory's server does (WAL, busy 5 s, synchronous NORMAL, FKs). */
export function openLikeServer(dbPath: string): NativeDb {
  const db = openNative(dbPath, { timeout: 5000 });
  applyServerPragmas(db);
  return db;
}

function validatePageSize(n: number): void {
  if (!Number.isInteger(n) || n < 512 || n > 65536 || (n & (n - 1)) !== 0) {
    throw new Error(`pageSize must be a power of two in 512..65536, got ${n}`);
  }
}

/**
 * Create an ai-memory database (schema v28) with `memories` deterministic memories.
 * See {@link CreateAiMemoryDbOptions}; the module comment explains the -wal fixture.
 */
export function createAiMemoryDb(dbPath: string, opts: CreateAiMemoryDbOptions = {}): CreatedAiMemoryDb {
  const total = opts.memories ?? 100;
  const seed = opts.seed ?? 1;
  const dim = opts.embeddingDim ?? 384;
  const fraction = opts.embeddingFraction ?? 1;
  const pageSize = opts.pageSize ?? 4096;
  const walMode = opts.walMode ?? true;
  const batchSize = Math.max(1, opts.batchSize ?? 250);
  const tailN = opts.leaveWalCommits ?? 0;
  const checkpoint = opts.checkpoint ?? tailN === 0;
  const beforeTail = opts.checkpointBeforeTail ?? 'TRUNCATE';
  const recalls = opts.tailRecalls ?? 0;
  validatePageSize(pageSize);
  if (!Number.isInteger(total) || total < 0) {
    throw new Error(`memories must be a non-negative integer, got ${total}`);
  }
  if (tailN < 0 || tailN > total) {
    throw new Error(`leaveWalCommits must be in 0..memories (${total}), got ${tailN}`);
  }
  if ((tailN > 0 || !checkpoint) && !walMode) {
    throw new Error('leaveWalCommits / checkpoint:false need walMode (a rollback database has no -wal)');
  }
  if (!Number.isInteger(recalls) || recalls < 0 || (recalls > 0 && tailN === 0)) {
    throw new Error(`tailRecalls must be a whole number ≥ 0, and needs leaveWalCommits > 0; got ${recalls}`);
  }
  if (tailN > 0 && checkpoint) {
    throw new Error('checkpoint:true contradicts leaveWalCommits > 0');
  }
  if (fs.existsSync(dbPath)) {
    if (!opts.overwrite) {
      throw new Error(`createAiMemoryDb: ${dbPath} already exists (pass overwrite: true)`);
    }
    removeDbFiles(dbPath);
  }
  fs.mkdirSync(path.dirname(dbPath), { recursive: true });

  const db = openNative(dbPath, { timeout: 5000 });
  let closed = false;
  try {
    // page_size only takes effect before the database content is first written
    // (https://www.sqlite.org/pragma.html#pragma_page_size), so it comes first; in WAL mode
    // it can never change afterwards.
    db.pragma(`page_size = ${pageSize}`);
    if (walMode) {
      applyServerPragmas(db);
      db.pragma(`wal_autocheckpoint = ${opts.walAutocheckpoint ?? 1000}`);
    } else {
      db.pragma('journal_mode = DELETE');
      db.pragma('synchronous = NORMAL');
      db.pragma('foreign_keys = ON');
    }
    applyAiMemorySchema(db);

    const insert = db.prepare(INSERT_MEMORY_SQL);
    const ids: string[] = [];
    // Memories come from 32-bit sub-seeds: from a few hundred thousand on, two ordinals can
    // share one (the 1.9 GB fixture's 350,000 did), and so their id. The later one gets
    // another id; below that, nothing changes (cached fixtures stay valid).
    const seen = new Set<string>();
    const unique = (row: MemoryRow, ordinal: number): MemoryRow => {
      for (let k = 1; seen.has(row.id); k++) row.id = uuid4(new Prng(subSeed(seed, ordinal, 0x1d, k)));
      seen.add(row.id);
      return row;
    };
    const bulkCount = total - tailN;
    const insertBatch = db.transaction((from: number, to: number) => {
      for (let i = from; i < to; i++) {
        const row = unique(generateMemory(seed, i, dim, fraction), i);
        insert.run(row);
        ids.push(row.id);
      }
    });
    for (let from = 0; from < bulkCount; from += batchSize) {
      insertBatch(from, Math.min(bulkCount, from + batchSize));
    }

    const rng = new Prng(subSeed(seed, 0xabc));
    const links = insertLinks(db, rng, ids, opts.linksPerMemory ?? 0.3);
    if (opts.minorTables ?? true) {
      seedMinorTables(db, rng, ids);
    }

    const tail: TailCommit[] = [];
    if (tailN > 0) {
      // No automatic checkpoint may backfill the tail into the main file.
      db.pragma('wal_autocheckpoint = 0');
      if (beforeTail !== 'none') {
        const r = db.prepare(`PRAGMA wal_checkpoint(${beforeTail})`).get() as { busy: number } | undefined;
        if (!r || r.busy !== 0) {
          throw new Error(`pre-tail checkpoint ${beforeTail} did not complete: ${JSON.stringify(r)}`);
        }
      }
      const touch = db.prepare(
        'UPDATE memories SET access_count = access_count + 1, last_accessed_at = ? WHERE id = ?',
      );
      const tailTx = db.transaction((ordinal: number) => {
        const row = unique(generateMemory(seed, ordinal, dim, fraction), ordinal);
        // Touch a memory that is already in the main file when there is one.
        const touchedId = ids.length > 0 ? ids[rng.int(0, Math.min(ids.length, bulkCount || ids.length) - 1)] : null;
        insert.run(row);
        if (touchedId !== null) {
          touch.run(rfc3339(BASE_TIME_MS + ordinal * 37 * 60_000 + 1), touchedId);
        }
        ids.push(row.id);
        tail.push({ insertedId: row.id, insertedTitle: row.title, touchedId });
      });
      const recallTx = db.transaction((ordinal: number) => {
        const touchedId = ids[rng.int(0, ids.length - 1)];
        touch.run(rfc3339(BASE_TIME_MS + ordinal * 11 * 60_000 + 2), touchedId);
      });
      let recalled = 0;
      for (let i = bulkCount; i < total; i++) {
        tailTx(i);
        // After store k of N, the recalls due so far: floor((k+1)·R/N), so they are spread evenly.
        const due = Math.floor(((i - bulkCount + 1) * recalls) / tailN);
        for (; recalled < due; recalled++) recallTx(recalled);
      }
    } else if (walMode && checkpoint) {
      db.pragma('wal_checkpoint(TRUNCATE)');
    }

    const accessCountTotal = Number((db.prepare('SELECT coalesce(sum(access_count), 0) AS n FROM memories').get() as { n: number }).n);
    if (walMode && !checkpoint) {
      closePreservingWal(db, dbPath);
    } else {
      db.close();
    }
    closed = true;
    const wal = sidecars(dbPath).wal;
    return {
      path: dbPath,
      memoryIds: ids,
      memories: total,
      links,
      pageSize,
      walMode,
      tail,
      walBytes: fs.existsSync(wal) ? fs.statSync(wal).size : 0,
      tailRecalls: recalls,
      accessCountTotal,
      schemaVersion: AI_MEMORY_SCHEMA_VERSION,
    };
  } finally {
    if (!closed && db.open) {
      db.close();
    }
  }
}

/**
 * Close `db` (the only connection to `dbPath`) without losing its -wal: copy the main file
 * and the -wal aside while the connection is open and idle, close (SQLite checkpoints and
 * deletes the -wal), then put the copies back. See the module comment.
 */
function closePreservingWal(db: NativeDb, dbPath: string): void {
  const s = sidecars(dbPath);
  const keepMain = `${dbPath}.preserve-main`;
  const keepWal = `${dbPath}.preserve-wal`;
  if (db.inTransaction) {
    throw new Error('closePreservingWal: a transaction is open');
  }
  fs.copyFileSync(dbPath, keepMain);
  const hadWal = fs.existsSync(s.wal);
  if (hadWal) {
    fs.copyFileSync(s.wal, keepWal);
  }
  db.close();
  fs.renameSync(keepMain, dbPath);
  if (hadWal) {
    fs.renameSync(keepWal, s.wal);
  }
  // Normally already unlinked by the close; a stale -shm would only be ignored anyway.
  fs.rmSync(s.shm, { force: true });
}

function insertLinks(db: NativeDb, rng: Prng, ids: string[], perMemory: number): number {
  if (ids.length < 2 || perMemory <= 0) {
    return 0;
  }
  const want = Math.floor(ids.length * perMemory);
  const stmt = db.prepare(`INSERT OR IGNORE INTO memory_links
    (source_id, target_id, relation, created_at, valid_from, valid_until, observed_by, signature, attest_level)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`);
  let n = 0;
  db.transaction(() => {
    for (let i = 0; i < want; i++) {
      const a = rng.int(0, ids.length - 1);
      let b = rng.int(0, ids.length - 2);
      if (b >= a) {
        b++;
      }
      const t = BASE_TIME_MS + rng.int(0, 90) * 86_400_000;
      const signed = rng.chance(0.3);
      n += stmt.run(
        ids[a], ids[b], rng.pick(RELATIONS), rfc3339(t),
        rng.chance(0.5) ? rfc3339(t) : null,
        rng.chance(0.1) ? rfc3339(t + 86_400_000 * 30) : null,
        rng.chance(0.5) ? rng.pick(AGENT_IDS) : null,
        signed ? rng.bytes(64) : null,
        signed ? 'self_signed' : 'unsigned',
      ).changes;
    }
  })();
  return n;
}

/** A few rows in each minor table, so a snapshot exercises every b-tree, BLOBs and AUTOINCREMENT. */
function seedMinorTables(db: NativeDb, rng: Prng, ids: string[]): void {
  db.transaction(() => {
    const t0 = BASE_TIME_MS;
    const nsMeta = db.prepare('INSERT OR IGNORE INTO namespace_meta(namespace, standard_id, parent_namespace, updated_at) VALUES (?, ?, ?, ?)');
    for (const ns of NAMESPACES) {
      const parent = ns.includes('/') ? ns.slice(0, ns.lastIndexOf('/')) : null;
      nsMeta.run(ns, rng.chance(0.3) ? uuid4(rng) : null, parent, rfc3339(t0));
    }

    const audit = db.prepare('INSERT INTO audit_log(id, agent_id, event_type, requested_family, granted, attestation_tier, timestamp) VALUES (?, ?, ?, ?, ?, ?, ?)');
    for (let i = 0; i < Math.max(3, Math.floor(ids.length / 10)); i++) {
      audit.run(uuid4(rng), rng.pick(AGENT_IDS), 'capability_expansion', rng.pick(['core', 'graph', 'governance', 'power']),
        rng.chance(0.8) ? 1 : 0, rng.pick(['unsigned', 'self_signed']), rfc3339(t0 + i * 60_000));
    }

    const pending = db.prepare(`INSERT INTO pending_actions(id, action_type, memory_id, namespace, payload, requested_by, requested_at, status, approvals, default_timeout_seconds)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`);
    for (let i = 0; i < 3; i++) {
      pending.run(uuid4(rng), rng.pick(['delete', 'promote', 'store']), ids.length ? rng.pick(ids) : null, rng.pick(NAMESPACES),
        JSON.stringify({ reason: 'fixture', n: i }), rng.pick(AGENT_IDS), rfc3339(t0 + i * 1000), rng.pick(['pending', 'approved', 'rejected']),
        '[]', rng.chance(0.5) ? 3600 : null);
    }

    const sync = db.prepare('INSERT OR IGNORE INTO sync_state(agent_id, peer_id, last_seen_at, last_pulled_at, last_pushed_at) VALUES (?, ?, ?, ?, ?)');
    sync.run('copilot', 'peer-laptop', rfc3339(t0), rfc3339(t0), null);
    sync.run('claude-code', 'peer-desktop', rfc3339(t0 + 1000), rfc3339(t0 + 1000), rfc3339(t0 + 2000));

    const subId = uuid4(rng);
    db.prepare(`INSERT INTO subscriptions(id, url, events, secret_hash, namespace_filter, created_by, created_at, dispatch_count, event_types)
      VALUES (?, ?, '*', ?, ?, ?, ?, ?, ?)`).run(subId, 'https://hooks.example.invalid/ai-memory', crypto.createHash('sha256').update(subId).digest('hex'),
      'proj/a', 'copilot', rfc3339(t0), 2, JSON.stringify(['memory_store', 'memory_delete']));
    const subEv = db.prepare('INSERT INTO subscription_events(subscription_id, correlation_id, event_type, payload, delivered_at, delivery_status) VALUES (?, ?, ?, ?, ?, ?)');
    subEv.run(subId, uuid4(rng), 'memory_store', JSON.stringify({ id: ids[0] ?? null }), rfc3339(t0), 'delivered');
    subEv.run(subId, uuid4(rng), 'memory_delete', JSON.stringify({ id: ids[1] ?? null }), rfc3339(t0 + 1), 'failed');
    db.prepare('INSERT INTO subscription_dlq(subscription_id, correlation_id, event_type, payload, failure_reason, failed_at) VALUES (?, ?, ?, ?, ?, ?)')
      .run(subId, uuid4(rng), 'memory_delete', '{}', 'HTTP 503 after 3 attempts', rfc3339(t0 + 2));

    // Transcripts: incompressible bytes behind a zstd frame magic, 2–12 KB (overflow pages).
    const tr = db.prepare(`INSERT INTO memory_transcripts(id, namespace, created_at, expires_at, compressed_size, original_size, zstd_level, content_blob)
      VALUES (?, ?, ?, ?, ?, ?, 3, ?)`);
    const trLink = db.prepare('INSERT OR IGNORE INTO memory_transcript_links(memory_id, transcript_id, span_start, span_end) VALUES (?, ?, ?, ?)');
    for (let i = 0; i < Math.max(2, Math.floor(ids.length / 40)); i++) {
      const id = uuid4(rng);
      const size = rng.int(2048, 12288);
      const blob = Buffer.concat([Buffer.from([0x28, 0xb5, 0x2f, 0xfd]), rng.bytes(size - 4)]);
      tr.run(id, rng.pick(NAMESPACES), rfc3339(t0 + i * 3_600_000), null, size, size * 3, blob);
      if (ids.length > 0) {
        trLink.run(rng.pick(ids), id, 0, rng.int(100, size * 3));
      }
    }

    // Signed events: a hash chain over link events.
    const se = db.prepare(`INSERT INTO signed_events(id, agent_id, event_type, payload_hash, signature, attest_level, timestamp, prev_hash, sequence)
      VALUES (?, ?, 'memory_link', ?, ?, ?, ?, ?, ?)`);
    let prev: Buffer | null = null;
    for (let i = 1; i <= Math.max(2, Math.floor(ids.length / 20)); i++) {
      const hash: Buffer = crypto.createHash('sha256').update(`event-${i}`).update(prev ?? Buffer.alloc(0)).digest();
      const signed = rng.chance(0.5);
      se.run(uuid4(rng), rng.pick(AGENT_IDS), hash, signed ? rng.bytes(64) : null, signed ? 'self_signed' : 'unsigned',
        rfc3339(t0 + i * 1000), prev, i);
      prev = hash;
    }

    const alias = db.prepare('INSERT OR IGNORE INTO entity_aliases(entity_id, alias, created_at) VALUES (?, ?, ?)');
    alias.run('entity:alice', 'Alice', rfc3339(t0));
    alias.run('entity:alice', 'alice@example.invalid', rfc3339(t0));
    alias.run('entity:payments', 'billing service', rfc3339(t0));

    // Archived memories: generated like live ones but never inserted into `memories`.
    const arch = db.prepare(`INSERT INTO archived_memories(id, tier, namespace, title, content, tags, priority, confidence, source,
      access_count, created_at, updated_at, last_accessed_at, expires_at, metadata, embedding, embedding_dim,
      archived_at, archive_reason, original_tier, original_expires_at)
      VALUES (@id, @tier, @namespace, @title, @content, @tags, @priority, @confidence, @source, @access_count, @created_at,
      @updated_at, @last_accessed_at, @expires_at, @metadata, @embedding, @embedding_dim, @archived_at, @archive_reason,
      @original_tier, @original_expires_at)`);
    for (let i = 0; i < Math.max(1, Math.floor(ids.length / 20)); i++) {
      const row = generateMemory(subSeed(rng.nextU32(), 7), 1_000_000 + i, 384, 0.5);
      arch.run({
        ...row,
        archived_at: rfc3339(t0 + 86_400_000 * 10),
        archive_reason: 'ttl_expired',
        original_tier: row.tier,
        original_expires_at: row.expires_at,
      });
    }
  })();
}

/**
 * Insert one memory like ai-memory's test util `seed_memory(db, namespace, title, content)`:
 * opens the database like the server (creating the schema when missing), upserts on
 * (title, namespace) with tier=mid, priority=5, source=import, agent_id=test-agent, and
 * closes (which, like the CLI process exiting, checkpoints the -wal). Returns the stored id.
 */
export function seedMemory(dbPath: string, namespace: string, memTitle: string, content: string): string {
  const db = openLikeServer(dbPath);
  try {
    applyAiMemorySchema(db);
    const now = rfc3339(Date.now());
    db.prepare(`INSERT INTO memories (id, tier, namespace, title, content, tags, priority, confidence, source,
        access_count, created_at, updated_at, metadata)
      VALUES (?, 'mid', ?, ?, ?, '[]', 5, 1.0, 'import', 0, ?, ?, ?)
      ON CONFLICT(title, namespace) DO UPDATE SET
        content = excluded.content, updated_at = excluded.updated_at, source = excluded.source`)
      .run(crypto.randomUUID(), namespace, memTitle, content, now, now, JSON.stringify({ agent_id: 'test-agent' }));
    const id = db.prepare('SELECT id FROM memories WHERE title = ? AND namespace = ?').pluck().get(memTitle, namespace);
    return String(id);
  } finally {
    db.close();
  }
}

/**
 * Run `fn` on a private native copy of a QUIESCENT database: the main file and its -wal
 * (when present) are copied to a temp dir and opened read-write there, so SQLite recovers
 * the -wal exactly as it would in place, and commands that write (the FTS5 integrity-check
 * is an INSERT) are possible, while the original files are never opened at all.
 * The -shm is deliberately not copied: the first opener rebuilds it from the -wal.
 * For a database that a process is writing, take `nativeVacuumInto` first.
 */
export function withNativeCopy<T>(dbPath: string, fn: (db: NativeDb) => T): T {
  if (!fs.existsSync(dbPath)) {
    throw new Error(`withNativeCopy: ${dbPath} does not exist`);
  }
  const dir = makeTempDir('aimb-native-');
  try {
    const copy = path.join(dir, 'copy.db');
    fs.copyFileSync(dbPath, copy);
    const s = sidecars(dbPath);
    if (fs.existsSync(s.wal)) {
      fs.copyFileSync(s.wal, `${copy}-wal`);
    }
    if (fs.existsSync(s.journal)) {
      // A hot rollback journal is part of the database state, too.
      fs.copyFileSync(s.journal, `${copy}-journal`);
    }
    const db = openNative(copy, { fileMustExist: true });
    try {
      return fn(db);
    } finally {
      db.close();
    }
  } finally {
    removeTempDir(dir);
  }
}

export interface MemorySummary {
  id: string;
  namespace: string;
  title: string;
  content: string;
  updated_at: string;
}

/** All memories (id, namespace, title, content, updated_at) ordered by id, read natively. */
export function readMemories(dbPath: string): MemorySummary[] {
  return withNativeCopy(dbPath, (db) =>
    db.prepare<MemorySummary>('SELECT id, namespace, title, content, updated_at FROM memories ORDER BY id').all());
}

export interface NativeCheckResult {
  /** PRAGMA integrity_check output ('ok' or the messages joined by newlines). */
  integrity: string;
  /** 'ok' or the error text of the FTS5 integrity-check. */
  fts: string;
  /** Rows reported by PRAGMA foreign_key_check. */
  foreignKeyViolations: number;
  memories: number;
  /** schema_version.version (null when the table is missing or empty). */
  schemaVersion: number | null;
  pageSize: number;
  pageCount: number;
  freelistCount: number;
}

/**
 * Native checks of a quiescent database (on a private copy, see withNativeCopy):
 * `PRAGMA integrity_check`, the FTS5 integrity-check with rank=1, which also compares the
 * index with the external content table (https://www.sqlite.org/fts5.html#the_integrity_check_command;
 * plain integrity_check does not notice an FTS index out of sync with `memories`),
 * foreign keys, memory count and schema version.
 */
export function nativeChecks(dbPath: string): NativeCheckResult {
  return withNativeCopy(dbPath, (db) => runNativeChecks(db));
}

/** The checks of {@link nativeChecks} on an open, writable connection (it may write FTS5 structure records). */
export function runNativeChecks(db: NativeDb): NativeCheckResult {
  const integrity = (db.prepare('PRAGMA integrity_check').pluck().all() as unknown[]).map(String).join('\n');
  let fts = 'ok';
  try {
    db.exec("INSERT INTO memories_fts(memories_fts, rank) VALUES('integrity-check', 1)");
  } catch (err) {
    fts = err instanceof Error ? err.message : String(err);
  }
  const fk = db.prepare('PRAGMA foreign_key_check').all().length;
  let memories = -1;
  try {
    memories = Number(db.prepare('SELECT count(*) FROM memories').pluck().get());
  } catch {
    memories = -1;
  }
  let schemaVersion: number | null = null;
  try {
    const v = db.prepare('SELECT max(version) FROM schema_version').pluck().get();
    schemaVersion = v === null || v === undefined ? null : Number(v);
  } catch {
    schemaVersion = null;
  }
  return {
    integrity,
    fts,
    foreignKeyViolations: fk,
    memories,
    schemaVersion,
    pageSize: pragmaInt(db, 'page_size'),
    pageCount: pragmaInt(db, 'page_count'),
    freelistCount: pragmaInt(db, 'freelist_count'),
  };
}

/**
 * Native hot backup with `VACUUM INTO` (what ai-memory's own `backup` does): a consistent
 * snapshot of the last committed state, even while another process writes, written as a
 * rollback-mode file (header bytes 18-19 = 1,1).
 *
 * - When a `-shm` exists (a process has the database open, or crashed with it open) the
 *   source is opened READ-ONLY in place, like any other client: it reads through the live
 *   wal-index and, being read-only, never checkpoints or deletes the -wal.
 * - Otherwise the database is quiescent, and a read-only open would CREATE -wal/-shm beside
 *   a WAL-mode file (https://www.sqlite.org/wal.html#read_only_databases), so the
 *   VACUUM INTO runs on a private copy (withNativeCopy) and nothing appears beside it.
 */
export function nativeVacuumInto(srcPath: string, destPath: string): { durationMs: number; inPlace: boolean } {
  if (fs.existsSync(destPath)) {
    throw new Error(`nativeVacuumInto: ${destPath} already exists`);
  }
  const t0 = process.hrtime.bigint();
  const inPlace = fs.existsSync(sidecars(srcPath).shm);
  if (inPlace) {
    const db = openNative(srcPath, { readonly: true, fileMustExist: true, timeout: 5000 });
    try {
      db.prepare('VACUUM INTO ?').run(destPath);
    } finally {
      db.close();
    }
  } else {
    withNativeCopy(srcPath, (db) => {
      db.prepare('VACUUM INTO ?').run(destPath);
    });
  }
  return { durationMs: Number(process.hrtime.bigint() - t0) / 1e6, inPlace };
}

/** Summary of the -wal beside a database (null when there is none). */
export function walInfo(dbPath: string): ReturnType<typeof readWalHeader> {
  return readWalHeader(sidecars(dbPath).wal);
}
