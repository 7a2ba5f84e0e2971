/**
 * The commands that act on snapshots: Backup, Restore… / Restore Latest / Restore (item),
 * Verify, Delete, Reveal, Copy SHA-256, Open Backup Folder. Item commands take the tree
 * node; from the Command Palette they ask which snapshot with a quick pick.
 */
import { stateIcon } from '../core/store/snapshotState';
import { describeVerdict } from '../core/store/signing';
import { errorMessage } from '../core/common/errors';
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { deleteSnapshot, listSnapshots } from '../core/store/catalog';
import { hashFile } from '../core/common/hashFile';
import { checkLabel } from '../core/common/checks';
import { formatAge, formatBytes } from '../core/common/format';
import { describeHolders, findHolders, nameHolders } from '../core/ops/inUse';
import { preRestoreName, restoreLockName } from '../core/store/naming';
import { pidAlive } from '../core/store/atomicFs';
import { listPreRestoreCopies, prunePreRestoreCopies, type PreRestoreCopy } from '../core/store/preRestore';
import { readSettings } from './settings';
import type { BackupService } from './backupService';
import { tildify, type DatabaseLocator } from './databaseLocator';
import { EngineError, type EngineClient, type RestoreOutcome } from './engineClient';
import { describeFailure, errorActions } from './errors';
import { extensionMessage } from './errorText';
import { ask, confirm } from './prompts';
import type { SnapshotCatalog, SnapshotView } from './snapshotCatalog';
import { localTime, ownerLabel, type Node } from './snapshotsTree';
import { resolvedDbPathOr } from '../core/sqlite/dbFiles';
import { newestOfThis, restoreOrder, withOwners } from '../core/store/ownership';

/**
 * A restore this window's engine is running, remembered (globalState) until it ends. A window
 * reloaded or closed in its middle ends its extension host, not the engine: the restore goes
 * on to its end unseen, and its "Restored" (or its failure) is never shown. The next window
 * finds this record, waits for that engine, and says how it ended (resumeInterruptedRestore).
 */
interface PendingRestore {
  db: string;
  snapshot: string;
  /** The snapshot's sha256 (its manifest): the database is the snapshot if and only if its bytes hash to this. */
  sha256?: string;
  when: string;
  pid: number;
  started: number;
}
const PENDING_RESTORE_KEY = 'aiMemory.pendingRestores';

export class SnapshotCommands {
  constructor(
    private readonly locator: DatabaseLocator,
    private readonly catalog: SnapshotCatalog,
    private readonly service: BackupService,
    private readonly engine: EngineClient,
    private readonly log: vscode.LogOutputChannel,
    private readonly state?: vscode.Memento,
  ) {}

  /**
   * A restore that was running when the window before this one was reloaded or closed: waits
   * for its engine (a progress notification says so), then says how it ended — by what the
   * database holds (its sha256 against the snapshot's), never by a guess.
   */
  async resumeInterruptedRestore(): Promise<void> {
    for (const p of Object.values(this.pendingRestores())) await this.resumeOne(p);
  }

  /** The restores being run by engines this profile's windows started, by pid. */
  private pendingRestores(): Record<string, PendingRestore> {
    const all = this.state?.get<Record<string, PendingRestore>>(PENDING_RESTORE_KEY);
    return all && typeof all === 'object' ? all : {};
  }

  private async setPending(pid: number, p: PendingRestore | undefined): Promise<void> {
    const all = { ...this.pendingRestores() };
    if (p) all[pid] = p;
    else delete all[pid];
    await this.state?.update(PENDING_RESTORE_KEY, all);
  }

