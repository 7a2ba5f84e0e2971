/**
 * Every code a BackupError can carry: the CLI prints it in its --json error line and the
 * extension chooses the notification's buttons by it. A list (not only a type) so the
 * protocol can check what it receives (src/cli/protocol.ts).
 */
export const ERROR_CODES = [
  'USAGE',
  'DB_NOT_FOUND',
  'DB_IS_DIRECTORY',
  'NOT_A_DATABASE',
  'DB_EMPTY',
  'DB_BUSY',
  'HOT_JOURNAL',
  'TARGET_NOT_DIRECTORY',
  'TARGET_NOT_WRITABLE',
  'NO_SPACE',
  'LOCKED',
  'SNAPSHOT_NOT_FOUND',
  'NO_SNAPSHOTS',
  'UNSAFE_SNAPSHOT_PATH',
  'MANIFEST_MISSING',
  'MANIFEST_INVALID',
  'MANIFEST_FOREIGN',
  'SIZE_MISMATCH',
  'SHA_MISMATCH',
  'INTEGRITY_FAILED',
  'UNVERIFIABLE',
  'TOO_LARGE',
  'IN_USE',
  'RESTORE_FAILED',
  /** An archived snapshot cannot be rebuilt: a pack or page index is damaged or missing (the message names it). */
  'ARCHIVE_DAMAGED',
  'CANCELLED',
  'TIMEOUT',
  /** ai-memory 1.0 signatures (store/signing.ts): a signature that must not be trusted; no override. */
  'SIGNATURE_REFUSED',
  /** An unsigned manifest while an operator public key is configured (--allow-unsigned-manifest). */
  'MANIFEST_UNSIGNED',
  /** The operator signing key is unusable (readable by others, wrong size, mismatched pair). */
  'SIGNING_KEY',
  /** The snapshot's schema is newer than the database it would replace (--force). */
  'SCHEMA_NEWER',
  'NO_CREDENTIALS',
  'REMOTE_UNREACHABLE',
  'REMOTE_AUTH',
  'REMOTE_NO_BUCKET',
  'REMOTE_DENIED',
  'REMOTE_QUOTA',
  'REMOTE_UNAVAILABLE',
  'REMOTE_MISMATCH',
  'REMOTE_ERROR',
  'NOT_AI_MEMORY',
  'MEMORY_NOT_FOUND',
  /** restore --from a file whose -wal (or rollback journal) beside it holds part of its state. */
  'SOURCE_HAS_WAL',
  'IO',
] as const;
