/**
 * Runs backups for the commands and the scheduler: resolves the backup folder, shows
 * progress (a cancellable notification when the user asked, the status-bar spinner when
 * the schedule did), reports failures with an action, and remembers the last failure for
 * the status bar. One backup at a time per window; other windows are kept out by the
 * engine's folder lock.
 */
import { checkLabel } from '../core/common/checks';
import { errorMessage } from '../core/common/errors';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { formatBytes } from '../core/common/format';
import { Disposable } from '../util/disposable';
import type { DatabaseLocator } from './databaseLocator';
import { EngineError, type BackupOutcome, type EngineClient, type EngineProgress } from './engineClient';
import { describeFailure, errorActions } from './errors';
import { expandSettingPath, namesWorkspace, readSettings } from './settings';
import { policyArgs } from '../cli/protocol';
import { describePolicy } from '../core/store/retention';
import { endsWithKeyMaterial } from '../core/store/operatorKey';
import type { SnapshotCatalog } from './snapshotCatalog';

export interface BackupRequest {
  reason: 'manual' | 'scheduled';
  /** Skip when any window (or ai-memory's timer through us) backed this folder up this recently. */
  skipIfRecentSeconds?: number;
}

export class BackupService extends Disposable {
  /** The last failure and the database it happened on (a failure belongs to that database only). */
  lastFailure: { message: string; at: number; db: string } | undefined;
  private running: Promise<BackupOutcome | undefined> | undefined;
  private lastNotifiedFailure = '';
  /** The retention settings' problem last said (said once, not at every scheduled backup). */
  private lastPolicyProblem: string | undefined;
  /** What is running now ("backing up…"), for the status bar's spinner; undefined when idle. */
  busy: string | undefined;
  private readonly _onDidChange = this._register(new vscode.EventEmitter<void>());
  /** Fires when `busy` or `lastFailure` changes. */
  readonly onDidChange = this._onDidChange.event;
  /** Runs after each backup that leaves a verified newest snapshot (created or unchanged): the off-machine copies. */
  afterBackup: ((dir: string) => Promise<void>) | undefined;

  constructor(
    private readonly locator: DatabaseLocator,
    private readonly catalog: SnapshotCatalog,
    private readonly engine: EngineClient,
    private readonly log: vscode.LogOutputChannel,
  ) {
    super();
  }

  /** The backup folder: the setting (expanded), else `backups` beside the database. */
  folder(): string | undefined {
    const db = this.locator.current;
    if (!db) return undefined;
    const raw = readSettings().directory;
    if (raw) {
      const p = expandSettingPath(raw);
      if (p) return p;
      if (!vscode.workspace.isTrusted && namesWorkspace(raw)) this.log.info(`aiMemory.backup.directory "${raw}" names a path in this untrusted workspace: not used until the workspace is trusted; using backups beside the database`);
      else this.log.warn(`aiMemory.backup.directory "${raw}" cannot be resolved; using backups beside the database`);
    }
    return path.join(path.dirname(db.path), 'backups');
  }

  get isRunning(): boolean {
    return this.running !== undefined;
  }

  backup(req: BackupRequest): Promise<BackupOutcome | undefined> {
    if (this.running) {
      if (req.reason === 'manual') void vscode.window.showInformationMessage('A backup is already running.');
      return this.running;
    }
    this.running = this.doBackup(req).finally(() => {
      this.running = undefined;
      this.busy = undefined;
      this._onDidChange.fire();
    });
    return this.running;
  }

