/**
 * What an engine failure says in VS Code. The engine (src/core) speaks the CLI's words in its
 * hints ("Check the path (--db, $AI_MEMORY_DB or …)", "--force restores anyway"); the
 * extension never passes those flags the user's way, so for each error code we say what to
 * do here instead — naming where the database path came from (the setting, which MCP
 * file, the user's choice) and the setting that changes the backup folder. No `vscode`
 * import: plain-Node tests check every code (test/unit/errorText.test.ts).
 */
import type { ErrorCode } from '../core/common/errors';

/** Where the database path came from, as the locator knows it. */
export interface DatabaseOrigin {
  via: 'setting' | 'remembered' | 'discovered';
  /** e.g. "setting aiMemory.databasePath (User)", ".vscode/mcp.json (server "memory")". */
  source: string;
}

export interface FailureContext {
  /**
   * What the user was doing: a backup, a restore, Verify Snapshot; `open` — Open Snapshot,
   * a memory document, the memory browser, Compare (the engine's inspect and diff);
   * `extract` — Restore Selected Memories… (the import file); `copy` — an off-machine copy
   * after a backup or Retry (push; also a failure the target's state file recorded);
   * `setUpCopy` — the connection test of Set Up Off-Machine Copies…; `download` — Restore of
   * a snapshot only on an off-machine target (pull).
   */
  operation: 'backup' | 'restore' | 'verify' | 'open' | 'extract' | 'copy' | 'setUpCopy' | 'download';
  db?: DatabaseOrigin;
  /** The aiMemory.backup.directory setting is set (else the folder is `backups` beside the database). */
  directorySetting?: boolean;
}

/** Ends a sentence with a full stop unless it has its own punctuation (messages are joined). */
export function sentence(s: string): string {
  const t = s.trim();
  if (!t) return t;
  return /[.!?…:]$/.test(t) ? t : `${t}.`;
}

/**
 * A text written for the CLI: it names a flag, the CLI itself (`ai-memory-backup list`), one
 * of its commands in backticks (`list --remote …`, `verify`), its path sources, or the AWS
 * profile the extension never uses (it gives the engine only the keys the setup saved).
 */
