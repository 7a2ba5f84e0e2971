/**
 * The ai-memory SQLite schema at schema version 28 (ai-memory 0.6.4 / 0.7 line), written
 * down in code so tests never depend on files outside the repository.
 *
 * Faithful in the points a backup tool can observe: the `memories` table shape (TEXT uuid
 * primary key, so it is a rowid table; JSON text columns; float32 embedding BLOB; two
 * VIRTUAL generated columns over `metadata`), the UNIQUE(title, namespace) upsert key, the
 * FTS5 external-content index kept in sync by triggers, FK-cascading link table, BLOB
 * transcripts, AUTOINCREMENT tables (sqlite_sequence) and the `schema_version` row.
 * The minor tables carry plausible column sets modelled on ai-memory's migrations.
 *
 * The server opens the file with journal_mode=WAL, busy_timeout=5000, synchronous=NORMAL
 * and foreign_keys=ON: see {@link AI_MEMORY_PRAGMAS} / {@link applyServerPragmas}.
 */
import type { NativeDb } from './sqlite';

export const AI_MEMORY_SCHEMA_VERSION = 28;

/** Pragmas ai-memory's `db::open` applies, in order. */
export const AI_MEMORY_PRAGMAS: readonly string[] = [
  'journal_mode = WAL',
  'busy_timeout = 5000',
  'synchronous = NORMAL',
  'foreign_keys = ON',
];

/** Allowed `memories.tier` values. */
export const TIERS = ['short', 'mid', 'long'] as const;
export type Tier = (typeof TIERS)[number];

/** Allowed `memory_links.relation` values (ai-memory's closed taxonomy). */
export const RELATIONS = ['related_to', 'supersedes', 'contradicts', 'derived_from', 'reflects_on'] as const;

/** Stored (non-generated) columns of `memories`, in declaration order. */
export const MEMORY_COLUMNS = [
  'id', 'tier', 'namespace', 'title', 'content', 'tags', 'priority', 'confidence', 'source',
  'access_count', 'created_at', 'updated_at', 'last_accessed_at', 'expires_at', 'metadata',
  'embedding', 'embedding_dim',
] as const;

/**
 * The generated-column expressions. ai-memory guards json_extract with json_valid():
 * SQLite evaluates generated columns on every write of `metadata`, and json_extract on
 * malformed JSON raises an error that would make the whole write fail.
 */
const SCOPE_IDX_EXPR =
  "CASE WHEN json_valid(metadata) THEN coalesce(json_extract(metadata, '$.scope'), 'private') ELSE 'private' END";
const AGENT_ID_IDX_EXPR =
  "CASE WHEN json_valid(metadata) THEN json_extract(metadata, '$.agent_id') ELSE NULL END";

/** Every table ai-memory creates (besides FTS5 shadow tables and sqlite_sequence). */
export const AI_MEMORY_TABLES = [
  'memories', 'memory_links', 'entity_aliases', 'archived_memories', 'namespace_meta',
  'schema_version', 'audit_log', 'pending_actions', 'sync_state', 'subscriptions',
  'subscription_events', 'subscription_dlq', 'memory_transcripts', 'memory_transcript_links',
  'signed_events',
] as const;

