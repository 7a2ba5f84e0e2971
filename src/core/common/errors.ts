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
    const code = (err as NodeJS.ErrnoException).code;
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
  if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS') {
    return new BackupError('TARGET_NOT_WRITABLE', `Permission denied while ${action} ${path}.`, {
      hint: 'Check the permissions of that path, or choose another folder.',
      cause: e,
    });
  }
  return new BackupError('IO', `Failed while ${action} ${path}: ${detail}`, { cause: e });
}
