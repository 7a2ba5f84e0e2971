/**
 * The state of a snapshot as every surface shows it — the CLI's `list`, the Snapshots view,
 * the restore pick list: one decision, one wording, one icon name.
 */
import { checkLabel } from '../common/checks';
import type { SnapshotEntry } from './catalog';

export type SnapshotState = 'verified' | 'unverified' | 'mismatch' | 'noManifest' | 'encrypted';

export interface SnapshotVerdict {
  state: SnapshotState;
  /** Why it has that state (tooltips, `list`). */
  detail: string;
}

/** The result of the last explicit check of this exact file ("Verify Snapshot", `verify`), if any. */
export interface LastCheck {
  ok: boolean;
  detail: string;
}

/** What the state is called. */
export const STATE_LABEL: Record<SnapshotState, string> = {
  verified: 'Verified',
  unverified: 'Not verified',
  mismatch: 'Damaged — does not match its manifest',
  noManifest: 'Manifest missing or unusable',
  encrypted: 'Encrypted — integrity not checkable',
};

/** The codicon of each state (the view adds its theme colour; pick lists use `$(name)`). */
export const STATE_ICON: Record<SnapshotState, string> = {
  verified: 'pass-filled',
  unverified: 'circle-large-outline',
  mismatch: 'error',
  noManifest: 'warning',
  encrypted: 'lock',
};

export function snapshotVerdict(e: SnapshotEntry, last?: LastCheck): SnapshotVerdict {
  if (e.unsafe) return { state: 'mismatch', detail: 'a symlink leading outside the backup folder: never restored' };
  if (e.manifestState === 'missing') return { state: 'noManifest', detail: 'no manifest: cannot be checked' };
  if (e.manifestState !== 'ok') return { state: 'noManifest', detail: `manifest ${e.manifestState}: ${e.manifestError ?? ''}`.trim().replace(/:$/, '') };
  if (e.sizeMatches === false) return { state: 'mismatch', detail: `size ${e.size} differs from the manifest's ${e.manifest?.bytes}` };
  if (last && !last.ok) return { state: 'mismatch', detail: last.detail };
  if (e.manifest?.integrity === 'encrypted') return { state: 'encrypted', detail: 'encrypted database: copied consistently, integrity not checkable' };
  if (last?.ok) return { state: 'verified', detail: last.detail };
  if (e.manifest?.integrity === 'ok') return { state: 'verified', detail: `${checkLabel(e.manifest.check === 'full' ? 'full' : 'quick')} ok when it was made` };
  return { state: 'unverified', detail: e.manifest?.tool ? 'not checked when it was made (--verify off)' : "made by ai-memory's own CLI: not integrity-checked yet" };
}
