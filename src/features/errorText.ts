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
  operation: 'backup' | 'restore' | 'verify';
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

/** A hint written for the CLI: it names a flag or the CLI's own path sources. */
export function speaksCli(hint: string): boolean {
  return /(^|[\s(`])--[a-z]/.test(hint) || hint.includes('$AI_MEMORY_DB') || /`(backup|list|restore|verify)`/.test(hint);
}

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
  // A database problem is about the live database in backup; in restore/verify, NOT_A_DATABASE is about the snapshot.
  if (DB_CODES.includes(code) && (ctx.operation === 'backup' || code !== 'NOT_A_DATABASE')) return databaseHint(ctx.db);
  if (FOLDER_CODES.includes(code) && ctx.operation === 'backup') {
    const where = ctx.directorySetting ? 'Choose another folder in the setting aiMemory.backup.directory.' : 'Snapshots go to `backups` beside the database; choose another folder with the setting aiMemory.backup.directory.';
    return code === 'NO_SPACE' ? `Free some disk space, or: ${where}` : where;
  }
  if (code === 'IN_USE') return 'Stop your agent (or the ai-memory server), then restore again; restart it afterwards.';
  if ((SNAPSHOT_CODES.includes(code) || code === 'NOT_A_DATABASE') && ctx.operation === 'restore') {
    return 'Restore another snapshot (Verify Snapshot checks one without restoring it).'; // the engine's state says that nothing was changed
  }
  if (code === 'TOO_LARGE' || code === 'UNVERIFIABLE') {
    return 'VS Code restores only snapshots it can check. To restore this one with only the manifest check, run `ai-memory-backup restore --skip-integrity` in a terminal.';
  }
  if (code === 'SNAPSHOT_NOT_FOUND' || code === 'NO_SNAPSHOTS') return 'Refresh the Snapshots view and pick a snapshot that is there.';
  if (engineHint && !speaksCli(engineHint)) return engineHint;
  return undefined;
}

/** "message. hint" with the punctuation in place, and the engine's note of where things are. */
export function failureText(message: string, hint: string | undefined, state?: string): string {
  return [message, state, hint].filter((s): s is string => !!s && !!s.trim()).map(sentence).join(' ');
}
