/**
 * Typed access to the extension's settings.
 *
 * Workspace trust: `aiMemory.databasePath` and `aiMemory.backup.directory` are listed in
 * `capabilities.untrustedWorkspaces.restrictedConfigurations`, so in an untrusted workspace
 * VS Code itself hands us only the user's value for them — a cloned repository's
 * `.vscode/settings.json` cannot aim a restore at another file. We still read them through
 * `inspect()` to say *which* value is in force.
 */
import { EXTENSION_ID } from '../contributionIds';
import * as os from 'node:os';
import * as vscode from 'vscode';
import { expandPath } from '../core/discovery/paths';
import type { RetentionPolicy } from '../core/store/retention';
import { readPolicy } from './retentionSetting';

import type { VerifyMode } from '../core/common/checks';

export interface Settings {
  /** Raw setting value, '' when unset. */
  databasePath: string;
  intervalMinutes: number;
  keep: number;
  /** The retention policy (restic's semantics) from aiMemory.backup.retention / retentionCustom / keep. */
  policy: RetentionPolicy;
  /** Why the retention settings cannot be read (then `policy` keeps everything). */
  policyProblem?: string;
  /** How many of the newest kept snapshots stay plain files (aiMemory.backup.plain). */
  plain: number;
  /** Copies a restore keeps beside the database (`*.pre-restore-*`), newest first; 0 = all. */
  keepPreRestore: number;
  /** Raw setting value, '' when unset (then `backups` beside the database). */
  directory: string;
  verify: VerifyMode;
  /** Raw setting value, '' when unset (then the operator key where ai-memory keeps it). A path, never the key. */
  signingKeyPath: string;
}

const SECTION = 'aiMemory';

export function readSettings(): Settings {
  const c = vscode.workspace.getConfiguration(SECTION);
  const num = (key: string, dflt: number, whole = true) => {
    const v = c.get<number>(key, dflt);
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) return dflt;
    return whole ? Math.floor(v) : v;
  };
  const verify = c.get<string>('backup.verify', 'quick');
  // A keep that is not a whole number ≥ 0 (-1 for "all", 2.5, "48") deletes nothing and says so, as the retention settings do.
  const retention = readPolicy(c, c.get<unknown>('backup.keep', 48));
  return {
    databasePath: (c.get<string>('databasePath', '') ?? '').trim(),
    intervalMinutes: num('backup.intervalMinutes', 60, false), // fractions allowed (0.5 = 30 s)
    keep: num('backup.keep', 48),
    policy: retention.policy,
    ...(retention.problem ? { policyProblem: retention.problem } : {}),
    plain: Math.max(1, num('backup.plain', 3)),
    keepPreRestore: num('backup.keepPreRestore', 3),
    directory: (c.get<string>('backup.directory', '') ?? '').trim(),
    verify: verify === 'full' || verify === 'off' ? verify : 'quick',
    signingKeyPath: (c.get<string>('backup.signingKeyPath', '') ?? '').trim(),
  };
}

/** Where `aiMemory.databasePath` is set, in the Settings editor's words ('User', 'Workspace'); undefined when unset. */
export function databasePathScope(): 'User' | 'Workspace' | undefined {
  const i = vscode.workspace.getConfiguration(SECTION).inspect<string>('databasePath');
  const set = (v: string | undefined) => typeof v === 'string' && v.trim() !== '';
  if (set(i?.workspaceValue)) return 'Workspace';
  if (set(i?.globalValue)) return 'User';
  return undefined;
}

/**
 * Clears `aiMemory.databasePath` wherever it is set (workspace, user — in a remote
 * window, user settings on both sides: VS Code writes the one that holds the value first).
 */
export async function clearDatabasePath(): Promise<void> {
  const c = () => vscode.workspace.getConfiguration(SECTION);
  const targets: [keyof NonNullable<ReturnType<ReturnType<typeof c>['inspect']>>, vscode.ConfigurationTarget][] = [
    ['workspaceValue', vscode.ConfigurationTarget.Workspace],
    ['globalValue', vscode.ConfigurationTarget.Global],
  ];
  for (const [key, target] of targets) {
    for (let i = 0; i < 2 && c().inspect<string>('databasePath')?.[key] !== undefined; i++) {
      await c().update('databasePath', undefined, target);
    }
  }
}

export function affectsUs(e: vscode.ConfigurationChangeEvent): boolean {
  return e.affectsConfiguration(SECTION);
}

/** Expands `~`, `${userHome}`, `${workspaceFolder}` (and `${env:X}`) in a path setting. */
/** Whether `raw` names a path through the workspace (`${workspaceFolder…}`), which an untrusted workspace does not resolve. */
export function namesWorkspace(raw: string): boolean {
  return /\$\{workspaceFolder(?:Basename)?(?::[^}]*)?\}/.test(raw);
}

export function expandSettingPath(raw: string): string | undefined {
  // Untrusted, the workspace's folders resolve nothing: a user setting's ${workspaceFolder} (or
  // a relative path) would name a file the cloned repository decides — its own database, or a
  // symbolic link to any file of yours, backed up into a folder it chose or restored over.
  // Relative paths are then taken from home, as with no folder open.
  const folders = vscode.workspace.isTrusted ? (vscode.workspace.workspaceFolders ?? []).map((f) => ({ name: f.name, path: f.uri.fsPath })) : [];
  return expandPath(raw, {
    home: os.homedir(),
    env: process.env,
    workspaceFolder: folders.length === 1 ? folders[0].path : undefined,
    workspaceFolders: folders,
    baseDir: folders[0]?.path ?? os.homedir(),
  });
}

export function openSettings(): Thenable<unknown> {
  return vscode.commands.executeCommand('workbench.action.openSettings', `@ext:${EXTENSION_ID}`);
}
