/**
 * Every failure the engine reports is a BackupError: `message` says what happened,
 * `hint` says what the user can do about it, `code` lets the CLI and the extension
 * react (exit codes, buttons) without parsing text.
 */
import { ERROR_CODES } from './errorCodes';

export { ERROR_CODES };
export type ErrorCode = (typeof ERROR_CODES)[number];

export class BackupError extends Error {
  readonly code: ErrorCode;
  readonly hint: string | undefined;
  /** Where things are after a failure (e.g. "your database is back at …"). */
  readonly state: string | undefined;

  constructor(code: ErrorCode, message: string, opts: { hint?: string; state?: string; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'BackupError';
    this.code = code;
    this.hint = opts.hint;
    this.state = opts.state;
  }
}

export function isBackupError(e: unknown): e is BackupError {
  return e instanceof BackupError;
}

/** The message of anything thrown, with Node's errno code when the message lacks it. */
export function errorMessage(err: unknown): string {
  if (err instanceof Error) {
    // Node fs messages usually start with their code ("EACCES: permission
    // denied, open …"); add the code only when the message lacks it.
    // Ours (BackupError) say what happened in words; their code is for programs.
    const code = err instanceof BackupError ? undefined : (err as NodeJS.ErrnoException).code;
    return code && !err.message.includes(code) ? `${code}: ${err.message}` : err.message;
  }
  return String(err);
}

/** Node's errno-style error, narrowed without `any`. */
export function errnoCode(e: unknown): string | undefined {
  if (e && typeof e === 'object' && 'code' in e && typeof (e as { code: unknown }).code === 'string') {
    return (e as { code: string }).code;
  }
  return undefined;
}

/** Turns an I/O failure into a BackupError that says which file and what to do. */
export function ioError(action: string, path: string, e: unknown): BackupError {
  if (isBackupError(e)) return e;
  const code = errnoCode(e);
  const detail = errorMessage(e);
  if (code === 'ENOSPC' || code === 'EDQUOT') {
    return new BackupError('NO_SPACE', `No space left while ${action} ${path}.`, {
      hint: 'Free some disk space (or choose another folder) and try again.',
      cause: e,
    });
  }
  // Reading needs other advice than writing: "choose another folder" means nothing for the database itself.
  const reads = /^(opening|reading|checking|listing|resolving|hashing)\b/.test(action);
  const did = `${action.charAt(0).toUpperCase()}${action.slice(1)} ${path}`;
  if (code === 'EROFS') {
    return new BackupError('TARGET_NOT_WRITABLE', `${did} failed: it is on a read-only file system.`, {
      hint: 'Choose a folder on a writable disk, or mount it writable.',
      cause: e,
    });
  }
  if (code === 'EACCES' || code === 'EPERM') {
    return new BackupError('TARGET_NOT_WRITABLE', `Permission denied while ${action} ${path}.`, {
      hint: reads
        ? 'Check that you may read it (its mode, and that its folders let you in), or run as the user who owns it.'
        : 'Check that you may write there (the folder\'s mode and owner), or choose another folder.',
      cause: e,
    });
  }
  if (code === 'EFBIG') {
    // FAT32 (most USB drives and SD cards) holds no file of 4 GiB or more; a quota or ulimit -f can cap file sizes too.
    return new BackupError('IO', `${did} failed: the file is larger than that file system (or a limit on file sizes) allows; a FAT32 drive holds no file of 4 GiB or more.`, {
      hint: reads ? 'Read it where it was written, or copy it to a disk that holds large files.' : 'Choose a folder on a disk formatted exFAT, NTFS, APFS or ext4 (or reformat the drive), or lift the limit (ulimit -f).',
      cause: e,
    });
  }
  if (code === 'ELOOP') {
    return new BackupError('IO', `${did} failed: a loop of symbolic links (or too many in a row).`, { hint: 'Fix or remove the link, or give the real path.', cause: e });
  }
  if (code === 'ENOTDIR') {
    return new BackupError('IO', `${did} failed: a part of that path is a file where a folder should be.`, { hint: 'Check the path; a folder in it is a file.', cause: e });
  }
  if (code === 'EEXIST') {
    return new BackupError('IO', `${did} failed: something is already there.`, { hint: 'Move it away, or give another path.', cause: e });
  }
  return new BackupError('IO', `Failed while ${action} ${path}: ${detail}`, { cause: e });
}
