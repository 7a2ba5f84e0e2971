/**
 * The backup folder's state file: when the last backup run finished and what it produced
 * (also when nothing new was written because the database was unchanged). The status bar
 * and the scheduler of every VS Code window read it; `--skip-if-recent` uses it to keep one
 * scheduled backup per interval across windows.
 */
import { join } from 'node:path';
import { readSmallRegular } from '../common/regularFile';

export const STATE_NAME = '.ai-memory-backup.state.json';

export interface BackupState {
  last_run: string;
  status: 'created' | 'unchanged';
  snapshot: string;
  sha256: string;
}

export async function readState(dir: string): Promise<BackupState | undefined> {
  try {
    const o = JSON.parse(await readSmallRegular(join(dir, STATE_NAME), 64 * 1024)) as Partial<BackupState>;
    return typeof o.last_run === 'string' && typeof o.snapshot === 'string' ? (o as BackupState) : undefined;
  } catch {
    return undefined;
  }
}
