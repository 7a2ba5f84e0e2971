/**
 * The snapshot manifest, compatible with ai-memory's `BackupManifest`: exactly its six
 * fields with their types (snapshot, sha256, bytes, source_db, version, created_at), plus
 * optional fields of ours, which ai-memory's reader ignores (serde skips unknown fields).
 */
import { BackupError, errorMessage } from '../common/errors';
import { PayloadReadError, readSerdeStruct, type PayloadFieldSpec } from './serdePayload';
import type { VerifyMode } from '../common/checks';

export interface Manifest {
  snapshot: string;
  sha256: string;
  bytes: number;
  source_db: string;
  version: string;
  created_at: string;
  /** ai-memory 1.0: the backend that made the snapshot (always "sqlite"). */
  backend?: string;
  /** ai-memory 1.0 (and ours before it): the database's schema version. */
  schema_version?: number;
  /** ai-memory 1.0: live `memories` rows at capture time. */
  memory_count?: number;
  /** ai-memory 1.0, signed manifests only (see signing.ts): 2. */
  manifest_version?: number;
  /** ai-memory 1.0: standard base64 of the exact JSON bytes that were signed. */
  signed_payload?: string;
  /** ai-memory 1.0: standard base64 of the 64-byte Ed25519 signature of those bytes. */
  signature?: string;
  /** ai-memory 1.0: `sha256:<16 hex>` of the signing key — for messages, never trusted. */
  signer?: string;
  /** Ours: which tool wrote it ("ai-memory-backup <version>"). */
  tool?: string;
  /** Ours (common/machine.ts): the host name of the machine it was taken on. */
  host?: string;
  /** Ours (common/machine.ts): a digest of that machine's id, which tells it from another machine with the same database path. */
  machine_id?: string;
  /** Ours: result of the check at backup time. */
  integrity?: 'ok' | 'failed' | 'unverified' | 'encrypted';
  /** Ours: which check ran ('quick' = PRAGMA quick_check, 'full' = integrity_check, 'off'). */
  check?: VerifyMode;
  /** Ours: why a snapshot that should have been checked was not (e.g. "not checked: larger than 1 TiB"). */
  check_note?: string;
  page_size?: number;
  pages?: number;
  memories?: number;
  /** Ours: index of the last WAL commit frame merged into the snapshot (0 = main file only). */
  wal_frames?: number;
  /** Ours: SQLite version of the checker. */
  sqlite?: string;
  /** Ours (memory/facts.ts): version of the facts below; they are only read when it matches. */
  facts_version?: number;
  /** Ours: memories per tier, and per top-level namespace. */
  memories_by_tier?: Record<string, number>;
  memories_by_namespace?: Record<string, number>;
  /** Ours: rows of memory_links and archived_memories. */
  links?: number;
  archived?: number;
  /** Ours: SHA-256 of the memories and links without recall noise (memory/facts.ts). */
  memories_digest?: string;
}

export const OUR_TOOL = 'ai-memory-backup';

const REQUIRED: [keyof Manifest, 'string' | 'number'][] = [
  ['snapshot', 'string'],
  ['sha256', 'string'],
  ['bytes', 'number'],
  ['source_db', 'string'],
  ['version', 'string'],
  ['created_at', 'string'],
];
const OPTIONAL_NUMBERS = ['page_size', 'pages', 'memories', 'schema_version', 'wal_frames', 'memory_count', 'manifest_version'] as const;
/** ai-memory 1.0's `Option<String>` fields: a string, or null/absent. */
const OPTIONAL_STRINGS = ['backend', 'signed_payload', 'signature', 'signer'] as const;
/** ai-memory 1.0's fields after the six, in its declaration order (serde writes them so). */
const V1_FIELDS = ['backend', 'schema_version', 'memory_count', 'manifest_version', 'signed_payload', 'signature', 'signer'] as const;
/**
 * Our memory facts' version (memory/facts.ts). 2: the per-memory and per-link hashes are summed,
 * not sorted. 3: one SHA-256 per memory over a length-prefixed encoding of its fields
 * (records.contentEncoding), not a JSON text hashed twice. 4: metadata integers past 2^53 are
 * hashed as written (version 3 rounded them to a double, so two metadata texts differing only
 * there had the same digest). Facts of another version are computed again when needed.
 */
