/**
 * AI Memory Backup — wires the features together. Activation registers everything and
 * does no I/O: discovery, the first catalog load and the schedule start right after it
 * returns; the sql.js engine never loads in the extension host (backups run in a child
 * process, see features/engineClient.ts).
 */
import { errorMessage } from './core/common/errors';
import { performance } from 'node:perf_hooks';
import * as vscode from 'vscode';
import { Commands, ContextKeys, VIEW_ID } from './contributionIds';
import { TOOL_VERSION } from './core/common/version';
import { BackupService } from './features/backupService';
import { DatabaseLocator, tildify } from './features/databaseLocator';
import { EngineClient } from './features/engineClient';
import { setConfirmationHandler, type ConfirmationHandler } from './features/prompts';
import { Scheduler } from './features/scheduler';
import { affectsUs } from './features/settings';
import { SnapshotCatalog } from './features/snapshotCatalog';
import { SnapshotCommands } from './features/snapshotCommands';
import { SnapshotsTreeProvider } from './features/snapshotsTree';
import { MemoryViews, type Side } from './features/memoryViews';
import { StatusBar } from './features/statusBar';
import { copyEnabled, RemoteCopies, type SetupInput } from './features/remoteCopies';
import { readSettings } from './features/settings';
import { explainFailure } from './features/errorText';

/** What other extensions (and our tests in the real extension host) can see and do. */
export interface AiMemoryBackupApi {
  readonly version: string;
  /** How long `activate` took, in milliseconds. */
  readonly activationMs: number;
  /** Resolves when the first discovery and catalog load are done. */
  readonly ready: Promise<void>;
  database(): { path: string; source: string; via: string; exists: boolean } | undefined;
  backupFolder(): string | undefined;
  /** The rows of the Snapshots view, as the view renders them. */
  snapshots(): { group: string; label: string; description: string; contextValue: string; path: string; state: string; tooltip: string }[];
  /** The "Before restore" group's rows: the copies restores kept of this database, newest first. */
  beforeRestore(): { label: string; description: string; path: string }[];
  statusBar(): { text: string; tooltip: string; visible: boolean; warning: boolean; error: boolean };
  /** Off-machine copies: the configured targets (no secrets), each local snapshot's copy state, the "Remote" group's rows, failed copies. */
  copies(): { targets: string[]; states: Record<string, string>; remoteOnly: string[]; failures: string[] };
  nextScheduledRun(): number | undefined;
  refresh(): Promise<void>;
  /**
   * Test seams, present only when the extension host was started with
   * AI_MEMORY_BACKUP_TEST_API=1 (our real-VS-Code harness does): never in a user's VS Code,
   * so no other extension can answer a restore confirmation for the user.
   */
  readonly testing?: {
    /** Answers the modal confirmations (restore, delete) instead of a person; undefined restores the dialogs. */
    setConfirmationHandler(handler: ConfirmationHandler | undefined): void;
    /** Forgets every off-machine target (and its secret): a suite leaves the profile as it found it. */
    removeCopyTargets(): Promise<void>;
    /** How many times the Snapshots view was asked to redraw: all of it, or some rows in place. */
    treeRedraws(): { whole: number; rows: number };
  };
  /** Reads the current database's memories digest (the view's "= now" marker) and the rows' change counts now; resolves when done. */
  refreshMemoryDigest(): Promise<void>;
}