/** The schema DDL. Idempotent (IF NOT EXISTS everywhere), like ai-memory's bootstrap. */
export const AI_MEMORY_SCHEMA_SQL = `
CREATE TABLE IF NOT EXISTS memories (
    id               TEXT PRIMARY KEY,
    tier             TEXT NOT NULL CHECK (tier IN ('short', 'mid', 'long')),
    namespace        TEXT NOT NULL DEFAULT 'global',
    title            TEXT NOT NULL,
    content          TEXT NOT NULL,
    tags             TEXT NOT NULL DEFAULT '[]',
    priority         INTEGER NOT NULL DEFAULT 5,
    confidence       REAL NOT NULL DEFAULT 1.0,
    source           TEXT NOT NULL DEFAULT 'api',
    access_count     INTEGER NOT NULL DEFAULT 0,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    last_accessed_at TEXT,
    expires_at       TEXT,
    metadata         TEXT NOT NULL DEFAULT '{}',
    embedding        BLOB,
    embedding_dim    INTEGER,
    scope_idx        TEXT GENERATED ALWAYS AS (${SCOPE_IDX_EXPR}) VIRTUAL,
    agent_id_idx     TEXT GENERATED ALWAYS AS (${AGENT_ID_IDX_EXPR}) VIRTUAL
);

CREATE UNIQUE INDEX IF NOT EXISTS idx_memories_title_ns ON memories(title, namespace);
CREATE INDEX IF NOT EXISTS idx_memories_tier ON memories(tier);
CREATE INDEX IF NOT EXISTS idx_memories_namespace ON memories(namespace);
CREATE INDEX IF NOT EXISTS idx_memories_priority ON memories(priority DESC);
CREATE INDEX IF NOT EXISTS idx_memories_expires ON memories(expires_at);
CREATE INDEX IF NOT EXISTS idx_memories_scope_idx ON memories(scope_idx);
CREATE INDEX IF NOT EXISTS idx_memories_agent_id ON memories(agent_id_idx);

-- External-content FTS5 index: the index stores only tokens; the text lives in
-- memories and is read back through content_rowid. https://www.sqlite.org/fts5.html#external_content_tables
CREATE VIRTUAL TABLE IF NOT EXISTS memories_fts USING fts5(
    title,
    content,
    tags,
    content='memories',
    content_rowid='rowid'
);

-- The standard external-content triggers: the 'delete' command must be given the OLD
-- values so FTS5 can remove exactly the tokens it indexed.
CREATE TRIGGER IF NOT EXISTS memories_ai AFTER INSERT ON memories BEGIN
    INSERT INTO memories_fts(rowid, title, content, tags)
    VALUES (new.rowid, new.title, new.content, new.tags);
END;

CREATE TRIGGER IF NOT EXISTS memories_ad AFTER DELETE ON memories BEGIN
    INSERT INTO memories_fts(memories_fts, rowid, title, content, tags)
    VALUES ('delete', old.rowid, old.title, old.content, old.tags);
END;

CREATE TRIGGER IF NOT EXISTS memories_au AFTER UPDATE ON memories BEGIN
    INSERT INTO memories_fts(memories_fts, rowid, title, content, tags)
    VALUES ('delete', old.rowid, old.title, old.content, old.tags);
    INSERT INTO memories_fts(rowid, title, content, tags)
    VALUES (new.rowid, new.title, new.content, new.tags);
END;

CREATE TABLE IF NOT EXISTS memory_links (
    source_id    TEXT NOT NULL REFERENCES memories(id) ON DELETE CASCADE,
    target_id    TEXT NOT NULL REFERENCES memories(id) ON DELETE CASCADE,
    relation     TEXT NOT NULL DEFAULT 'related_to',
    created_at   TEXT NOT NULL,
    valid_from   TEXT,
    valid_until  TEXT,
    observed_by  TEXT,
    signature    BLOB,
    attest_level TEXT,
    PRIMARY KEY (source_id, target_id, relation)
);
CREATE INDEX IF NOT EXISTS idx_links_source ON memory_links(source_id);
CREATE INDEX IF NOT EXISTS idx_links_target ON memory_links(target_id);
CREATE INDEX IF NOT EXISTS idx_links_temporal_src ON memory_links(source_id, valid_from, valid_until);
CREATE INDEX IF NOT EXISTS idx_links_temporal_tgt ON memory_links(target_id, valid_from, valid_until);
CREATE INDEX IF NOT EXISTS idx_links_relation ON memory_links(relation, valid_from);
CREATE INDEX IF NOT EXISTS idx_memory_links_attest_level ON memory_links(attest_level, created_at);

CREATE TABLE IF NOT EXISTS entity_aliases (
    entity_id  TEXT NOT NULL,
    alias      TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (entity_id, alias)
);
CREATE INDEX IF NOT EXISTS idx_entity_aliases_alias ON entity_aliases(alias);

CREATE TABLE IF NOT EXISTS archived_memories (
    id                  TEXT PRIMARY KEY,
    tier                TEXT NOT NULL,
    namespace           TEXT NOT NULL DEFAULT 'global',
    title               TEXT NOT NULL,
    content             TEXT NOT NULL,
    tags                TEXT NOT NULL DEFAULT '[]',
    priority            INTEGER NOT NULL DEFAULT 5,
    confidence          REAL NOT NULL DEFAULT 1.0,
    source              TEXT NOT NULL DEFAULT 'api',
    access_count        INTEGER NOT NULL DEFAULT 0,
    created_at          TEXT NOT NULL,
    updated_at          TEXT NOT NULL,
    last_accessed_at    TEXT,
    expires_at          TEXT,
    metadata            TEXT NOT NULL DEFAULT '{}',
    embedding           BLOB,
    embedding_dim       INTEGER,
    archived_at         TEXT NOT NULL,
    archive_reason      TEXT NOT NULL DEFAULT 'ttl_expired',
    original_tier       TEXT,
    original_expires_at TEXT
);
CREATE INDEX IF NOT EXISTS idx_archived_namespace ON archived_memories(namespace);
CREATE INDEX IF NOT EXISTS idx_archived_at ON archived_memories(archived_at);

CREATE TABLE IF NOT EXISTS namespace_meta (
    namespace        TEXT PRIMARY KEY,
    standard_id      TEXT,
    parent_namespace TEXT,
    updated_at       TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS schema_version (
    version INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS audit_log (
    id               TEXT PRIMARY KEY,
    agent_id         TEXT,
    event_type       TEXT NOT NULL,
    requested_family TEXT,
    granted          INTEGER NOT NULL,
    attestation_tier TEXT,
    timestamp        TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_audit_log_agent_id ON audit_log(agent_id);
CREATE INDEX IF NOT EXISTS idx_audit_log_timestamp ON audit_log(timestamp);
CREATE INDEX IF NOT EXISTS idx_audit_log_event_type ON audit_log(event_type);

CREATE TABLE IF NOT EXISTS pending_actions (
    id                      TEXT PRIMARY KEY,
    action_type             TEXT NOT NULL,
    memory_id               TEXT,
    namespace               TEXT NOT NULL,
    payload                 TEXT NOT NULL DEFAULT '{}',
    requested_by            TEXT NOT NULL,
    requested_at            TEXT NOT NULL,
    status                  TEXT NOT NULL DEFAULT 'pending',
    decided_by              TEXT,
    decided_at              TEXT,
    approvals               TEXT NOT NULL DEFAULT '[]',
    default_timeout_seconds INTEGER,
    expired_at              TEXT
);
CREATE INDEX IF NOT EXISTS idx_pending_actions_status ON pending_actions(status);
CREATE INDEX IF NOT EXISTS idx_pending_actions_namespace ON pending_actions(namespace);
CREATE INDEX IF NOT EXISTS idx_pending_actions_status_requested ON pending_actions(status, requested_at);

CREATE TABLE IF NOT EXISTS sync_state (
    agent_id       TEXT NOT NULL,
    peer_id        TEXT NOT NULL,
    last_seen_at   TEXT NOT NULL,
    last_pulled_at TEXT NOT NULL,
    last_pushed_at TEXT,
    PRIMARY KEY (agent_id, peer_id)
);

CREATE TABLE IF NOT EXISTS subscriptions (
    id                 TEXT PRIMARY KEY,
    url                TEXT NOT NULL,
    events             TEXT NOT NULL DEFAULT '*',
    secret_hash        TEXT,
    namespace_filter   TEXT,
    agent_filter       TEXT,
    created_by         TEXT,
    created_at         TEXT NOT NULL,
    last_dispatched_at TEXT,
    dispatch_count     INTEGER NOT NULL DEFAULT 0,
    failure_count      INTEGER NOT NULL DEFAULT 0,
    event_types        TEXT
);
CREATE INDEX IF NOT EXISTS idx_subscriptions_url ON subscriptions(url);

CREATE TABLE IF NOT EXISTS subscription_events (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    subscription_id TEXT NOT NULL,
    correlation_id  TEXT NOT NULL DEFAULT '',
    event_type      TEXT NOT NULL,
    payload         TEXT NOT NULL,
    delivered_at    TEXT NOT NULL,
    delivery_status TEXT NOT NULL DEFAULT 'pending'
);
CREATE INDEX IF NOT EXISTS idx_subscription_events_correlation ON subscription_events(correlation_id);

CREATE TABLE IF NOT EXISTS subscription_dlq (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    subscription_id TEXT NOT NULL,
    correlation_id  TEXT NOT NULL,
    event_type      TEXT NOT NULL,
    payload         TEXT NOT NULL,
    failure_reason  TEXT NOT NULL,
    failed_at       TEXT NOT NULL
);

-- zstd-compressed conversation transcripts (BLOB; overflow pages for anything > ~4 KB).
CREATE TABLE IF NOT EXISTS memory_transcripts (
    id              TEXT PRIMARY KEY,
    namespace       TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    expires_at      TEXT,
    compressed_size INTEGER NOT NULL,
    original_size   INTEGER NOT NULL,
    zstd_level      INTEGER NOT NULL DEFAULT 3,
    content_blob    BLOB NOT NULL,
    archived_at     TEXT
);
CREATE INDEX IF NOT EXISTS idx_memory_transcripts_namespace_created ON memory_transcripts(namespace, created_at);
CREATE INDEX IF NOT EXISTS idx_memory_transcripts_archived_at ON memory_transcripts(archived_at) WHERE archived_at IS NOT NULL;

CREATE TABLE IF NOT EXISTS memory_transcript_links (
    memory_id     TEXT NOT NULL REFERENCES memories(id) ON DELETE CASCADE,
    transcript_id TEXT NOT NULL REFERENCES memory_transcripts(id) ON DELETE CASCADE,
    span_start    INTEGER,
    span_end      INTEGER,
    PRIMARY KEY (memory_id, transcript_id)
);
CREATE INDEX IF NOT EXISTS idx_mtl_transcript ON memory_transcript_links(transcript_id);

CREATE TABLE IF NOT EXISTS signed_events (
    id           TEXT PRIMARY KEY,
    agent_id     TEXT NOT NULL,
    event_type   TEXT NOT NULL,
    payload_hash BLOB NOT NULL,
    signature    BLOB,
    attest_level TEXT NOT NULL DEFAULT 'unsigned',
    timestamp    TEXT NOT NULL,
    prev_hash    BLOB,
    sequence     INTEGER
);
CREATE INDEX IF NOT EXISTS idx_signed_events_agent ON signed_events(agent_id);
CREATE INDEX IF NOT EXISTS idx_signed_events_timestamp ON signed_events(timestamp);
CREATE UNIQUE INDEX IF NOT EXISTS idx_signed_events_sequence ON signed_events(sequence);
`;

/** Apply the server's connection pragmas to an open connection. */
export function applyServerPragmas(db: NativeDb): void {
  for (const p of AI_MEMORY_PRAGMAS) {
    db.pragma(p);
  }
}

/**
 * Create the schema (idempotent) and make sure `schema_version` holds exactly one row
 * with version 28, all in one transaction.
 */
export function applyAiMemorySchema(db: NativeDb): void {
  db.transaction(() => {
    db.exec(AI_MEMORY_SCHEMA_SQL);
    const rows = db.prepare('SELECT count(*) AS n FROM schema_version').pluck().get();
    if (Number(rows) === 0) {
      db.prepare('INSERT INTO schema_version(version) VALUES (?)').run(AI_MEMORY_SCHEMA_VERSION);
    }
  })();
}
