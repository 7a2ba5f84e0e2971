/**
 * The backup folder as the UI sees it: snapshots newest first with a state each, the
 * folder's state file (last run), and the results of "Verify" runs. It reloads by itself
 * when files appear or vanish — including snapshots written by ai-memory's own CLI or its
 * hourly timer — through a file watcher (debounced) and a slow poll as a safety net.
 */
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { FUTURE_SKEW_MS, listSnapshots, type SnapshotEntry } from '../core/store/catalog';
import { isBackupError } from '../core/common/errors';
import { readState, type BackupState } from '../core/store/state';
import { withOwners, type Owner, type OwnerInfo } from '../core/store/ownership';
import { retentionCandidates } from '../core/ops/prune';
import { resolveDbPath, resolvedDbPathOr } from '../core/sqlite/dbFiles';
import { snapshotVerdict, type SnapshotState } from '../core/store/snapshotState';
import { applyRetention, reasonsText, type RetentionPolicy } from '../core/store/retention';
import { listPreRestoreCopies, type PreRestoreCopy } from '../core/store/preRestore';
import { Disposable } from '../util/disposable';
import { extensionMessage } from './errorText';
import { readSettings } from './settings';

export type { SnapshotState } from '../core/store/snapshotState';

export interface SnapshotView {
  entry: SnapshotEntry;
  state: SnapshotState;
  /** Why it has that state, for the tooltip. */
  stateDetail: string;
  /** Result of the last "Verify" of this exact file (path, size, mtime), if any. */
  verification?: Verification;
  /** Whose snapshot it is (ownership.ts): this database's, or another's (labelled apart in the view). */
  owner: Owner;
  /** The database its manifest names (resolved). */
  source?: string;
  /** Its manifest names the database by a relative path, read from beside the folder: whose it is was guessed (ownership.ts). */
  guessed?: boolean;
  /** Its manifest says it was taken on another machine: that machine's host name (ownership.ts). */
  host?: string;
  /** Why the retention setting keeps it ("hourly 3 of 48 (2026-11-29 14h)"), or that the next backup deletes it. */
  retention?: string;
}

export interface Verification {
  ok: boolean;
  detail: string;
  at: string;
}

const VERIFY_KEY = 'aiMemory.verifications';
const MAX_REMEMBERED = 500;
const RELOAD_DEBOUNCE_MS = 300;
const POLL_MS = 120_000;

/** Why the policy keeps each snapshot (those it takes part in: this database's, shared-format names, not symlinks — as the engine's retention). */
function retentionReasons(entries: (SnapshotEntry & OwnerInfo)[], policy: RetentionPolicy): Map<string, string> {
  const candidates = retentionCandidates(entries);
  const protect = new Map<string, string>(candidates.length ? [[candidates[0].name, 'newest']] : []);
  const reasons = new Map(applyRetention(candidates, policy, { protect }).map((d) => [d.item.name, d.keep ? reasonsText(d.reasons) : 'not kept by the retention setting: the next backup deletes it']));
  for (const e of entries) if (e.guessed && e.owner === 'this') reasons.set(e.name, 'always: its manifest names the database by a relative path (as ai-memory\'s CLI writes it), and retention never deletes on that guess');
  return reasons;
}

function verificationKey(e: Pick<SnapshotEntry, 'path' | 'size' | 'mtimeMs'>): string {
  return `${e.path}|${e.size}|${Math.round(e.mtimeMs)}`;
}


export class SnapshotCatalog extends Disposable {
  private readonly _onDidChange = this._register(new vscode.EventEmitter<void>());
  readonly onDidChange = this._onDidChange.event;
  dir: string | undefined;
  /** The database whose snapshots these are (the folder may be shared with other databases). */
  db: string | undefined;
  /** This database's snapshots, newest first (future-dated ones last): what "latest", the count and the status bar mean. */
  snapshots: SnapshotView[] = [];
  /** The folder's other snapshots: of another database, of one not on this machine, or without a manifest naming one. */
  others: SnapshotView[] = [];
  /** The copies restores kept of this database (`*.pre-restore-*`, beside it), newest first. */
  preRestore: PreRestoreCopy[] = [];
  folderState: BackupState | undefined;
  /** Why the folder cannot be listed (e.g. it is a file), shown instead of the list. */
  error: string | undefined;
  private watcher: vscode.Disposable | undefined;
  private timer: NodeJS.Timeout | undefined;
  private loading: Promise<void> | undefined;
  private queued: Promise<void> | undefined;
  private positions: { list: SnapshotView[]; at: Map<string, number> } | undefined;