export function speaksCli(text: string): boolean {
  return (
    /(^|[\s(`"'])--[a-z]/.test(text) ||
    text.includes('$AI_MEMORY_DB') ||
    text.includes('ai-memory-backup') ||
    /`(backup|list|restore|verify|inspect|diff|extract|push|pull|prune|materialize)\b/.test(text) ||
    text.includes('AWS_PROFILE')
  );
}

/** The VS Code words for a flag an engine message names ("--out x is a folder" in extract). */
const FLAG_WORDS: Record<string, string> = {
  out: 'the file',
  remote: 'the off-machine target',
  endpoint: 'the endpoint',
  region: 'the region',
  profile: 'the AWS profile',
  keep: 'the setting aiMemory.backup.keep',
  plain: 'the setting aiMemory.backup.plain',
  db: 'the database path',
  to: 'the backup folder',
  from: 'the snapshot',
  snapshot: 'the snapshot',
  latest: 'the newest snapshot',
  verify: 'the setting aiMemory.backup.verify',
  retention: 'the setting aiMemory.backup.retention',
  force: 'Restore Anyway',
  'allow-unsigned-manifest': 'Restore Unsigned Snapshot',
};

/**
 * An engine message in VS Code's words: a flag it names becomes what the user set or chose
 * here ("--out /x is a folder" → "The file /x is a folder", "--remote takes s3://…" → "The
 * off-machine target takes s3://…", "--keep must be …" → "The setting aiMemory.backup.keep
 * must be …"). Messages without a flag are returned as they are.
 */
export function extensionMessage(message: string): string {
  return message.replace(/(^|[\s(`"'])--([a-z][a-z0-9-]*)/g, (_m, pre: string, flag: string, at: number) => {
    const words = FLAG_WORDS[flag] ?? `the ${flag.replace(/-/g, ' ')} value`;
    const start = at === 0 || /[.!?]\s*$/.test(message.slice(0, at + pre.length));
    return pre + (start ? words.charAt(0).toUpperCase() + words.slice(1) : words);
  });
}

const COPY_OPERATIONS: readonly string[] = ['copy', 'setUpCopy', 'download'] satisfies FailureContext['operation'][];
const SET_UP = 'AI Memory: Set Up Off-Machine Copies…';
const REFRESH = 'Refresh the Snapshots view (AI Memory: Refresh)';

const DB_CODES: readonly string[] = ['DB_NOT_FOUND', 'DB_IS_DIRECTORY', 'NOT_A_DATABASE', 'DB_EMPTY'] satisfies ErrorCode[];
const FOLDER_CODES: readonly string[] = ['TARGET_NOT_DIRECTORY', 'TARGET_NOT_WRITABLE', 'NO_SPACE'] satisfies ErrorCode[];
const SNAPSHOT_CODES: readonly string[] = [
  'MANIFEST_MISSING',
  'MANIFEST_INVALID',
  'MANIFEST_FOREIGN',
  'SIZE_MISMATCH',
  'SHA_MISMATCH',
  'INTEGRITY_FAILED',
  'UNSAFE_SNAPSHOT_PATH',
] satisfies ErrorCode[];

/** Where to fix the database path, in the words of where it came from. */
export function databaseHint(db: DatabaseOrigin | undefined): string {
  if (!db) return 'Choose the database with AI Memory: Select Database….';
  switch (db.via) {
    case 'setting':
      return `The path is the ${db.source}: correct it, or clear it to find the database automatically.`;
    case 'remembered':
      return 'You chose this database with Select Database…: choose another one there.';
    default:
      return `The path comes from ${db.source}: correct it there, or choose another database with Select Database….`;
  }
}

/** The hint the extension shows for an engine failure (undefined: nothing useful to add). */
export function extensionHint(code: string, engineHint: string | undefined, ctx: FailureContext): string | undefined {
  const op = ctx.operation;
  // A database problem is about the live database in backup; in restore/verify, NOT_A_DATABASE is about the snapshot.
  if (DB_CODES.includes(code) && (op === 'backup' || code !== 'NOT_A_DATABASE')) return databaseHint(ctx.db);
  if (FOLDER_CODES.includes(code) && op === 'backup') {
    const where = ctx.directorySetting ? 'Choose another folder in the setting aiMemory.backup.directory.' : 'Snapshots go to `backups` beside the database; choose another folder with the setting aiMemory.backup.directory.';
    return code === 'NO_SPACE' ? `Free some disk space, or: ${where}` : where;
  }
  if (code === 'IN_USE') return 'Stop your agent (or the ai-memory server), then restore again; restart it afterwards.';
  // Restore Anyway (in use) never overrides this: the newer columns would be dropped.
  if (code === 'SCHEMA_NEWER' && op === 'restore') return 'Upgrade ai-memory first. To restore it anyway (its newer columns are dropped), run `ai-memory-backup restore --force` in a terminal.';
  // The database the restore would replace is another program's: its path is what to correct.
  if (code === 'NOT_AI_MEMORY' && op === 'restore') return databaseHint(ctx.db);
  if ((SNAPSHOT_CODES.includes(code) || code === 'NOT_A_DATABASE') && op === 'restore') {
    return 'Restore another snapshot (Verify Snapshot checks one without restoring it).'; // the engine's state says that nothing was changed
  }
  if ((code === 'TOO_LARGE' || code === 'UNVERIFIABLE') && (op === 'restore' || op === 'verify')) {
    return 'VS Code restores only snapshots it can check. To restore this one with only the manifest check, run `ai-memory-backup restore --skip-integrity` in a terminal.';
  }
  // Open Snapshot / Compare: the snapshot is not a database we can read (its folder's hint names --db).
  if ((SNAPSHOT_CODES.includes(code) || code === 'NOT_A_DATABASE' || code === 'ARCHIVE_DAMAGED') && op === 'open') {
    return 'Open another snapshot; AI Memory: Verify Snapshot checks this one.';
  }
  // Restore Selected Memories… names its own file (in the extension's storage): a file there, or a folder, is not the user's to rename.
  if ((code === 'USAGE' || code === 'TARGET_NOT_DIRECTORY') && op === 'extract') {
    return 'Run AI Memory: Restore Selected Memories… again: it writes the memories to a new file.';
  }
  if (COPY_OPERATIONS.includes(op)) {
    // The extension gives the engine only the keys the setup saved (never AWS_PROFILE, ~/.aws or --profile).
    if (code === 'NO_CREDENTIALS') return `Enter the access key id and secret access key again with ${SET_UP}`;
    if (code === 'REMOTE_AUTH') return `${sentence(engineHint && !speaksCli(engineHint) ? engineHint : 'The server refused the keys.')} ${SET_UP} asks for them again.`;
    if (code === 'USAGE' && op === 'setUpCopy') return `Run ${SET_UP} again and give s3://bucket/prefix (the keys have fields of their own) or a folder.`;
    if (code === 'LOCKED' && op === 'download') return 'A different file of that name is in the backup folder: move it (and its manifest) away — AI Memory: Open Backup Folder shows it — then restore again.';
    if ((code === 'SNAPSHOT_NOT_FOUND' || code === 'NO_SNAPSHOTS') && op === 'download') return `${REFRESH}: it lists what the off-machine target holds now.`;
    if (code === 'REMOTE_MISMATCH' && engineHint && speaksCli(engineHint)) return 'Check the local snapshot with AI Memory: Verify Snapshot; the copy is tried again next time.';
  }
  if (code === 'SNAPSHOT_NOT_FOUND' || code === 'NO_SNAPSHOTS') return `${REFRESH} and pick a snapshot that is there.`;
  if (engineHint && !speaksCli(engineHint)) return engineHint;
  return undefined;
}

/** "message. hint" with the punctuation in place, and the engine's note of where things are. */
export function failureText(message: string, hint: string | undefined, state?: string): string {
  return [message, state, hint].filter((s): s is string => !!s && !!s.trim()).map(sentence).join(' ');
}

/** What an engine failure carries (a BackupError, the extension's EngineError, a target's recorded error). */
export interface FailureLike {
  code: string;
  message: string;
  hint?: string;
  state?: string;
}

function isFailureLike(e: unknown): e is FailureLike {
  return !!e && typeof e === 'object' && typeof (e as FailureLike).code === 'string' && typeof (e as FailureLike).message === 'string';
}

/**
 * Any failure as VS Code says it: its message with a flag it names in VS Code's words, the
 * hint for where the user is (never the CLI's), and both as one text for a notification, a
 * document, a tree item's tooltip or the log. Anything thrown that is not an engine failure
 * keeps its message and gets no hint.
 */
export function explainFailure(e: unknown, ctx: FailureContext): { message: string; hint: string | undefined; text: string } {
  if (!isFailureLike(e)) {
    const message = extensionMessage(e instanceof Error ? e.message : String(e));
    return { message, hint: undefined, text: failureText(message, undefined) };
  }
  const message = extensionMessage(e.message);
  const hint = extensionHint(e.code, e.hint, ctx);
  const state = e.state === undefined ? undefined : extensionMessage(e.state);
  return { message, hint, text: failureText(message, hint, state) };
}
