/**
 * Which database we protect, found without asking: the `aiMemory.databasePath` setting
 * when set; else the database the user picked earlier (remembered); else discovery
 * (src/core/discovery/discovery.ts, in the order of the MCP configuration files). One found → used;
 * several → the user picks once and it is remembered; none → the welcome view offers
 * "Select Database…". Every decision says where it came from, in the log and tooltips.
 */
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { createNodeDiscoveryFs, describeSource, discoverDatabases, type Candidate } from '../core/discovery/discovery';
import { formatBytes } from '../core/common/format';
import { Disposable } from '../util/disposable';
import { offer } from './prompts';
import { clearDatabasePath, databasePathScope, expandSettingPath, namesWorkspace, openSettings, readSettings } from './settings';

export interface DatabaseChoice {
  path: string;
  /** Human-readable origin: "setting aiMemory.databasePath (User)", ".vscode/mcp.json (server "memory")", … */
  source: string;
  via: 'setting' | 'remembered' | 'discovered';
  /** The file is there (a setting, or a configuration, may name one that is not). */
  exists: boolean;
}

const REMEMBERED_KEY = 'aiMemory.selectedDatabase';

export function tildify(p: string): string {
  const home = os.homedir();
  return p === home || p.startsWith(home + path.sep) ? `~${p.slice(home.length)}` : p;
}

export class DatabaseLocator extends Disposable {
  private readonly _onDidChange = this._register(new vscode.EventEmitter<void>());
  readonly onDidChange = this._onDidChange.event;
  current: DatabaseChoice | undefined;
  candidates: Candidate[] = [];
  /** Several databases were found and none is chosen yet. */
  needsChoice = false;
  private refreshing: Promise<void> | undefined;
  private refreshAgain: Promise<void> | undefined;
  private askedToChoose = false;

  constructor(
    private readonly context: vscode.ExtensionContext,
    private readonly log: vscode.LogOutputChannel,
  ) {
    super();
  }

  /**
   * Re-resolves the database (settings, remembered choice, discovery). A call while a run is
   * in progress gets one more run after it (shared by all such calls): what changed — e.g. the
   * restricted settings that apply once the workspace is trusted — may come after the running
   * one read it.
   */
  refresh(): Promise<void> {
    if (this.refreshing) {
      const again = () => {
        this.refreshAgain = undefined;
        return this.refresh();
      };
      this.refreshAgain ??= this.refreshing.then(again, again);
      return this.refreshAgain;
    }
    this.refreshing = this.resolve().finally(() => {
      this.refreshing = undefined;
    });
    return this.refreshing;
  }

  private async resolve(): Promise<void> {
    const before = this.current;
    const settings = readSettings();
    let choice: Omit<DatabaseChoice, 'exists'> | undefined;
    if (settings.databasePath) {
      const p = expandSettingPath(settings.databasePath);
      if (p) choice = { path: p, source: `setting aiMemory.databasePath (${databasePathScope() ?? 'User'})`, via: 'setting' };
      else if (!vscode.workspace.isTrusted && namesWorkspace(settings.databasePath)) {
        this.log.info(`aiMemory.databasePath "${settings.databasePath}" names a path in this untrusted workspace: not used until the workspace is trusted (the repository would decide what it is).`);
      } else this.log.warn(`aiMemory.databasePath "${settings.databasePath}" cannot be resolved (an unknown variable?); ignoring it.`);
    }
    const trusted = vscode.workspace.isTrusted;
    const folders = trusted ? (vscode.workspace.workspaceFolders ?? []).map((f) => ({ name: f.name, path: f.uri.fsPath })) : [];
    const result = await discoverDatabases({
      home: os.homedir(),
      env: process.env,
      platform: process.platform,
      // Untrusted: the workspace's own MCP files are not read (a cloned repository could aim us anywhere).
      workspaceFolders: folders,
      vscodeUserDir: path.dirname(path.dirname(this.context.globalStorageUri.fsPath)),
      fs: createNodeDiscoveryFs(),
    });
    this.candidates = result.candidates;
    for (const d of result.diagnostics) this.log.info(`discovery: ${d}`);
    if (!trusted) this.log.info('discovery: untrusted workspace — its .vscode/mcp.json, .mcp.json, .cursor and .gemini files are ignored');
    const existing = result.candidates.filter((c) => c.exists);
    this.needsChoice = false;
    if (!choice) {
      const remembered = this.context.globalState.get<string>(REMEMBERED_KEY);
      if (remembered && (await isFile(remembered))) {
        const match = result.candidates.find((c) => c.path === remembered);
        choice = { path: remembered, source: match ? `your choice, also in ${describeSource(match.sources[0])}` : 'your choice', via: 'remembered' };
      }
    }
    if (!choice && existing.length === 1) {
      choice = { path: existing[0].path, source: describeSource(existing[0].sources[0]), via: 'discovered' };
    }
    if (!choice && existing.length > 1) this.needsChoice = true;
    this.current = choice ? { ...choice, exists: choice.via === 'setting' ? await isFile(choice.path) : true } : undefined;
    if (this.current) {
      const c = this.current;
      // Logged when the database or where it comes from changes (e.g. once the workspace is trusted).
      if (c.path !== before?.path || c.source !== before?.source || c.exists !== before?.exists) {
        this.log.info(`database: ${c.path} — from ${c.source}${c.exists ? '' : ' — NOT FOUND: no file at that path'}`);
      }
    } else if (this.needsChoice) {
      this.log.info(`database: ${existing.length} found, waiting for a choice: ${existing.map((c) => c.path).join(', ')}`);
    } else {
      const configured = result.candidates.filter((c) => !c.exists).map((c) => c.path);
      this.log.info(`database: none found${configured.length ? ` (configured but missing: ${configured.join(', ')})` : ''}`);
    }
    this._onDidChange.fire();
    if (this.needsChoice && !this.askedToChoose) {
      this.askedToChoose = true;
      void vscode.window
        .showInformationMessage(`AI Memory Backup found ${existing.length} ai-memory databases. Choose the one to protect.`, 'Choose…')
        .then((a) => (a ? this.pick() : undefined));
    }
  }