  private async doBackup(req: BackupRequest): Promise<BackupOutcome | undefined> {
    const db = this.locator.current;
    const dir = this.folder();
    if (!db || !dir) {
      if (req.reason === 'manual') {
        const a = await vscode.window.showWarningMessage('No ai-memory database is known yet: nothing to back up.', 'Select Database…');
        if (a) await this.locator.pick();
      }
      return undefined;
    }
    const s = readSettings();
    if (s.policyProblem) {
      this.log.warn(`retention: ${s.policyProblem}`);
      if (s.policyProblem !== this.lastPolicyProblem) {
        void vscode.window.showWarningMessage(`AI Memory: ${s.policyProblem}`, 'Open Settings').then((a) => (a ? vscode.commands.executeCommand('workbench.action.openSettings', 'aiMemory.backup.retention') : undefined));
      }
    }
    this.lastPolicyProblem = s.policyProblem;
    const signKey = s.signingKeyPath ? expandSettingPath(s.signingKeyPath) : undefined;
    if (s.signingKeyPath && !signKey) {
      this.log.warn(`aiMemory.backup.signingKeyPath ${endsWithKeyMaterial(s.signingKeyPath) ? '(a key itself, not shown: give the path of its file)' : `"${s.signingKeyPath}"`} ${!vscode.workspace.isTrusted && namesWorkspace(s.signingKeyPath) ? 'names a path in this untrusted workspace: not used until the workspace is trusted' : 'cannot be resolved'}; the operator key is looked for where ai-memory keeps it`);
    }
    this.busy = 'backing up…';
    this._onDidChange.fire();
    const started = Date.now();
    this.log.info(`backup (${req.reason}): ${db.path} → ${dir} (retention: ${describePolicy(s.policy)}; ${s.plain} plain; verify ${s.verify})`);
    const run = (progress?: vscode.Progress<{ message?: string; increment?: number }>, token?: vscode.CancellationToken) => {
      let reported = 0;
      return this.engine.backup(
        { db: db.path, to: dir, ...policyArgs(s.policy), plain: s.plain, verify: s.verify, 'sign-key': signKey, 'skip-if-recent': req.skipIfRecentSeconds === undefined ? undefined : Math.max(0, Math.floor(req.skipIfRecentSeconds)) },
        {
          token,
          onProgress: (p: EngineProgress) => {
            const pct = p.total ? Math.min(100, Math.floor((100 * (p.done ?? 0)) / p.total)) : undefined;
            const message = p.phase === 'reading' && p.total ? `reading ${formatBytes(p.done ?? 0)} of ${formatBytes(p.total)}` : (p.message ?? p.phase);
            progress?.report({ message, increment: pct !== undefined && pct > reported ? pct - reported : undefined });
            if (pct !== undefined) reported = Math.max(reported, pct);
          },
        },
      );
    };
    try {
      const outcome =
        req.reason === 'manual'
          ? await vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: 'AI Memory: backing up', cancellable: true }, run)
          : await vscode.window.withProgress({ location: vscode.ProgressLocation.Window, title: 'AI Memory backup' }, (p) => run(p));
      this.lastFailure = undefined;
      this.lastNotifiedFailure = '';
      const took = ((Date.now() - started) / 1000).toFixed(1);
      if (outcome.status === 'created') {
        const checked = outcome.integrity === 'ok' ? `${checkLabel(outcome.check === 'full' ? 'full' : 'quick')} ok` : outcome.integrity === 'encrypted' ? 'encrypted, not checkable' : 'not verified';
        this.log.info(`backup: ${outcome.snapshot} (${formatBytes(outcome.bytes)}, ${checked}, sha256 ${outcome.sha256}) in ${took} s${outcome.pruned?.length ? `; pruned ${outcome.pruned.join(', ')}` : ''}`);
        this.log.info(outcome.signed ? `backup: manifest signed for ai-memory 1.0 by the operator key ${outcome.signer}` : `backup: ${outcome.unsigned_reason ?? 'the manifest is not signed'}`);
        if (req.reason === 'manual') vscode.window.setStatusBarMessage(`$(check) AI Memory: backed up ${formatBytes(outcome.bytes)} (${checked})`, 5000);
      } else if (outcome.status === 'unchanged') {
        this.log.info(`backup: unchanged since ${outcome.unchanged_since} (${outcome.snapshot}); nothing new written`);
        if (req.reason === 'manual') vscode.window.setStatusBarMessage(`$(check) AI Memory: unchanged since the last snapshot`, 5000);
      } else {
        this.log.info(`backup: skipped, another window backed this folder up recently (${outcome.snapshot})`);
      }
      await this.catalog.reload();
      // The copy runs after the backup has finished and never turns it into a failure.
      if (outcome.status !== 'skipped' && this.afterBackup) void this.afterBackup(dir);
      return outcome;
    } catch (e) {
      const err = e instanceof EngineError ? e : new EngineError('IO', errorMessage(e));
      if (err.code === 'CANCELLED') {
        this.log.info('backup: cancelled; nothing was written');
        return undefined;
      }
      const ctx = { operation: 'backup' as const, db, directorySetting: s.directory !== '' };
      const { text } = describeFailure(err, ctx);
      this.lastFailure = { message: text, at: Date.now(), db: db.path };
      this.log.error(`backup failed: ${text}`);
      // A scheduled run that keeps failing the same way is reported once, not every hour.
      if (req.reason === 'manual' || err.message !== this.lastNotifiedFailure) {
        this.lastNotifiedFailure = err.message;
        const actions = errorActions(err.code, ctx);
        void vscode.window
          .showErrorMessage(`AI Memory backup failed: ${text}`, ...actions.map((a) => a.title))
          .then((picked) => actions.find((a) => a.title === picked)?.run());
      }
      this._onDidChange.fire();
      return undefined;
    }
  }
}