export const FACTS_VERSION = 4;
const FACT_FIELDS = ['facts_version', 'memories_by_tier', 'memories_by_namespace', 'links', 'archived', 'memories_digest'] as const;

function factsWellFormed(o: Record<string, unknown>): boolean {
  if (o.facts_version === undefined) return true;
  const counts = (v: unknown): boolean => !!v && typeof v === 'object' && !Array.isArray(v) && Object.values(v).every((n) => typeof n === 'number');
  return (
    typeof o.facts_version === 'number' &&
    counts(o.memories_by_tier) &&
    counts(o.memories_by_namespace) &&
    typeof o.links === 'number' &&
    typeof o.archived === 'number' &&
    typeof o.memories_digest === 'string'
  );
}

/** Pretty JSON with ai-memory's field order first (serde_json::to_string_pretty, 2 spaces): its six, its 1.0 fields, then ours. */
export function serializeManifest(m: Manifest): string {
  const ordered: Record<string, unknown> = {};
  for (const [k] of REQUIRED) ordered[k] = m[k];
  for (const k of V1_FIELDS) if (m[k] !== undefined) ordered[k] = m[k];
  for (const [k, v] of Object.entries(m)) if (!(k in ordered) && v !== undefined) ordered[k] = v;
  return JSON.stringify(ordered, null, 2);
}

/**
 * RFC 3339 in the shape chrono's `to_rfc3339()` gives (what ai-memory writes):
 * `2026-11-24T10:34:56.123+00:00`.
 */
export function rfc3339(d: Date): string {
  return d.toISOString().replace('Z', '+00:00');
}

/** ai-memory 1.0's BackupManifest: 0.7's six fields, then its Options (every other key is skipped by serde). */
const AI_MEMORY_MANIFEST_FIELDS: readonly PayloadFieldSpec[] = [
  { name: 'snapshot', kind: 'string' },
  { name: 'sha256', kind: 'string' },
  { name: 'bytes', kind: 'u64' },
  { name: 'source_db', kind: 'string' },
  { name: 'version', kind: 'string' },
  { name: 'created_at', kind: 'string' },
  { name: 'backend', kind: 'string', optional: true },
  { name: 'schema_version', kind: 'i64', optional: true },
  { name: 'memory_count', kind: 'i64', optional: true },
  { name: 'manifest_version', kind: 'i64', optional: true },
  { name: 'signed_payload', kind: 'string', optional: true },
  { name: 'signature', kind: 'string', optional: true },
  { name: 'signer', kind: 'string', optional: true },
];

const STRICT_UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * Parses and type-checks a manifest; `where` names the file in error messages. Given its
 * bytes (as every reader of a manifest file does), bytes that are not UTF-8 are refused as
 * ai-memory refuses them (`fs::read_to_string`, then serde_json): decoded as text first, each
 * became U+FFFD and the manifest read as valid here while ai-memory's restore refused it.
 */