  /** "Select Database…": pick a found database or browse for one; remembered across sessions. */
  async pick(): Promise<void> {
    await this.refresh();
    type Item = vscode.QuickPickItem & { action?: 'browse' | 'auto' | 'settings'; dbPath?: string };
    const items: Item[] = [];
    const settings = readSettings();
    if (settings.databasePath) {
      items.push({ label: '$(settings-gear) The setting aiMemory.databasePath decides', detail: `${settings.databasePath} — pick a database below to clear the setting and use that one`, action: 'settings' });
    }
    for (const c of this.candidates) {
      items.push({
        label: `${c.path === this.current?.path ? '$(check) ' : ''}${tildify(c.path)}`,
        description: c.exists ? formatBytes(c.size ?? 0) : 'not found',
        detail: c.sources.map(describeSource).join(' · '),
        dbPath: c.path,
      });
    }
    if (this.current && !this.candidates.some((c) => c.path === this.current?.path)) {
      items.push({ label: `$(check) ${tildify(this.current.path)}`, description: this.current.source, dbPath: this.current.path });
    }
    items.push({ label: '', kind: vscode.QuickPickItemKind.Separator });
    items.push({ label: '$(folder-opened) Browse…', detail: 'Choose any SQLite file', action: 'browse' });
    if (this.context.globalState.get(REMEMBERED_KEY)) items.push({ label: '$(search) Use automatic discovery', detail: 'Forget the database chosen here', action: 'auto' });
    const picked = await vscode.window.showQuickPick(items, { title: 'AI Memory: Select Database', placeHolder: 'The ai-memory database to back up', matchOnDetail: true });
    if (!picked) return;
    if (picked.action === 'settings') {
      await openSettings();
      return;
    }
    if (picked.action === 'auto') {
      await this.context.globalState.update(REMEMBERED_KEY, undefined);
      await this.refresh();
      return;
    }
    let chosen = picked.dbPath;
    if (picked.action === 'browse') {
      const uris = await vscode.window.showOpenDialog({
        canSelectMany: false,
        openLabel: 'Protect this database',
        title: 'Select the ai-memory database',
        filters: { 'SQLite database': ['db', 'sqlite', 'sqlite3'], 'All files': ['*'] },
        defaultUri: vscode.Uri.file(this.current ? path.dirname(this.current.path) : os.homedir()),
      });
      chosen = uris?.[0]?.fsPath;
    }
    if (!chosen) return;
    await this.choose(chosen);
  }

  /**
   * Remembers `dbPath` as the user's choice (also `aiMemory.selectDatabase <path>`). While the
   * setting aiMemory.databasePath is set it decides; the user is offered to clear it and use
   * this choice.
   */
  async choose(dbPath: string): Promise<void> {
    await this.context.globalState.update(REMEMBERED_KEY, dbPath);
    this.log.info(`database chosen: ${dbPath}`);
    await this.refresh();
    const setting = readSettings().databasePath;
    if (setting && this.current?.path !== dbPath) {
      const scope = databasePathScope() ?? 'User';
      const use = 'Clear the Setting and Use This';
      const a = await offer(`The setting aiMemory.databasePath (${scope} settings) is set to ${setting}, and it decides over this choice. Clear it and protect ${tildify(dbPath)}?`, [use, 'Open Settings']);
      if (a === use) {
        await clearDatabasePath();
        this.log.info(`setting aiMemory.databasePath cleared (${scope} settings) to use the chosen database`);
        await this.refresh();
      } else if (a === 'Open Settings') {
        await openSettings();
      }
    }
  }
}

async function isFile(p: string): Promise<boolean> {
  try {
    return (await fsp.stat(p)).isFile();
  } catch {
    return false;
  }
}
