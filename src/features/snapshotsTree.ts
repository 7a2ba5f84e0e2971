/**
 * The Snapshots view: newest first; label = local date and time, description = relative
 * age and size, icon and `contextValue` by state (verified, unverified, sha256 mismatch,
 * manifest missing, encrypted), tooltip with the manifest's details. Refreshes follow the
 * catalog (itself debounced); we never `reveal` inside a refresh (microsoft/vscode#192055).
 */
import { checkLabel } from '../core/common/checks';
import { STATE_ICON, STATE_LABEL } from '../core/store/snapshotState';
import * as vscode from 'vscode';
import { formatAge, formatBytes } from '../core/common/format';
import { Disposable } from '../util/disposable';
import { tildify } from './databaseLocator';
import type { SnapshotCatalog, SnapshotState, SnapshotView } from './snapshotCatalog';

export const CONTEXT_VALUES: Record<SnapshotState, string> = {
  verified: 'aiMemory.snapshot.verified',
  unverified: 'aiMemory.snapshot.unverified',
  mismatch: 'aiMemory.snapshot.mismatch',
  noManifest: 'aiMemory.snapshot.noManifest',
  encrypted: 'aiMemory.snapshot.encrypted',
};

/** The state's codicon in its theme colour (pass/fail colours as the Testing view uses them). */
const STATE_COLOUR: Partial<Record<SnapshotState, string>> = {
  verified: 'testing.iconPassed',
  mismatch: 'testing.iconFailed',
  noManifest: 'list.warningForeground',
};
const ICONS = Object.fromEntries(
  (Object.keys(STATE_ICON) as SnapshotState[]).map((s) => [s, new vscode.ThemeIcon(STATE_ICON[s], STATE_COLOUR[s] ? new vscode.ThemeColor(STATE_COLOUR[s]) : undefined)]),
) as Record<SnapshotState, vscode.ThemeIcon>;

/** A row of the view: a snapshot, or a message (the folder cannot be read). */
export type Node = { kind: 'snapshot'; view: SnapshotView } | { kind: 'message'; text: string; detail: string };

export function localTime(ms: number): string {
  return new Date(ms).toLocaleString(undefined, { year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit' });
}

export class SnapshotsTreeProvider extends Disposable implements vscode.TreeDataProvider<Node> {
  private readonly _onDidChangeTreeData = this._register(new vscode.EventEmitter<Node | undefined>());
  readonly onDidChangeTreeData = this._onDidChangeTreeData.event;

  constructor(private readonly catalog: SnapshotCatalog) {
    super();
    this._register(catalog.onDidChange(() => this.refresh()));
    // Relative ages ("5 min ago") go stale; re-render them once a minute.
    const tick = setInterval(() => this.refresh(), 60_000);
    this._register({ dispose: () => clearInterval(tick) });
  }

  refresh(): void {
    this._onDidChangeTreeData.fire(undefined);
  }

  getChildren(element?: Node): Node[] {
    if (element) return [];
    if (this.catalog.error) return [{ kind: 'message', text: 'Cannot read the backup folder', detail: this.catalog.error }];
    return this.catalog.snapshots.map((view) => ({ kind: 'snapshot', view }));
  }

  getTreeItem(node: Node): vscode.TreeItem {
    if (node.kind === 'message') {
      const item = new vscode.TreeItem(node.text);
      item.description = node.detail;
      item.tooltip = node.detail;
      item.iconPath = new vscode.ThemeIcon('warning', new vscode.ThemeColor('list.warningForeground'));
      return item;
    }
    const { entry, state, stateDetail, verification, retention } = node.view;
    const item = new vscode.TreeItem(localTime(entry.time));
    item.id = entry.path;
    item.description = `${formatAge(Date.now() - entry.time)} · ${formatBytes(entry.size)}${entry.archived ? ' · archived' : ''}`;
    item.iconPath = ICONS[state];
    item.contextValue = CONTEXT_VALUES[state];
    item.resourceUri = vscode.Uri.file(entry.path);
    const m = entry.manifest;
    const md = new vscode.MarkdownString(undefined, true);
    md.appendMarkdown(`**${STATE_LABEL[state]}** — ${stateDetail}\n\n`);
    md.appendMarkdown(`\`${entry.name}\`\n\n`);
    const rows: [string, string][] = [
      ['Taken', `${localTime(entry.time)} (${new Date(entry.time).toISOString()})${entry.timeSource === 'mtime' ? ' — from the file date' : ''}`],
      ['Size', `${formatBytes(entry.size)} (${entry.size.toLocaleString()} bytes)`],
    ];
    if (m) {
      rows.push(['SHA-256', `\`${m.sha256}\``]);
      if (m.memories !== undefined) rows.push(['Memories', m.memories.toLocaleString()]);
      if (m.schema_version !== undefined) rows.push(['Schema', `version ${m.schema_version}`]);
      if (m.integrity) rows.push(['Check', `${m.integrity}${m.check && m.check !== 'off' ? ` (${checkLabel(m.check)})` : ''}`]);
      rows.push(['Source', tildify(m.source_db)]);
      rows.push(['Made by', m.tool ?? `ai-memory ${m.version}`]);
    }
    if (entry.archived) rows.push(['Stored', 'in the page-dedup archive (.ai-memory-archive): restore and verify rebuild it; `ai-memory-backup materialize` gives a plain file']);
    if (retention) rows.push(['Kept', retention]);
    if (verification) rows.push(['Last verified', `${localTime(Date.parse(verification.at))}: ${verification.ok ? 'ok' : 'FAILED'}`]);
    md.appendMarkdown(rows.map(([k, v]) => `${k}: ${v}`).join('  \n'));
    item.tooltip = md;
    item.accessibilityInformation = { label: `Snapshot of ${localTime(entry.time)}, ${formatBytes(entry.size)}, ${STATE_LABEL[state]}` };
    return item;
  }
}