export function parseManifest(input: string | Uint8Array, where: string): Manifest {
  let text: string;
  if (typeof input === 'string') text = input;
  else {
    try {
      text = STRICT_UTF8.decode(input);
    } catch {
      throw new BackupError('MANIFEST_INVALID', `Manifest ${where} is not UTF-8 text, which ai-memory refuses.`, {
        hint: 'The manifest is damaged; verify the snapshot another way, or restore with --skip-verify if you trust it.',
      });
    }
  }
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new BackupError('MANIFEST_INVALID', `Manifest ${where} is not valid JSON (${errorMessage(e)}).`, {
      hint: 'The manifest is damaged; verify the snapshot another way, or restore with --skip-verify if you trust it.',
    });
  }
  if (!v || typeof v !== 'object' || Array.isArray(v)) {
    throw new BackupError('MANIFEST_INVALID', `Manifest ${where} is not a JSON object.`);
  }
  const o = v as Record<string, unknown>;
  for (const [key, type] of REQUIRED) {
    if (!(key in o)) throw new BackupError('MANIFEST_INVALID', `Manifest ${where} has no "${key}" field.`);
    if (typeof o[key] !== type) {
      throw new BackupError('MANIFEST_INVALID', `Manifest ${where}: "${key}" should be a ${type}, found ${JSON.stringify(o[key])}.`);
    }
  }
  if (!/^[0-9a-fA-F]{64}$/.test(o.sha256 as string)) {
    throw new BackupError('MANIFEST_INVALID', `Manifest ${where}: "sha256" is not 64 hex digits.`);
  }
  const bytes = o.bytes as number;
  if (!Number.isSafeInteger(bytes) || bytes < 0) {
    throw new BackupError('MANIFEST_INVALID', `Manifest ${where}: "bytes" should be a non-negative integer, found ${bytes}.`);
  }
  // serde reads JSON null as None for ai-memory's Option fields: the same as absent.
  for (const k of [...OPTIONAL_NUMBERS, ...OPTIONAL_STRINGS]) if (o[k] === null) delete o[k];
  for (const k of OPTIONAL_NUMBERS) {
    if (o[k] !== undefined && typeof o[k] !== 'number') {
      throw new BackupError('MANIFEST_INVALID', `Manifest ${where}: "${k}" should be a number.`);
    }
  }
  for (const k of OPTIONAL_STRINGS) {
    if (o[k] !== undefined && typeof o[k] !== 'string') {
      throw new BackupError('MANIFEST_INVALID', `Manifest ${where}: "${k}" should be a string.`);
    }
  }
  // ai-memory (0.7 and 1.0) reads a manifest with serde_json into its BackupManifest and refuses
  // what that refuses — a duplicate field, 4096.0 for a byte count, a lone surrogate — where
  // JSON.parse takes the last duplicate and reads 4096.0 as 4096 (serdePayload.ts).
  try {
    readSerdeStruct(typeof input === 'string' ? Buffer.from(input, 'utf8') : input, AI_MEMORY_MANIFEST_FIELDS, { sequence: false });
  } catch (e) {
    if (!(e instanceof PayloadReadError)) throw e;
    throw new BackupError('MANIFEST_INVALID', `Manifest ${where} is not one ai-memory reads (${e.message})${e.beyondUs ? '; refused here, though ai-memory reads it' : ''}.`, {
      hint: e.beyondUs
        ? "Restore it with ai-memory's own `restore`, or with --skip-verify if you trust it."
        : 'ai-memory refuses it too: the manifest was edited or damaged. Restore another snapshot, or restore this one with --skip-verify if you trust it.',
    });
  }
  const m = { ...(o as unknown as Manifest), sha256: (o.sha256 as string).toLowerCase() };
  // Where it was taken is informational too: a value that is not a string says nothing.
  for (const k of ['host', 'machine_id'] as const) if (typeof m[k] !== 'string' || !m[k]) delete m[k];
  // Facts are informational: malformed ones are dropped, never a reason to refuse a snapshot.
  if (!factsWellFormed(o)) for (const k of FACT_FIELDS) delete m[k];
  return m;
}

/**
 * A manifest may only describe the snapshot it sits beside: its `snapshot` field must be
 * that file's bare name — never another file, never a path (`../x.db`, `/etc/x`).
 */
export function checkManifestNames(m: Manifest, snapshotFileName: string, where: string): void {
  const s = m.snapshot;
  if (s.includes('/') || s.includes('\\') || s === '..' || s === '.' || /^[A-Za-z]:/.test(s) || s.includes('\0')) {
    throw new BackupError('MANIFEST_FOREIGN', `Manifest ${where} names a path outside its folder ("${s}"); refusing to use it.`, {
      hint: 'A manifest must name the snapshot beside it. This one may have been tampered with.',
    });
  }
  if (s !== snapshotFileName) {
    throw new BackupError('MANIFEST_FOREIGN', `Manifest ${where} describes "${s}", not ${snapshotFileName}; refusing to use it.`, {
      hint: 'Each snapshot needs its own <stem>.manifest.json. Restore with --skip-verify only if you trust the snapshot.',
    });
  }
}