  constructor(
    private readonly context: vscode.ExtensionContext,
    private readonly log: vscode.LogOutputChannel,
  ) {
    super();
    const poll = setInterval(() => this.scheduleReload(), POLL_MS);
    this._register({ dispose: () => clearInterval(poll) });
    this._register({ dispose: () => this.watcher?.dispose() });
    this._register({ dispose: () => this.timer && clearTimeout(this.timer) });
  }

  /** Points the catalog at a backup folder (or none) for the database `db`, and reloads. */
  async setFolder(dir: string | undefined, db?: string): Promise<void> {
    this.db = db;
    if (dir !== this.dir) {
      this.dir = dir;
      this.watch();
    }
    await this.reload();
  }

  private watch(): void {
    this.watcher?.dispose();
    this.watcher = undefined;
    if (!this.dir) return;
    // Watch the folder itself, and its parent for the folder appearing (the first backup,
    // or ai-memory's CLI, creates it). Watchers outside the workspace are non-recursive.
    const onEvent = () => this.scheduleReload();
    const inside = vscode.workspace.createFileSystemWatcher(new vscode.RelativePattern(vscode.Uri.file(this.dir), '*'));
    const parent = vscode.workspace.createFileSystemWatcher(new vscode.RelativePattern(vscode.Uri.file(path.dirname(this.dir)), path.basename(this.dir)));
    const subs = [inside, parent, inside.onDidCreate(onEvent), inside.onDidDelete(onEvent), inside.onDidChange(onEvent), parent.onDidCreate(() => {
      this.watch();
      onEvent();
    }), parent.onDidDelete(onEvent)];
    this.watcher = vscode.Disposable.from(...subs);
  }