export function activate(context: vscode.ExtensionContext): AiMemoryBackupApi {
  const t0 = performance.now();
  const log = vscode.window.createOutputChannel('AI Memory', { log: true });
  context.subscriptions.push(log);

  const engine = EngineClient.forExtension(context.extensionPath, log);
  const locator = new DatabaseLocator(context, log);
  const catalog = new SnapshotCatalog(context, log);
  const service = new BackupService(locator, catalog, engine, log);
  const scheduler = new Scheduler(service, locator, catalog, log);
  const statusBar = new StatusBar(locator, catalog, service, scheduler);
  const remote = new RemoteCopies(context, engine, log, () => readSettings().policy, () => new Set([...catalog.snapshots, ...catalog.others].map((s) => s.entry.name)), () => service.folder());
  service.afterBackup = (dir) => (copyEnabled() ? remote.copyAll(dir, 'backup') : Promise.resolve());
  statusBar.copyFailures = () => remote.failures();
  context.subscriptions.push(remote, remote.onDidChange(() => statusBar.update()));
  const memory = new MemoryViews(engine, locator, catalog, context.globalStorageUri, log);
  const tree = new SnapshotsTreeProvider(catalog, remote, () => memory.currentDigest?.digest, (p) => memory.changeOf(p));
  context.subscriptions.push(memory.onDidChangeDigest(() => tree.refresh()));
  const commands = new SnapshotCommands(locator, catalog, service, engine, log, context.globalState);
  context.subscriptions.push(locator, catalog, service, scheduler, statusBar, tree, memory);

  const view = vscode.window.createTreeView(VIEW_ID, { treeDataProvider: tree, showCollapseAll: false, canSelectMany: true });
  context.subscriptions.push(view);

  const setContext = (key: string, value: boolean | string) => vscode.commands.executeCommand('setContext', key, value);
  const register = (id: string, fn: (...args: unknown[]) => unknown) => context.subscriptions.push(vscode.commands.registerCommand(id, fn));
  register(Commands.backup, () => commands.backup());
  register(Commands.restore, (arg) => commands.restore(arg));
  register(Commands.restoreLatest, () => commands.restoreLatest());
  register(Commands.restoreSnapshot, (arg) => commands.restore(arg));
  register(Commands.verifySnapshot, (arg) => commands.verify(arg));
  register(Commands.deleteSnapshot, (arg) => commands.delete(arg));
  register(Commands.restorePreRestore, (arg) => commands.restorePreRestore(arg));
  register(Commands.deletePreRestore, (arg) => commands.deletePreRestore(arg));
  register(Commands.revealSnapshot, (arg) => commands.revealSnapshot(arg));
  register(Commands.copySha256, (arg) => commands.copySha256(arg));
  register(Commands.openBackupFolder, () => commands.openBackupFolder());
  // With a path (a string or a file Uri: other extensions, tests), that database is chosen without the picker.
  register(Commands.selectDatabase, (arg) => (typeof arg === 'string' ? locator.choose(arg) : arg instanceof vscode.Uri ? locator.choose(arg.fsPath) : locator.pick()));
  register(Commands.showLog, () => log.show());
  register(Commands.setUpRemote, (arg) => remote.setUp(arg && typeof arg === 'object' && 'remote' in arg ? (arg as SetupInput) : undefined));
  register(Commands.retryCopy, () => remote.retryNow());
  register(Commands.restoreRemoteSnapshot, async (arg) => {
    const node = arg as { kind?: string; name?: string; target?: { key?: string } } | undefined;
    const dir = service.folder();
    if (!dir) return;
    // Exactly the row clicked, on its own target: never another snapshot in its place (one
    // pulled, or retired on the target, since the view was drawn is said, not substituted).
    const pick = remote.remoteOnly().find((r) => r.name === node?.name && (!node?.target?.key || r.target.key === node.target.key));
    if (!pick) {
      void vscode.window.showInformationMessage(`AI Memory: ${node?.name ?? 'that snapshot'} is no longer only on the off-machine target (it was copied here or removed there meanwhile); nothing was downloaded. The view is refreshed.`);
      await catalog.reload();
      return;
    }
    try {
      const p = await remote.download(pick.name, pick.target, dir);
      await catalog.reload();
      await commands.restore(p);
    } catch (e) {
      const msg = explainFailure(e, { operation: 'download' }).text;
      log.error(`download of ${pick.name} failed: ${msg}`);
      void vscode.window.showErrorMessage(`AI Memory: could not download ${pick.name}; nothing was restored. ${msg}`, 'Show Log').then((a) => a && log.show());
    }
  });
  register(Commands.openSnapshot, (arg) => memory.openSnapshot(arg));
  register(Commands.compareWithCurrent, (arg) => memory.compareWithCurrent(arg));
  register(Commands.compareWithPrevious, (arg) => memory.compareWithPrevious(arg));
  register(Commands.compareSnapshots, (arg, selection) => memory.compareSelected(arg, selection));
  register(Commands.restoreMemories, (arg, ids) => memory.restoreMemories(arg, Array.isArray(ids) ? ids.map(String) : undefined));
  register(Commands.openMemoryDiff, (left, right, id) => memory.openMemoryDiff(left as Side, right as Side, String(id)));
  register(Commands.refresh, async () => {
    await locator.refresh();
    await catalog.reload();
  });

  // Above the rows: which database path names no file, and where it came from. Only over
  // rows: a view with a message shows no welcome content, and the empty view's welcome
  // says it (with Select Database… / Open Settings).
  const showMissing = () => {
    const db = locator.current;
    view.message = db && !db.exists && catalog.snapshots.length > 0 ? `Database not found: ${tildify(db.path)} — from ${db.source}.` : undefined;
  };
  // The folder follows the database; the view's context keys follow the catalog.
  const followDatabase = async () => {
    const db = locator.current;
    await setContext(ContextKeys.hasDatabase, db !== undefined);
    await setContext(ContextKeys.databaseMissing, db !== undefined && !db.exists);
    await setContext(ContextKeys.databaseVia, db?.via ?? '');
    await setContext(ContextKeys.needsChoice, locator.needsChoice);
    showMissing();
    await catalog.setFolder(service.folder(), locator.current?.path);
    await remote.setFolder(service.folder());
  };
  context.subscriptions.push(locator.onDidChange(() => void followDatabase()));
  context.subscriptions.push(
    catalog.onDidChange(() => {
      void setContext(ContextKeys.hasSnapshots, catalog.snapshots.length > 0);
      void remote.reload();
      view.description = catalog.snapshots.length ? `${catalog.snapshots.length}` : undefined;
      showMissing();
    }),
  );
  context.subscriptions.push(
    vscode.workspace.onDidChangeConfiguration((e) => {
      if (!affectsUs(e)) return;
      log.info('settings changed');
      void locator.refresh().then(() => followDatabase()).then(() => scheduler.plan());
      statusBar.update();
    }),
    vscode.workspace.onDidGrantWorkspaceTrust(() => {
      log.info('workspace trusted: reading its MCP configuration too');
      void locator.refresh();
    }),
    vscode.workspace.onDidChangeWorkspaceFolders(() => void locator.refresh()),
  );

  // Everything with I/O starts after activation has returned.
  const ready = new Promise<void>((resolve) => {
    setTimeout(() => {
      void (async () => {
        try {
          await locator.refresh();
          await followDatabase();
        } catch (e) {
          log.error(`start-up: ${errorMessage(e)}`);
        } finally {
          await setContext(ContextKeys.ready, true);
          scheduler.start();
          statusBar.update();
          resolve();
          // A restore the window before this one left running (reloaded, closed): how it ended.
          void commands.resumeInterruptedRestore().catch((e: unknown) => log.error(`restore: ${errorMessage(e)}`));
        }
      })();
    }, 0);
  });

  const activationMs = performance.now() - t0;
  log.info(`AI Memory Backup ${TOOL_VERSION} activated in ${activationMs.toFixed(2)} ms (VS Code ${vscode.version})`);

  return {
    version: TOOL_VERSION,
    activationMs,
    ready,
    database: () => (locator.current ? { ...locator.current } : undefined),
    backupFolder: () => service.folder(),
    beforeRestore: () =>
      catalog.preRestore.map((copy) => {
        const item = tree.getTreeItem({ kind: 'preRestore', copy });
        return { label: String(item.label), description: String(item.description ?? ''), path: copy.path };
      }),
    snapshots: () =>
      tree.rows().map((node) => {
        const item = tree.getTreeItem(node);
        const tip = item.tooltip;
        return {
          group: node.group,
          label: String(item.label),
          description: String(item.description ?? ''),
          contextValue: item.contextValue ?? '',
          path: node.view.entry.path,
          state: node.view.state,
          tooltip: typeof tip === 'string' ? tip : (tip?.value ?? ''),
        };
      }),
    statusBar: () => statusBar.snapshot(),
    copies: () => ({
      targets: remote.targets().map((t) => t.remote),
      states: Object.fromEntries(catalog.snapshots.map((s) => [s.entry.name, remote.copyState(s.entry.name) ?? 'no targets'])),
      remoteOnly: remote.remoteOnly().map((r) => r.name),
      failures: remote.failures().map((f) => `${f.target}: ${f.message}`),
    }),
    nextScheduledRun: () => scheduler.nextRun,
    refresh: async () => {
      await locator.refresh();
      await followDatabase();
      await catalog.reload();
    },
    refreshMemoryDigest: async () => {
      await memory.refreshDigest();
      await memory.refreshChanges();
      tree.refresh();
    },
    ...(process.env.AI_MEMORY_BACKUP_TEST_API === '1' ? { testing: { setConfirmationHandler, treeRedraws: () => ({ ...tree.redraws }), removeCopyTargets: async () => { for (const t of remote.targets()) await remote.remove(t.key); } } } : {}),
  };
}

export function deactivate(): void {
  setConfirmationHandler(undefined);
}
