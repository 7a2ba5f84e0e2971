/**
 * `$(database) AI Memory 5 min` — what it is and when the last backup ran (the item sits
 * among other extensions' items: a bare icon and "just now" said neither). Tooltip: the last snapshot, its size
 * and verification, the next scheduled run. Click: back up now. A spinner while a backup
 * runs; warning colours when the last backup failed or is older than twice the interval;
 * hidden while no database is known.
 */
import * as vscode from 'vscode';
import { Commands } from '../contributionIds';
import { formatAge, formatAgeShort, formatBytes } from '../core/common/format';
import { Disposable } from '../util/disposable';
import { tildify, type DatabaseLocator } from './databaseLocator';
import type { SnapshotCatalog } from './snapshotCatalog';
import { localTime } from './snapshotsTree';

/** What the item shows of the schedule (the Scheduler). */
export interface ScheduleInfo {
  readonly intervalMinutes: number;
  readonly nextRun: number | undefined;
}

/** What the item shows of the backups (the BackupService): what runs now, the last failure. */
export interface BackupActivity {
  readonly busy: string | undefined;
  readonly lastFailure: { message: string; at: number; db: string } | undefined;
  readonly onDidChange: vscode.Event<void>;
}

export class StatusBar extends Disposable {
  private readonly item: vscode.StatusBarItem;
  /** Off-machine copies that failed (set when copies are configured). */
  copyFailures: () => { target: string; message: string }[] = () => [];

  constructor(
    private readonly locator: DatabaseLocator,
    private readonly catalog: SnapshotCatalog,
    private readonly activity: BackupActivity,
    private readonly schedule: ScheduleInfo,
  ) {
    super();
    this.item = this._register(vscode.window.createStatusBarItem('aiMemory.status', vscode.StatusBarAlignment.Left, 10));
    this.item.name = 'AI Memory Backup';
    this.item.command = Commands.backup;
    this._register(locator.onDidChange(() => this.update()));
    this._register(catalog.onDidChange(() => this.update()));
    this._register(activity.onDidChange(() => this.update()));
    const tick = setInterval(() => this.update(), 30_000);
    this._register({ dispose: () => clearInterval(tick) });
  }

  /** What the item shows now (for the extension's API and its tests). */
  snapshot(): { text: string; tooltip: string; visible: boolean; warning: boolean; error: boolean } {
    const tip = this.item.tooltip;
    return {
      text: this.item.text,
      tooltip: typeof tip === 'string' ? tip : (tip?.value ?? ''),
      visible: this.visible,
      warning: this.item.backgroundColor !== undefined,
      error: this.item.backgroundColor?.id === 'statusBarItem.errorBackground',
    };
  }

  private visible = false;

  update(): void {
    const db = this.locator.current;
    if (!db) {
      if (this.locator.needsChoice) {
        this.item.text = '$(database) AI Memory: choose database';
        this.item.tooltip = 'AI Memory Backup found several ai-memory databases. Click to choose the one to protect.';
        this.item.command = Commands.selectDatabase;
        this.item.backgroundColor = new vscode.ThemeColor('statusBarItem.warningBackground');
        this.show(true);
      } else {
        this.show(false);
      }
      return;
    }
    this.item.command = Commands.backup;
    const sched = this.schedule;
    const last = this.catalog.lastBackupTime();
    const now = Date.now();
    const newest = this.catalog.snapshots[0];
    const md = new vscode.MarkdownString(undefined, true);
    md.appendMarkdown(`**AI Memory Backup** — ${tildify(db.path)}\n\n`);
    md.appendMarkdown(`Database from ${db.source}  \n`);
    if (!db.exists) md.appendMarkdown('$(warning) No file at that path: correct the path, or click to select the database  \n');
    if (newest) {
      const m = newest.entry.manifest;
      md.appendMarkdown(`Last snapshot: ${localTime(newest.entry.time)} (${formatAge(now - newest.entry.time)}), ${formatBytes(newest.entry.size)}, ${newest.stateDetail}${m?.memories !== undefined ? `, ${m.memories} memories` : ''}  \n`);
    } else {
      md.appendMarkdown('No snapshot yet  \n');
    }
    if (last !== undefined && newest && last > newest.entry.time + 60_000) md.appendMarkdown(`Last checked: ${formatAge(now - last)} (unchanged since the last snapshot)  \n`);
    const copyFailed = this.copyFailures();
    for (const f of copyFailed) md.appendMarkdown(`$(cloud-offline) Off-machine copy to ${f.target} failed (retried by itself): ${f.message}  \n`);
    // A failure belongs to the database it happened on: another database (the setting was
    // corrected, another one chosen) starts with a clean slate.
    const lastFailure = this.activity.lastFailure;
    const failure = lastFailure?.db === db.path ? lastFailure : undefined;
    if (failure) md.appendMarkdown(`$(error) Last backup failed ${formatAge(now - failure.at)}: ${failure.message}  \n`);
    md.appendMarkdown(sched.intervalMinutes > 0 ? `Next scheduled backup: ${sched.nextRun ? `${localTime(sched.nextRun)} (every ${sched.intervalMinutes} min)` : 'soon'}  \n` : 'Scheduled backups are off (aiMemory.backup.intervalMinutes = 0)  \n');
    md.appendMarkdown(db.exists ? '\nClick to back up now.' : '\nClick to select the database.');
    this.item.tooltip = md;
    if (this.activity.busy) {
      this.item.text = `$(sync~spin) AI Memory: ${this.activity.busy}`;
      this.item.backgroundColor = undefined;
      this.show(true);
      return;
    }
    const stale = sched.intervalMinutes > 0 && last !== undefined && now - last > 2 * sched.intervalMinutes * 60_000;
    const failed = failure !== undefined && (last === undefined || failure.at > last);
    if (!db.exists) {
      this.item.text = '$(database) AI Memory: database not found';
      this.item.command = Commands.selectDatabase;
    } else if (failed) {
      this.item.text = '$(database) AI Memory: backup failed';
    } else {
      // Snapshots but no last backup: they are all dated in the future (a clock that was ahead).
      this.item.text = last !== undefined ? `$(database) AI Memory ${formatAgeShort(now - last)}` : newest ? '$(database) AI Memory: last backup dated in the future' : '$(database) AI Memory: no backup yet';
    }
    if (copyFailed.length) this.item.text += ' $(cloud-offline)';
    this.item.backgroundColor = failed ? new vscode.ThemeColor('statusBarItem.errorBackground') : stale || last === undefined || !db.exists || copyFailed.length ? new vscode.ThemeColor('statusBarItem.warningBackground') : undefined;
    this.show(true);
  }

  private show(on: boolean): void {
    this.visible = on;
    if (on) this.item.show();
    else this.item.hide();
  }
}
