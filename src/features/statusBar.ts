/**
 * `$(database) 5 min ago` — when the last backup ran. Tooltip: the last snapshot, its size
 * and verification, the next scheduled run. Click: back up now. A spinner while a backup
 * runs; warning colours when the last backup failed or is older than twice the interval;
 * hidden while no database is known.
 */
import * as vscode from 'vscode';
import { Commands } from '../commands';
import { formatAge, formatBytes } from '../core/common/format';
import { Disposable } from '../util/disposable';
import { tildify, type DatabaseLocator } from './databaseLocator';
import type { SnapshotCatalog } from './snapshotCatalog';
import { localTime } from './snapshotsTree';

export interface ScheduleInfo {
  intervalMinutes: number;
  nextRun: number | undefined;
  lastFailure: { message: string; at: number } | undefined;
}

export class StatusBar extends Disposable {
  private readonly item: vscode.StatusBarItem;
  private busy: string | undefined;
  /** Off-machine copies that failed (set when copies are configured). */
  copyFailures: () => { target: string; message: string }[] = () => [];

  constructor(
    private readonly locator: DatabaseLocator,
    private readonly catalog: SnapshotCatalog,
    private readonly schedule: () => ScheduleInfo,
  ) {
    super();
    this.item = this._register(vscode.window.createStatusBarItem('aiMemory.status', vscode.StatusBarAlignment.Left, 10));
    this.item.name = 'AI Memory Backup';
    this.item.command = Commands.backup;
    this._register(locator.onDidChange(() => this.update()));
    this._register(catalog.onDidChange(() => this.update()));
    const tick = setInterval(() => this.update(), 30_000);
    this._register({ dispose: () => clearInterval(tick) });
  }

  /** Shows a spinner with `text` until `setBusy(undefined)`. */
  setBusy(text: string | undefined): void {
    this.busy = text;
    this.update();
  }

  /** What the item shows now (for the extension's API and its tests). */
  snapshot(): { text: string; tooltip: string; visible: boolean; warning: boolean } {
    const tip = this.item.tooltip;
    return {
      text: this.item.text,
      tooltip: typeof tip === 'string' ? tip : (tip?.value ?? ''),
      visible: this.visible,
      warning: this.item.backgroundColor !== undefined,
    };
  }

  private visible = false;

  update(): void {
    const db = this.locator.current;
    if (!db) {
      if (this.locator.needsChoice) {
        this.item.text = '$(database) Choose database';
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
    const sched = this.schedule();
    const last = this.catalog.lastBackupTime();
    const now = Date.now();
    const newest = this.catalog.snapshots[0];
    const md = new vscode.MarkdownString(undefined, true);
    md.appendMarkdown(`**AI Memory Backup** — ${tildify(db.path)}\n\n`);
    md.appendMarkdown(`Database from ${db.source}  \n`);
    if (newest) {
      const m = newest.entry.manifest;
      md.appendMarkdown(`Last snapshot: ${localTime(newest.entry.time)} (${formatAge(now - newest.entry.time)}), ${formatBytes(newest.entry.size)}, ${newest.stateDetail}${m?.memories !== undefined ? `, ${m.memories} memories` : ''}  \n`);
    } else {
      md.appendMarkdown('No snapshot yet  \n');
    }
    if (last !== undefined && newest && last > newest.entry.time + 60_000) md.appendMarkdown(`Last checked: ${formatAge(now - last)} (unchanged since the last snapshot)  \n`);
    const copyFailed = this.copyFailures();
    for (const f of copyFailed) md.appendMarkdown(`$(cloud-offline) Off-machine copy to ${f.target} failed (retried by itself): ${f.message}  \n`);
    if (sched.lastFailure) md.appendMarkdown(`$(error) Last backup failed ${formatAge(now - sched.lastFailure.at)}: ${sched.lastFailure.message}  \n`);
    md.appendMarkdown(sched.intervalMinutes > 0 ? `Next scheduled backup: ${sched.nextRun ? `${localTime(sched.nextRun)} (every ${sched.intervalMinutes} min)` : 'soon'}  \n` : 'Scheduled backups are off (aiMemory.backup.intervalMinutes = 0)  \n');
    md.appendMarkdown('\nClick to back up now.');
    this.item.tooltip = md;
    if (this.busy) {
      this.item.text = `$(sync~spin) ${this.busy}`;
      this.item.backgroundColor = undefined;
      this.show(true);
      return;
    }
    this.item.text = `${last === undefined ? '$(database) No backup yet' : `$(database) ${formatAge(now - last)}`}${copyFailed.length ? ' $(cloud-offline)' : ''}`;
    const stale = sched.intervalMinutes > 0 && last !== undefined && now - last > 2 * sched.intervalMinutes * 60_000;
    const failed = sched.lastFailure !== undefined && (last === undefined || sched.lastFailure.at > last);
    this.item.backgroundColor = failed ? new vscode.ThemeColor('statusBarItem.errorBackground') : stale || last === undefined || copyFailed.length ? new vscode.ThemeColor('statusBarItem.warningBackground') : undefined;
    this.show(true);
  }

  private show(on: boolean): void {
    this.visible = on;
    if (on) this.item.show();
    else this.item.hide();
  }
}
