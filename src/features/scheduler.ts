/**
 * Scheduled backups every `aiMemory.backup.intervalMinutes` (default 60, like ai-memory's
 * hourly timer; 0 = off). The next run is due one interval after the folder's *last*
 * backup — whichever window (or tool) made it — so several windows converge on the same
 * moments, and each run asks the engine to skip if another window just did it (folder
 * lock + state file): one backup per interval, not one per window. A run missed while the
 * laptop slept happens as soon as the timer fires after waking, or at the next start.
 */
import * as vscode from 'vscode';
import { Disposable } from '../util/disposable';
import type { BackupService } from './backupService';
import type { DatabaseLocator } from './databaseLocator';
import { readSettings } from './settings';
import type { SnapshotCatalog } from './snapshotCatalog';

/** First check after start-up: leave the window time to settle. */
const STARTUP_DELAY_MS = 5_000;

export class Scheduler extends Disposable {
  nextRun: number | undefined;
  private timer: NodeJS.Timeout | undefined;
  private started = false;
  /** No run before this (start-up settling, or the back-off after a failure). */
  private notBefore = 0;

  constructor(
    private readonly service: BackupService,
    private readonly locator: DatabaseLocator,
    private readonly catalog: SnapshotCatalog,
    private readonly log: vscode.LogOutputChannel,
  ) {
    super();
    this._register({ dispose: () => this.clear() });
    this._register(catalog.onDidChange(() => this.started && this.plan()));
    this._register(locator.onDidChange(() => this.started && this.plan()));
  }

  get intervalMinutes(): number {
    return readSettings().intervalMinutes;
  }

  start(): void {
    this.started = true;
    this.notBefore = Date.now() + STARTUP_DELAY_MS + Math.floor(Math.random() * 2_000);
    this.plan();
  }

  private clear(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** (Re)computes the next run from the folder's last backup. */
  plan(): void {
    this.clear();
    this.nextRun = undefined;
    const interval = this.intervalMinutes;
    if (interval <= 0 || !this.locator.current || this.isDisposed) return;
    const last = this.catalog.lastBackupTime();
    const due = last === undefined ? Date.now() : last + interval * 60_000;
    const at = Math.max(due, this.notBefore, Date.now());
    this.nextRun = at;
    // setTimeout caps at ~24.8 days; re-plan in steps for very long intervals.
    const delay = Math.min(at - Date.now(), 2 ** 31 - 1);
    this.timer = setTimeout(() => void this.fire(), Math.max(0, delay));
  }

  private async fire(): Promise<void> {
    this.timer = undefined;
    const interval = this.intervalMinutes;
    if (interval <= 0 || !this.locator.current) return;
    const last = this.catalog.lastBackupTime();
    if (last !== undefined && Date.now() < last + interval * 60_000 - 1_000) {
      this.plan(); // another window ran meanwhile
      return;
    }
    if (this.service.isRunning) {
      this.notBefore = Date.now() + 60_000;
      this.plan();
      return;
    }
    this.log.info(`schedule: backup due (every ${interval} min)`);
    // Another window may be doing the same right now; whoever takes the folder lock first
    // runs, the others find a fresh state file and skip.
    await this.service.backup({ reason: 'scheduled', skipIfRecentSeconds: Math.floor(interval * 60 * 0.9) });
    await this.catalog.reload();
    // After a failure, try again in a tenth of the interval (at least a minute) rather than a whole one.
    this.notBefore = Date.now() + (this.service.lastFailure ? Math.max(60_000, interval * 6_000) : 1_000);
    this.plan();
  }
}