  /** Debounced reload, for bursts of file events (a backup writes several files). */
  scheduleReload(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.reload();
    }, RELOAD_DEBOUNCE_MS);
  }

  /**
   * Reloads now. A reload requested while one runs is done right after it, and its caller
   * waits for that one: the load already running may have started for the database or
   * folder selected before (a caller acting on the list, such as Restore Latest, must see
   * the list as of its call).
   */
  reload(): Promise<void> {
    if (this.loading) {
      this.queued ??= this.loading.catch(() => undefined).then(() => {
        this.queued = undefined;
        return this.reload();
      });
      return this.queued;
    }
    this.loading = this.load().finally(() => {
      this.loading = undefined;
    });
    return this.loading;
  }

  private async load(): Promise<void> {
    const dir = this.dir;
    let entries: (SnapshotEntry & OwnerInfo)[] = [];
    let error: string | undefined;
    let state: BackupState | undefined;
    if (dir) {
      try {
        // The same ownership rule as the engine's retention and restore (ownership.ts).
        const db = this.db ? (await resolveDbPath(this.db)).path : undefined;
        entries = await withOwners(dir, db, await listSnapshots(dir, { archived: true }));
        state = await readState(dir);
      } catch (e) {
        error = isBackupError(e) ? extensionMessage(e.message) : String(e);
        this.log.warn(`catalog: ${error}`);
      }
    }
    let preRestore: PreRestoreCopy[] = [];
    if (this.db) preRestore = await listPreRestoreCopies(await resolvedDbPathOr(this.db, this.db)).catch(() => []);
    if (dir !== this.dir) return; // the folder changed meanwhile; that load wins
    const cache = this.verifications();
    const retention = retentionReasons(entries, readSettings().policy);
    const views: SnapshotView[] = entries.map((entry) => {
      const verification = cache[verificationKey(entry)];
      const verdict = snapshotVerdict(entry, verification);
      return { entry, verification, owner: entry.owner, source: entry.source, guessed: entry.guessed, host: entry.host, state: verdict.state, stateDetail: verdict.detail, retention: retention.get(entry.name) };
    });
    // A snapshot whose manifest is missing or unreadable cannot say whose it is: it stays in
    // the list where it was, shown as "manifest missing" (the engine never counts or prunes
    // it). Apart go only those whose manifest names another database.
    this.snapshots = views.filter((v) => v.owner === 'this' || v.owner === 'unknown');
    this.others = views.filter((v) => v.owner === 'other' || v.owner === 'gone');
    this.preRestore = preRestore;
    this.folderState = state;
    this.error = error;
    this._onDidChange.fire();
  }

  private verifications(): Record<string, Verification> {
    return this.context.globalState.get<Record<string, Verification>>(VERIFY_KEY) ?? {};
  }

  /**
   * Remembers a Verify result for this exact file (path, size, mtime as it is now — the
   * catalog's copy may predate a change); a later change of the file forgets it.
   */
  async recordVerification(entry: SnapshotEntry, v: Verification): Promise<void> {
    let current: Pick<SnapshotEntry, 'path' | 'size' | 'mtimeMs'> = entry;
    try {
      const st = await fsp.stat(entry.path);
      current = { path: entry.path, size: st.size, mtimeMs: st.mtimeMs };
    } catch {
      // gone already: the result is remembered for the last known identity
    }
    const all = { ...this.verifications(), [verificationKey(current)]: v };
    const keys = Object.keys(all);
    for (const k of keys.slice(0, Math.max(0, keys.length - MAX_REMEMBERED))) delete all[k];
    await this.context.globalState.update(VERIFY_KEY, all);
    await this.reload();
  }

  /**
   * When the last backup run finished: the state file, else the newest snapshot's time.
   * A time later than now (beyond the skew two machines' clocks may have) says only that the
   * clock was ahead when it was written, not when the run was: it is not taken. Taken, the
   * schedule waited for the clock to pass it (a run under a clock a year ahead stopped the
   * scheduled backups for a year) and the status bar said "in the future" without a warning.
   */
  lastBackupTime(now = Date.now()): number | undefined {
    const past = (t: number) => Number.isFinite(t) && t <= now + FUTURE_SKEW_MS;
    const times: number[] = [];
    const fromState = this.folderState ? Date.parse(this.folderState.last_run) : NaN;
    if (past(fromState) && this.snapshots.some((s) => s.entry.name === this.folderState?.snapshot)) times.push(fromState);
    const newest = this.snapshots.find((s) => s.owner === 'this');
    const newestTime = newest ? (newest.entry.manifest ? Date.parse(newest.entry.manifest.created_at) || newest.entry.time : newest.entry.time) : NaN;
    if (past(newestTime)) times.push(newestTime);
    return times.length ? Math.max(...times) : undefined;
  }

  find(p: string): SnapshotView | undefined {
    const i = this.indexOf(p);
    return i >= 0 ? this.snapshots[i] : this.others.find((s) => s.entry.path === p);
  }

  /**
   * Where the snapshot at path `p` is in {@link snapshots} (−1: not there). The tree asks this
   * for every row it draws (its change from the previous one): a map made once per list, not
   * a scan per row, which was quadratic in the number of snapshots.
   */
  indexOf(p: string): number {
    if (this.positions?.list !== this.snapshots) this.positions = { list: this.snapshots, at: new Map(this.snapshots.map((s, i) => [s.entry.path, i])) };
    return this.positions.at.get(p) ?? -1;
  }
}

/** A kept `*.pre-restore-*` copy as a view row for Open / Compare (no manifest: it is a database, not a snapshot). */
export function preRestoreView(copy: PreRestoreCopy): SnapshotView {
  const entry: SnapshotEntry = {
    name: copy.name,
    path: copy.path,
    manifestPath: '',
    time: copy.time,
    timeSource: 'name',
    seq: copy.seq,
    size: copy.size,
    mtimeMs: copy.time,
    symlink: false,
    unsafe: false,
    manifestState: 'missing',
    future: false,
  };
  return { entry, state: 'noManifest', stateDetail: 'the database as it was before a restore (no manifest)', owner: 'this' };
}
