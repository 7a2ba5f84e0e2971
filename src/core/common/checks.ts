/**
 * How a snapshot is checked, and the one name each check goes by in every message
 * (CLI lines, manifests, notifications, tooltips).
 */

/** `quick` = PRAGMA quick_check, `full` = PRAGMA integrity_check, `off` = no check. */
export type VerifyMode = 'quick' | 'full' | 'off';

/** A check that actually runs (restore and verify never run `off`). */
export type CheckMode = Exclude<VerifyMode, 'off'>;

export function isVerifyMode(v: unknown): v is VerifyMode {
  return v === 'quick' || v === 'full' || v === 'off';
}

/** The SQLite pragma a mode runs, as users see it in messages: `quick_check` / `integrity_check`. */
export function checkLabel(mode: CheckMode | undefined): 'quick_check' | 'integrity_check' {
  return mode === 'full' ? 'integrity_check' : 'quick_check';
}
