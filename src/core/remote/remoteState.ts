/**
 * What each off-machine target holds and how its last copy went, kept beside the snapshots
 * in `.ai-memory-backup.remote.json` (temp → fsync → rename): the extension's tree and
 * status bar read it, and the next run (CLI or extension) finishes what a failed one left —
 * pending copies, a multipart upload to abandon — after a backoff that grows with each
 * consecutive failure.
 */
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../store/atomicFs';

export const REMOTE_STATE_NAME = '.ai-memory-backup.remote.json';

export interface RemoteSnapshotInfo {
  name: string;
  bytes: number;
}

export interface TargetState {
  label: string;
  kind: 's3' | 'folder';
  /** copying: a run is at work (pid); copied: the target holds every local snapshot; failed: see error, retried at next_retry. */
  status: 'copying' | 'copied' | 'failed';
  pid?: number;
  last_attempt: string;
  last_success?: string;
  /** Consecutive failures (0 after a success). */
  attempts: number;
  next_retry?: string;
  error?: { code: string; message: string; hint?: string };
  /** Local snapshots the target holds complete (snapshot + manifest), as of the last run. */
  copied: string[];
  /** Local snapshots still to copy. */
  pending: string[];
  /** Complete snapshots on the target that are not in the local folder (another machine's, or a wiped disk's). */
  remote_only: RemoteSnapshotInfo[];
  /** Old snapshots retention wanted to delete on the target but the server refused. */
  refused_deletes: string[];
  /** Whose each snapshot on the target is (its manifest's source_db; '' unknown), learnt from the target's manifests. */
  owners?: Record<string, string>;
  /** What the last run's listing said of each object it found ours and whole (sync.ts stampOf): a rewritten one is checked again. */
  stamps?: Record<string, string>;
  /** A multipart upload a run started and did not finish; abandoned by the next run. */
  upload?: { key: string; uploadId: string };
}

export interface RemoteState {
  targets: Record<string, TargetState>;
}

export async function readRemoteState(dir: string): Promise<RemoteState> {
  try {
    const o = JSON.parse(await fsp.readFile(join(dir, REMOTE_STATE_NAME), 'utf8')) as Partial<RemoteState>;
    if (o && typeof o.targets === 'object' && o.targets) return { targets: o.targets };
  } catch {
    // missing or damaged: start over (the next sync lists the target again anyway)
  }
  return { targets: {} };
}

/** Read-modify-write of one target's entry. */
export async function updateTargetState(dir: string, id: string, change: (t: TargetState | undefined) => TargetState): Promise<TargetState> {
  const s = await readRemoteState(dir);
  const t = change(s.targets[id]);
  s.targets[id] = t;
  await writeFileAtomic(join(dir, REMOTE_STATE_NAME), `${JSON.stringify(s, null, 2)}\n`, 0o600);
  return t;
}

/** 1 min, 2, 4 … up to 6 h after the n-th consecutive failure. */
export function backoffMs(attempts: number): number {
  return Math.min(6 * 3600_000, 60_000 * 2 ** Math.max(0, attempts - 1));
}