  private async resumeOne(p: PendingRestore): Promise<void> {
    if (typeof p?.pid !== 'number' || typeof p.db !== 'string' || typeof p.started !== 'number') return;
    if (Date.now() - p.started > 24 * 3600_000) {
      await this.setPending(p.pid, undefined);
      return;
    }
    const lock = path.join(path.dirname(p.db), restoreLockName(path.basename(p.db)));
    // Still that engine: alive, and (where /proc tells) a restore, or named by the database's restore lock.
    const running = async () => {
      if (!pidAlive(p.pid)) return false;
      const cmd = await fsp.readFile(`/proc/${p.pid}/cmdline`, 'utf8').catch(() => undefined);
      if (cmd !== undefined) return cmd.includes('restore');
      return fsp.readFile(lock, 'utf8').then((t) => t.includes(`"pid":${p.pid}`), () => false);
    };
    if (await running()) {
      this.log.info(`restore: the restore of ${p.when} started in another window, or before this one was reloaded, is still running (pid ${p.pid})`);
      await vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: `AI Memory: restoring ${p.when} (started in another window, or before this one was reloaded; pid ${p.pid})` }, async () => {
        while (await running()) await new Promise((r) => setTimeout(r, 1_000));
      });
    }
    // Another window may have said it meanwhile (the record is shared by the profile's windows).
    if (this.pendingRestores()[p.pid]?.started !== p.started) return;
    await this.setPending(p.pid, undefined);
    const placed = p.sha256 ? await hashFile(p.db).then((h) => h.sha256, () => undefined) : undefined;
    const kept = (await listPreRestoreCopies(p.db).catch(() => [])).find((c) => c.time >= Math.floor(p.started / 1000) * 1000);
    await this.catalog.reload();
    if (placed !== undefined && placed === p.sha256) {
      this.log.info(`restore: the restore of ${p.when} (pid ${p.pid}) finished while the window was reloaded; ${p.db} is the snapshot (sha256 ${placed})${kept ? `; previous database kept at ${kept.path}` : ''}`);
      void vscode.window.showInformationMessage(`Restored ${p.when}: the restore went on while the window was reloaded.${kept ? ` The previous database is kept as ${kept.name}.` : ''} Restart your agent to use it.`);
    } else if (p.sha256) {
      this.log.warn(`restore: the restore of ${p.when} (pid ${p.pid}), running when the window was reloaded, did not put the snapshot in place: ${p.db} ${placed ? `has sha256 ${placed}, the snapshot ${p.sha256}` : 'cannot be read'}`);
      void vscode.window.showWarningMessage(`The restore of ${p.when}, running when the window was reloaded, did not put the snapshot in place: the database is not the snapshot.${kept ? ` A copy of it as it was is kept as ${kept.name}.` : ''} Restore again if you still want it.`, 'Show Log').then((a) => (a ? this.log.show() : undefined));
    } else {
      void vscode.window.showWarningMessage(`A restore of ${p.when} was running when the window was reloaded; the snapshot has no manifest, so whether it was put in place cannot be told.${kept ? ` The database as it was is kept as ${kept.name}.` : ''}`);
    }
  }

  /** The snapshot a command is about: the tree node it was invoked on, or one the user picks. */
  private async target(arg: unknown, title: string): Promise<SnapshotView | undefined> {
    const node = arg as Node | undefined;
    if (node && typeof node === 'object' && node.kind === 'snapshot') return this.catalog.find(node.view.entry.path) ?? node.view;
    if (typeof arg === 'string') return this.catalog.find(arg);
    if (arg instanceof vscode.Uri) return this.catalog.find(arg.fsPath);
    await this.catalog.reload();
    if (!this.catalog.snapshots.length && !this.catalog.others.length) {
      void vscode.window.showInformationMessage('There are no snapshots yet.', 'Back Up Now').then((a) => (a ? this.service.backup({ reason: 'manual' }) : undefined));
      return undefined;
    }
    const now = Date.now();
    // This database's snapshots first; the folder's others after them, labelled with whose they are.
    const items = [...this.catalog.snapshots, ...this.catalog.others].map((s) => ({
      label: localTime(s.entry.time),
      description: `${formatAge(now - s.entry.time)} · ${formatBytes(s.entry.size)}${s.owner === 'this' ? '' : ` · ${ownerLabel(s)}`}`,
      detail: `$(${stateIcon(s.entry, { state: s.state, detail: s.stateDetail })}) ${s.stateDetail}${s.entry.manifest?.memories !== undefined ? ` · ${s.entry.manifest.memories} memories` : ''}`,
      view: s,
    }));
    const picked = await vscode.window.showQuickPick(items, { title, placeHolder: 'Newest first', matchOnDescription: true });
    return picked?.view;
  }

  backup(): Promise<unknown> {
    return this.service.backup({ reason: 'manual' });
  }

  async restore(arg?: unknown): Promise<void> {
    const view = await this.target(arg, 'AI Memory: Restore a snapshot');
    if (view) await this.restoreView(view);
  }

  async restoreLatest(): Promise<void> {
    await this.catalog.reload();
    // This database's newest only: a snapshot of another database is never restored without being chosen.
    // The same choice as the engine's restore from the folder (restore.ts): restorable, properly named, known to be this database's first.
    const newest = newestOfThis(restoreOrder(this.catalog.snapshots.map((v) => ({ ...v, unsafe: v.entry.unsafe, timeSource: v.entry.timeSource }))));
    if (!newest) {
      const others = this.catalog.others.length;
      void vscode.window.showInformationMessage(
        others
          ? `There is no snapshot of this database yet. The folder's ${others} other snapshot${others === 1 ? ' was' : 's were'} taken of other databases: they are listed apart in the Snapshots view, where you can restore one explicitly.`
          : 'There are no snapshots to restore yet.',
      );
      return;
    }
    await this.restoreView(newest);
  }

  /**
   * Undo a restore: puts back a kept `*.pre-restore-*` copy. The copy is a database with its
   * -wal, not a snapshot, so it is first read consistently into a checked snapshot in a
   * private temp folder (0700; the engine's backup, which never writes beside its source),
   * and that snapshot is restored as usual — the current database is kept aside first.
   */
  async restorePreRestore(arg?: unknown): Promise<void> {
    const copy = this.preRestoreCopy(arg) ?? (arg === undefined ? this.catalog.preRestore[0] : undefined);
    if (!copy) {
      void vscode.window.showInformationMessage('No restore has kept a copy of this database yet.');
      return;
    }
    // Only a copy kept of the database selected now, listed afresh: a row drawn for the
    // database selected before (another window changed the setting) would put that one's
    // old state into this one.
    const current = this.locator.current;
    const real = current ? await resolvedDbPathOr(current.path, current.path) : undefined;
    const listed = real ? (await listPreRestoreCopies(real).catch(() => [])).find((c) => c.path === copy.path) : undefined;
    if (!real || !listed) {
      void vscode.window.showWarningMessage(`${copy.name} is not a copy kept of the database selected now${real ? ` (${tildify(real)})` : ''}; nothing was changed. The view is refreshed.`);
      await this.catalog.reload();
      return;
    }
    const tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'aimb-undo-'));
    try {
      const made = await vscode.window.withProgress(
        { location: vscode.ProgressLocation.Notification, title: `AI Memory: reading ${copy.name}`, cancellable: true },
        (_p, token) => this.engine.backup({ db: copy.path, to: tmp, keep: 0 }, { token }),
      );
      const entry = (await listSnapshots(tmp)).find((e) => e.name === path.basename(made.snapshot));
      if (!entry) throw new EngineError('IO', `the snapshot of ${copy.name} is missing from ${tmp}`);
      // Another database beside this one names its kept copies alike (memories.sqlite beside memories.db): said before anything is replaced.
      const shared = listed.sharedWith?.length
        ? `\n\n${copy.name} may have been kept by a restore of ${listed.sharedWith.map((p) => path.basename(p)).join(', ')}, not of this database: both name their kept copies ${copy.name.replace(/\.pre-restore-.*$/, '')}.pre-restore-….db, so whose it is cannot be told. Check that it holds your memories before you restore it.`
        : '';
      await this.restoreView({ entry, state: 'verified', stateDetail: '', owner: 'this' }, `the database as it was before the restore of ${localTime(copy.time)}`, shared);
    } catch (e) {
      const err = e instanceof EngineError ? e : new EngineError('IO', errorMessage(e));
      if (err.code === 'CANCELLED') return;
      // Its message only: the engine's hints are about a backup folder and a database path the user did not choose here.
      const text = extensionMessage(err.message);
      this.log.error(`undo restore: ${text}`);
      void vscode.window.showErrorMessage(`Could not read ${copy.name}; nothing was changed. ${text}`, 'Show Log').then((a) => (a ? this.log.show() : undefined));
    } finally {
      await fsp.rm(tmp, { recursive: true, force: true }).catch(() => undefined);
      await this.catalog.reload();
    }
  }

  /** The kept copy a command was invoked on: its row, or its path (other extensions, tests). */
  private preRestoreCopy(arg: unknown): PreRestoreCopy | undefined {
    const node = arg as Node | undefined;
    if (node && typeof node === 'object' && node.kind === 'preRestore') return node.copy;
    const p = typeof arg === 'string' ? arg : arg instanceof vscode.Uri ? arg.fsPath : undefined;
    return p === undefined ? undefined : this.catalog.preRestore.find((c) => c.path === p);
  }

  /** Deletes a kept `*.pre-restore-*` copy with its -wal/-shm, after a confirmation. */
  async deletePreRestore(arg?: unknown): Promise<void> {
    const copy = this.preRestoreCopy(arg);
    if (!copy) return;
    const ok = await confirm(
      `Delete the database as it was before the restore of ${localTime(copy.time)}?`,
      `${copy.name}${copy.sidecars.length ? ` and its ${copy.sidecars.map((x) => x.slice(copy.path.length)).join(', ')}` : ''} are removed from ${tildify(path.dirname(copy.path))}. That restore can then no longer be undone.`,
      'Delete',
    );
    if (!ok) return;
    try {
      // The main file first: an interruption leaves no main file without its WAL.
      await fsp.unlink(copy.path);
      for (const x of copy.sidecars) await fsp.rm(x, { force: true });
      this.log.info(`deleted ${copy.path}`);
    } catch (e) {
      void vscode.window.showErrorMessage(`Could not delete ${copy.name}: ${errorMessage(e)}`);
    } finally {
      await this.catalog.reload();
    }
  }

  private async restoreView(view: SnapshotView, subject?: string, note = ''): Promise<void> {
    const db = this.locator.current;
    if (!db) {
      const a = await vscode.window.showWarningMessage('No ai-memory database is selected: where should the snapshot go?', 'Select Database…');
      if (a) await this.locator.pick();
      return;
    }
    const { entry } = view;
    const when = subject ?? `the snapshot of ${localTime(entry.time)}`;
    const When = when.charAt(0).toUpperCase() + when.slice(1);
    // The same resolution as the engine's (dbFiles.ts): a symlinked database is replaced at its real file.
    const real = await resolvedDbPathOr(db.path, db.path);
    const exists = await fsp.stat(real).then(() => true, () => false);
    // Whose it is, decided now against the database it would replace — not taken from the
    // row, which may have been drawn for the database selected before (another window
    // changed the setting, a reload still running).
    if (!subject) {
      const [fresh] = await withOwners(path.dirname(entry.path), real, [{ ...entry }]).catch(() => [undefined]);
      if (fresh) view = { ...view, owner: fresh.owner, source: fresh.source, guessed: fresh.guessed, host: fresh.host };
    }
    let whose =
      view.owner !== 'this'
        ? `\n\nThis snapshot was not taken of your database: it is ${ownerLabel(view)}.`
        : view.guessed
          ? `\n\nIts manifest names the database only as "${entry.manifest?.source_db ?? ''}" (a relative path, as ai-memory's CLI writes it), which from beside the backup folder is your database. If other projects back up into this folder, check that it is yours.`
          : '';
    whose += note;
    // The kept copy is named when the restore runs, not now: say its pattern, not a time that
    // would be wrong by the time the user confirms (the engine reports the real name after).
    const kept = preRestoreName(path.basename(real), '<time of the restore>');
    let force = false;
    for (;;) {
      const holders = await findHolders(real).catch(() => []);
      if (!holders.length) {
        const warn = view.state === 'mismatch' || view.state === 'noManifest' ? `\n\nWarning: ${view.stateDetail}. The restore checks it again and refuses it if it is damaged.` : '';
        const sig = entry.signature && entry.signature.state !== 'refused' ? `\n\nManifest: ${describeVerdict(entry.signature)}.` : '';
        const ok = await confirm(
          `Restore ${when}?`,
          exists
            ? `${entry.name} (${formatBytes(entry.size)}${entry.manifest?.memories !== undefined ? `, ${entry.manifest.memories} memories` : ''}) replaces\n${tildify(real)}.\n\nYour current database is kept beside it as ${kept}, with its -wal, -shm and -journal, so nothing is lost.${sig}${whose}${warn}`
            : `${entry.name} (${formatBytes(entry.size)}) becomes a new database at\n${tildify(real)} (there is none yet).${whose}${warn}`,
          'Restore',
        );
        if (!ok) return;
        break;
      }
      // In use. Enter must never restore over a running server: the first (default) button
      // re-checks, and "Restore Anyway" needs a second, deliberate choice.
      const who = nameHolders(holders);
      this.log.warn(`restore: the database is in use by ${describeHolders(holders)}`);
      const CHECK = 'Check Again';
      const first = await ask(
        `The database is in use by ${who}.`,
        `${describeHolders(holders)}\n\nStop your agent (or the ai-memory server) first, then choose Check Again.\n\nRestoring while it runs replaces the file under it: what it writes next goes to the kept copy, not to the restored database. Restart it right after.`,
        [CHECK, 'Restore Anyway…'],
        'Restore Anyway…',
      );
      if (first === CHECK) continue;
      if (first !== 'Restore Anyway…') return;
      const second = await ask(
        `Restore ${when} while ${who} has the database open?`,
        `Your current database will be kept beside it as ${kept}. Restart your agent right after the restore.`,
        [CHECK, 'Restore Anyway'],
        'Restore Anyway',
      );
      if (second === CHECK) continue;
      if (second !== 'Restore Anyway') return;
      force = true;
      break;
    }
    this.log.info(`restore: ${entry.path} → ${real}${force ? ' (forced while in use)' : ''}`);
    let done: RestoreOutcome | undefined;
    let pending: PendingRestore | undefined;
    const run = (allowUnsigned: boolean) =>
      vscode.window.withProgress(
        { location: vscode.ProgressLocation.Notification, title: `AI Memory: restoring ${when}`, cancellable: true },
        (progress, token) =>
          // A new database is created only where the user named it (the setting), never at a discovered path.
          this.engine
            .restore(
              { db: real, from: entry.path, 'force-in-use': force, 'allow-unsigned-manifest': allowUnsigned, create: db.via === 'setting' },
              {
                token,
                onProgress: (p) => progress.report({ message: p.message ?? p.phase }),
                // Remembered while it runs: should this window go away, the next one says how it ended.
                onSpawn: (pid) => {
                  pending = { db: real, snapshot: entry.path, sha256: entry.manifest?.sha256, when, pid, started: Date.now() };
                  void this.setPending(pid, pending);
                },
              },
            )
            .finally(async () => {
              if (pending) await this.setPending(pending.pid, undefined);
              pending = undefined;
            }),
      );
    try {
      try {
        done = await run(false);
      } catch (e) {
        // ai-memory 1.0's posture: with an operator key configured, an unsigned manifest is
        // only restored when the user says so — here, in a modal instead of a failure.
        if (!(e instanceof EngineError) || e.code !== 'MANIFEST_UNSIGNED') throw e;
        this.log.warn(`restore: ${e.message}`);
        const accept = await confirm(
          `${When} is not signed.`,
          `An ai-memory operator key is configured, so snapshots are expected to carry its signature. This one has none: it was taken before the key existed, by a tool without the key — or written by someone who can write the backup folder.\n\nRestore it only if you know where it came from.`,
          'Restore Unsigned Snapshot',
        );
        if (!accept) {
          this.log.info('restore: unsigned snapshot not accepted; nothing was changed');
          return;
        }
        this.log.info('restore: unsigned snapshot accepted by the user (Restore Unsigned Snapshot)');
        done = await run(true);
      }
    } catch (e) {
      const err = e instanceof EngineError ? e : new EngineError('IO', String(e));
      if (err.code === 'CANCELLED') {
        this.log.info('restore: cancelled; nothing was changed');
        return;
      }
      const ctx = { operation: 'restore' as const, db };
      const { text } = describeFailure(err, ctx);
      this.log.error(`restore failed: ${text}`);
      const actions = errorActions(err.code, ctx);
      const picked = await vscode.window.showErrorMessage(`Restore failed: ${text}`, ...actions.map((a) => a.title));
      await actions.find((a) => a.title === picked)?.run();
      return;
    } finally {
      await this.catalog.reload();
    }
    const r = done;
    this.log.info(`restore: done; ${r.created ? 'created a new database' : `previous database kept at ${r.previous ?? '(there was none)'}`}; kept aside: ${r.kept_aside.join(', ') || 'nothing'}; placed sha256 ${r.sha256}`);
    // Retention of the kept copies (aiMemory.backup.keepPreRestore); the newest is never removed.
    const pruned = await prunePreRestoreCopies(r.to, readSettings().keepPreRestore, { justMade: r.previous }).catch((e: unknown) => ({ pruned: [] as string[], warnings: [errorMessage(e)] }));
    if (pruned.pruned.length) this.log.info(`restore: removed older kept copies (aiMemory.backup.keepPreRestore): ${pruned.pruned.join(', ')}`);
    for (const w of pruned.warnings) this.log.warn(`restore: ${w}`);
    const actions = r.previous ? ['Reveal Previous', 'Show Log'] : ['Show Log'];
    const what = r.created ? ' A new database was created.' : r.previous ? ` The previous${r.damaged ? ' (damaged)' : ''} database is kept as ${path.basename(r.previous)}.` : '';
    void vscode.window
      .showInformationMessage(`Restored ${when}.${what} Restart your agent to use it.`, ...actions)
      .then((a) => {
        if (a === 'Reveal Previous' && r.previous) void this.reveal(vscode.Uri.file(r.previous));
        if (a === 'Show Log') this.log.show();
      });
  }

  async verify(arg?: unknown): Promise<void> {
    const view = await this.target(arg, 'AI Memory: Verify a snapshot');
    if (!view) return;
    const { entry } = view;
    try {
      const r = await vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: `AI Memory: verifying ${entry.name}`, cancellable: true }, (_p, token) =>
        this.engine.verify({ from: entry.path }, { token }),
      );
      const s = r.snapshots[0];
      if (!s) throw new EngineError('IO', 'The engine returned no result.');
      const detail = s.ok
        ? [s.manifest === 'ok' ? 'sha256 matches its manifest' : 'no manifest', s.integrity === 'ok' ? `${checkLabel(s.check)} ok${s.memories !== undefined ? ` (${s.memories} memories)` : ''}` : undefined, ...s.notes].filter(Boolean).join(', ')
        : s.problems.map(extensionMessage).join(' | ');
      await this.catalog.recordVerification(entry, { ok: s.ok, detail, at: new Date().toISOString() });
      this.log.info(`verify ${entry.name}: ${s.ok ? 'ok' : 'FAILED'} — ${detail}`);
      if (s.ok) void vscode.window.showInformationMessage(`Snapshot of ${localTime(entry.time)} verified: ${detail}.`);
      else void vscode.window.showErrorMessage(`Snapshot of ${localTime(entry.time)} FAILED verification: ${detail}`, 'Show Log').then((a) => (a ? this.log.show() : undefined));
    } catch (e) {
      const err = e instanceof EngineError ? e : new EngineError('IO', String(e));
      if (err.code === 'CANCELLED') return;
      const { text } = describeFailure(err, { operation: 'verify', db: this.locator.current });
      this.log.error(`verify failed: ${text}`);
      void vscode.window.showErrorMessage(`Could not verify ${entry.name}: ${text}`, 'Show Log').then((a) => (a ? this.log.show() : undefined));
    }
  }

  async delete(arg?: unknown): Promise<void> {
    const view = await this.target(arg, 'AI Memory: Delete a snapshot');
    if (!view) return;
    const { entry } = view;
    const dir = path.dirname(entry.path);
    const ok = await confirm(`Delete the snapshot of ${localTime(entry.time)}?`, `${entry.name} and its manifest are removed from ${tildify(dir)}. This cannot be undone.`, 'Delete');
    if (!ok) return;
    try {
      await deleteSnapshot(dir, entry.name);
      this.log.info(`deleted ${entry.path}`);
    } catch (e) {
      void vscode.window.showErrorMessage(`Could not delete ${entry.name}: ${errorMessage(e)}`);
    } finally {
      await this.catalog.reload();
    }
  }

  async revealSnapshot(arg?: unknown): Promise<void> {
    const view = await this.target(arg, 'AI Memory: Reveal a snapshot');
    if (view) await this.reveal(vscode.Uri.file(view.entry.archived ? view.entry.manifestPath : view.entry.path)); // an archived one: its manifest in the archive
  }

  async copySha256(arg?: unknown): Promise<void> {
    const view = await this.target(arg, 'AI Memory: Copy the SHA-256 of a snapshot');
    if (!view) return;
    // The manifest's hash is what restore checks against; without one, hash the file.
    const sha = view.entry.manifest?.sha256 ?? (await hashFile(view.entry.path)).sha256;
    await vscode.env.clipboard.writeText(sha);
    vscode.window.setStatusBarMessage(`$(copy) SHA-256 of ${view.entry.name} copied`, 4000);
  }

  async openBackupFolder(): Promise<void> {
    const dir = this.service.folder();
    if (!dir) {
      void vscode.window.showInformationMessage('No ai-memory database is selected yet, so there is no backup folder.');
      return;
    }
    await fsp.mkdir(dir, { recursive: true, mode: 0o700 }).catch(() => undefined); // a backup later keeps it (private until then)
    if (vscode.env.uiKind === vscode.UIKind.Desktop && vscode.env.remoteName === undefined) {
      if (await vscode.env.openExternal(vscode.Uri.file(dir))) return;
    }
    await this.showPath(dir, 'The backup folder');
  }

  /** Reveals a file in the OS file manager; where there is none (a browser), shows the path. */
  private async reveal(uri: vscode.Uri): Promise<void> {
    if (vscode.env.uiKind === vscode.UIKind.Desktop && vscode.env.remoteName === undefined) {
      try {
        await vscode.commands.executeCommand('revealFileInOS', uri);
        return;
      } catch {
        // fall through to showing the path
      }
    }
    if (vscode.workspace.getWorkspaceFolder(uri)) {
      await vscode.commands.executeCommand('revealInExplorer', uri);
      return;
    }
    await this.showPath(uri.fsPath, path.basename(uri.fsPath));
  }

  private async showPath(p: string, what: string): Promise<void> {
    const a = await vscode.window.showInformationMessage(`${what} is at ${p}`, 'Copy Path');
    if (a) await vscode.env.clipboard.writeText(p);
  }
}
