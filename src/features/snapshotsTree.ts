/**
 * The Snapshots view: newest first, in groups by local day — Today, Yesterday, This Week,
 * Earlier (collapsible; Earlier starts collapsed) — so that a row's label is only the local
 * time (with the weekday or date where the group needs it) and its description the age and
 * size: short enough for the default sidebar width. Icon and `contextValue` by state
 * (verified, unverified, sha256 mismatch, manifest missing, encrypted), tooltip with the
 * manifest's details. Refreshes follow the catalog (itself debounced); we never `reveal`
 * inside a refresh (microsoft/vscode#192055).
 */
import type { PreRestoreCopy } from '../core/store/preRestore';
import { FACTS_VERSION } from '../core/store/manifest';
import { checkLabel } from '../core/common/checks';
import { SIGNED_ICON, signatureLine, STATE_ICON, STATE_LABEL } from '../core/store/snapshotState';
import { createHash } from 'node:crypto';
import * as vscode from 'vscode';
import { formatAge, formatBytes } from '../core/common/format';
import { Disposable } from '../util/disposable';
import { tildify } from './databaseLocator';
import type { SnapshotCatalog, SnapshotState, SnapshotView } from './snapshotCatalog';
import type { CopyState, RemoteCopies, TargetConfig } from './remoteCopies';
import { parseSnapshotName } from '../core/store/naming';

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

/** Verified and signed by the operator key (ai-memory 1.0). */
const SIGNED_THEME_ICON = new vscode.ThemeIcon(SIGNED_ICON, new vscode.ThemeColor('testing.iconPassed'));

export type GroupId = 'today' | 'yesterday' | 'week' | 'earlier';

const GROUPS: { id: GroupId; label: string; expanded: boolean }[] = [
  { id: 'today', label: 'Today', expanded: true },
  { id: 'yesterday', label: 'Yesterday', expanded: true },
  { id: 'week', label: 'This Week', expanded: true },
  { id: 'earlier', label: 'Earlier', expanded: false },
];

/**
 * A row of the view: a day group, a snapshot, or a message (the folder cannot be read); the
 * group of the folder's snapshots that are not this database's (ownership.ts), apart and
 * labelled; with off-machine copies also a failed copy, the "Remote" group and its snapshots.
 */
export type Node =
  | { kind: 'group'; group: GroupId; label: string; views: SnapshotView[] }
  | { kind: 'snapshot'; view: SnapshotView; group: GroupId }
  | { kind: 'message'; text: string; detail: string }
  | { kind: 'others'; views: SnapshotView[] }
  | { kind: 'remoteGroup' }
  | { kind: 'remoteSnapshot'; name: string; bytes: number; target: TargetConfig }
  | { kind: 'copyFailure'; key: string; target: string; message: string; hint?: string }
  | { kind: 'preRestoreGroup'; copies: PreRestoreCopy[] }
  | { kind: 'preRestore'; copy: PreRestoreCopy };

const COPY_ICONS: Record<CopyState, string> = { 'local only': 'circle-slash', copying: 'sync~spin', copied: 'cloud', failed: 'cloud-offline' };

/** Whose snapshot, for one of the folder's other snapshots. */
export function ownerLabel(v: SnapshotView): string {
  if (v.owner === 'unknown' || !v.source) return 'database unknown (no manifest)';
  return `of ${tildify(v.source)}${v.host ? ` on ${v.host}` : ''}${v.owner === 'gone' ? ' (not on this machine)' : ''}`;
}

export function localTime(ms: number): string {
  return new Date(ms).toLocaleString(undefined, { year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit' });
}

function startOfDay(ms: number): number {
  const d = new Date(ms);
  d.setHours(0, 0, 0, 0);
  return d.getTime();
}

/** The day group of a time, by the local calendar (This Week: the 7 days up to today). */
export function groupOf(ms: number, now: number): GroupId {
  const today = startOfDay(now);
  if (ms >= today) return 'today'; // also a clock that runs behind: it is the newest
  const yesterday = startOfDay(today - 12 * 3600_000);
  if (ms >= yesterday) return 'yesterday';
  const d = new Date(today);
  d.setDate(d.getDate() - 6);
  return ms >= d.getTime() ? 'week' : 'earlier';
}

/** The row's label: the local time, with what its group leaves open (weekday, or date). */
export function rowLabel(ms: number, group: GroupId, now: number): string {
  const time: Intl.DateTimeFormatOptions = { hour: '2-digit', minute: '2-digit', second: '2-digit' };
  const d = new Date(ms);
  if (group === 'today' || group === 'yesterday') return d.toLocaleTimeString(undefined, time);
  if (group === 'week') return d.toLocaleString(undefined, { weekday: 'short', ...time });
  const sameYear = d.getFullYear() === new Date(now).getFullYear();
  return d.toLocaleString(undefined, { ...(sameYear ? {} : { year: 'numeric' }), month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' });
}

/**
 * The parts of a row's description, joined with " · " — age and size today; more facts
 * (memory counts, changes) are further parts. Keep each short: the row must fit the
 * default sidebar width.
 */
export function rowDescriptionParts(view: SnapshotView, now: number): string[] {
  return [formatAge(now - view.entry.time), formatBytes(view.entry.size), ...(view.entry.archived ? ['archived'] : [])];
}

/** A node's identity among its siblings (the view's rows keep it while their data changes). */
function nodeKey(n: Node): string {
  switch (n.kind) {
    case 'group':
      return `group:${n.group}`;
    case 'snapshot':
      return `snapshot:${n.view.entry.path}`;
    case 'remoteSnapshot':
      return `remote:${n.name}`;
    case 'copyFailure':
      return `copyFailure:${n.key}`; // the target's key: two targets can share a label
    case 'preRestore':
      return `preRestore:${n.copy.path}`;
    default:
      return n.kind;
  }
}

/** A node's own data, without its children's (they are rows of their own). */
function ownData(n: Node): unknown {
  if (n.kind === 'group') return { kind: n.kind, group: n.group, label: n.label, count: n.views.length };
  if (n.kind === 'others') return { kind: n.kind, count: n.views.length };
  if (n.kind === 'preRestoreGroup') return { kind: n.kind, count: n.copies.length };
  return n;
}

/** Bursts of change events within this long are one redraw. */
const REDRAW_DEBOUNCE_MS = 50;

export class SnapshotsTreeProvider extends Disposable implements vscode.TreeDataProvider<Node> {
  private readonly _onDidChangeTreeData = this._register(new vscode.EventEmitter<Node | Node[] | undefined>());
  readonly onDidChangeTreeData = this._onDidChangeTreeData.event;

  constructor(
    private readonly catalog: SnapshotCatalog,
    private readonly remote?: RemoteCopies,
    /** The current database's memories digest, for the "= now" marker. */
    private readonly currentDigest: () => string | undefined = () => undefined,
    /** What changed since the previous snapshot ("+3 −1 ~2"), once known. */
    private readonly changeOf: (path: string) => string | undefined = () => undefined,
  ) {
    super();
    this._register(catalog.onDidChange(() => this.refresh()));
    if (remote) this._register(remote.onDidChange(() => this.refresh()));
    // Relative ages ("5 min ago") go stale; re-render them once a minute.
    const tick = setInterval(() => this.refresh(), 60_000);
    this._register({ dispose: () => clearInterval(tick) });
    this._register({ dispose: () => this.redrawTimer && clearTimeout(this.redrawTimer) });
  }

  /**
   * The node objects handed to the view, by key (its parent's key, then its own). They are
   * updated in place, so the extension host keeps the handle it maps to each row.
   */
  private readonly held = new Map<string, Node>();
  private readonly keys = new WeakMap<Node, string>();
  /** What the view was last told to draw: the rows' keys in order, and each row's look. */
  private drawn: { structure: string; looks: Map<string, string> } | undefined;
  private redrawTimer: NodeJS.Timeout | undefined;
  /** How many redraws the view was asked for: of the whole tree, of some rows in place (the test host reads it). */
  readonly redraws = { whole: 0, rows: 0 };

  /**
   * Redraws what changed. A redraw of the whole tree drops every row's handle in the extension
   * host until the view asks for the rows again: a right-click landing in that moment reaches
   * its command without the row (which then asks which snapshot). So:
   *  - a burst of events (the catalog, then the remote state it reloads) is one redraw;
   *  - nothing is redrawn when nothing would look different (a reload that found the same
   *    files, the minute's tick with the same ages);
   *  - when the same rows are there in the same places (the "= now" marker, change counts, a
   *    verification, a copy state), only the rows that changed are redrawn, in place;
   *  - only rows coming, going or moving redraw the whole tree.
   * Every held row gets the fresh data either way, so a command never acts on an older row
   * than the catalog's.
   */
  refresh(): void {
    if (this.redrawTimer) return;
    this.redrawTimer = setTimeout(() => {
      this.redrawTimer = undefined;
      this.redraw();
    }, REDRAW_DEBOUNCE_MS);
  }

  private redraw(): void {
    const now = Date.now();
    const rows: { key: string; node: Node; look: string }[] = [];
    const walk = (parent: Node | undefined, parentKey: string) => {
      for (const node of this.freshChildren(parent)) {
        const key = `${parentKey}>${nodeKey(node)}`;
        rows.push({ key, node, look: this.lookOf(node, now) });
        walk(node, key);
      }
    };
    walk(undefined, '');
    const structure = rows.map((r) => r.key).join('\n');
    const before = this.drawn;
    const present = new Set(rows.map((r) => r.key));
    for (const key of [...this.held.keys()]) if (!present.has(key)) this.held.delete(key);
    // Every held row gets its fresh data; those whose look changed are redrawn.
    const changed = rows.map((r) => ({ node: this.hold(r.key, r.node), changed: before?.looks.get(r.key) !== r.look })).filter((r) => r.changed).map((r) => r.node);
    this.drawn = { structure, looks: new Map(rows.map((r) => [r.key, r.look])) };
    if (!before || before.structure !== structure) {
      this.redraws.whole++;
      this._onDidChangeTreeData.fire(undefined);
    } else if (changed.length) {
      this.redraws.rows++;
      this._onDidChangeTreeData.fire(changed);
    }
  }

  /**
   * A digest of everything a row's item is drawn from (getTreeItem): its own data (a group's
   * count, not its children, which are rows of their own), and for a snapshot the "= now"
   * marker, the change since the previous one, the copy state and the age as the row and its
   * tooltip say it. Built from the data, not from the items: at thousands of rows a minute's
   * tick must not format every date, and an item's tooltip (a MarkdownString) hides its text
   * from JSON.
   */
  private lookOf(n: Node, now: number): string {
    let parts: unknown[] = [ownData(n)];
    if (n.kind === 'snapshot') {
      const { entry } = n.view;
      parts = [...parts, entry.manifest?.memories_digest !== undefined && entry.manifest.memories_digest === this.currentDigest(), this.changeOf(entry.path) ?? null, this.remote?.copyState(entry.name) ?? null, formatAge(now - entry.time), new Date(now).getFullYear()];
    } else if (n.kind === 'preRestore') {
      parts.push(formatAge(now - n.copy.time));
    }
    return createHash('sha1').update(JSON.stringify(parts)).digest('base64');
  }

  /** The held object for `key`, given `fresh`'s data in place (or `fresh` itself, now held). */
  private hold(key: string, fresh: Node): Node {
    const held = this.held.get(key);
    if (held === fresh) return held;
    if (!held) {
      this.held.set(key, fresh);
      this.keys.set(fresh, key);
      return fresh;
    }
    for (const k of Object.keys(held)) delete (held as Record<string, unknown>)[k];
    Object.assign(held, fresh);
    return held;
  }

  getChildren(element?: Node): Node[] {
    const parentKey = element ? this.keys.get(element) : '';
    // A parent no longer held (its row went, or came back as another object) gives fresh
    // children, unheld: its old data must not overwrite the rows the view holds now.
    if (parentKey === undefined || (element && this.held.get(parentKey) !== element)) return this.freshChildren(element);
    return this.freshChildren(element).map((n) => this.hold(`${parentKey}>${nodeKey(n)}`, n));
  }

  private freshChildren(element?: Node): Node[] {
    if (element?.kind === 'others') return element.views.map((view) => ({ kind: 'snapshot', view, group: 'earlier' }));
    if (element?.kind === 'preRestoreGroup') return element.copies.map((copy) => ({ kind: 'preRestore', copy }));
    if (element?.kind === 'remoteGroup') return (this.remote?.remoteOnly() ?? []).map((r) => ({ kind: 'remoteSnapshot', ...r }));
    if (element) return element.kind === 'group' ? element.views.map((view) => ({ kind: 'snapshot', view, group: element.group })) : [];
    if (this.catalog.error) return [{ kind: 'message', text: 'Cannot read the backup folder', detail: this.catalog.error }];
    const now = Date.now();
    const by = new Map<GroupId, SnapshotView[]>();
    for (const view of this.catalog.snapshots) {
      const g = groupOf(view.entry.time, now);
      by.set(g, [...(by.get(g) ?? []), view]);
    }
    const rows: Node[] = (this.remote?.failures() ?? []).map((f) => ({ kind: 'copyFailure', key: f.key, target: f.target, message: f.message, hint: f.hint }));
    rows.push(...GROUPS.filter((g) => by.has(g.id)).map((g): Node => ({ kind: 'group', group: g.id, label: g.label, views: by.get(g.id) ?? [] })));
    // The folder's other snapshots (another database sharing the folder, a moved one), apart and labelled.
    if (this.catalog.others.length) rows.push({ kind: 'others', views: this.catalog.others });
    if (this.remote?.remoteOnly().length) rows.push({ kind: 'remoteGroup' });
    // What restores replaced: the database as it was before each one (undo a restore).
    if (this.catalog.preRestore.length) rows.push({ kind: 'preRestoreGroup', copies: this.catalog.preRestore });
    return rows;
  }

  /** Every snapshot row of this database, in the view's order (groups flattened). */
  rows(): Extract<Node, { kind: 'snapshot' }>[] {
    return this.getChildren().flatMap((n) => (n.kind === 'group' ? (this.getChildren(n) as Extract<Node, { kind: 'snapshot' }>[]) : []));
  }

  getTreeItem(node: Node): vscode.TreeItem {
    if (node.kind === 'others') {
      const item = new vscode.TreeItem('Other databases\' snapshots', vscode.TreeItemCollapsibleState.Collapsed);
      item.id = 'aiMemory.otherSnapshots';
      item.description = `${node.views.length}`;
      item.tooltip = 'Snapshots in this folder that were not taken of the selected database (their manifest names another database, or none). Retention never deletes them, and Restore Latest never picks them.';
      item.iconPath = new vscode.ThemeIcon('folder-library');
      return item;
    }
    if (node.kind === 'preRestoreGroup') {
      const item = new vscode.TreeItem('Before restore', vscode.TreeItemCollapsibleState.Collapsed);
      item.id = 'aiMemory.preRestoreGroup';
      item.description = `${node.copies.length}`;
      item.tooltip = 'Your database as it was before each restore (kept beside it as <name>.pre-restore-<time>.db, or with its own extension when it is not .db; with its -wal). Restore one to undo a restore. The newest is always kept; older ones follow the setting aiMemory.backup.keepPreRestore.';
      item.iconPath = new vscode.ThemeIcon('history');
      item.contextValue = 'aiMemory.preRestoreGroup';
      return item;
    }
    if (node.kind === 'preRestore') {
      const { copy } = node;
      const item = new vscode.TreeItem(localTime(copy.time));
      item.id = `preRestore:${copy.path}`;
      item.description = [formatAge(Date.now() - copy.time), formatBytes(copy.size), ...(copy.sidecars.some((x) => x.endsWith('-wal')) ? ['with -wal'] : [])].join(' · ');
      item.tooltip = `${copy.name}\nThe database as it was right before the restore of ${localTime(copy.time)}, in ${tildify(copy.path.slice(0, -copy.name.length))}.\nRestore puts it back (its -wal included); your current database is kept the same way first.`;
      item.iconPath = new vscode.ThemeIcon('discard');
      item.contextValue = 'aiMemory.preRestore';
      item.resourceUri = vscode.Uri.file(copy.path);
      item.accessibilityInformation = { label: `Database before the restore of ${localTime(copy.time)}, ${formatBytes(copy.size)}` };
      return item;
    }
    if (node.kind === 'copyFailure') {
      const item = new vscode.TreeItem('Off-machine copy failed');
      item.description = node.target;
      item.tooltip = `${node.message}${node.hint ? `\n${node.hint}` : ''}\nYour local snapshots are fine; the copy is retried by itself. Click to retry now.`;
      item.iconPath = new vscode.ThemeIcon('cloud-offline', new vscode.ThemeColor('list.warningForeground'));
      item.contextValue = 'aiMemory.copyFailure';
      item.command = { command: 'aiMemory.retryCopy', title: 'Retry' };
      return item;
    }
    if (node.kind === 'remoteGroup') {
      const item = new vscode.TreeItem('Remote', vscode.TreeItemCollapsibleState.Expanded);
      item.id = 'aiMemory.remoteGroup';
      item.description = 'only on an off-machine target';
      item.iconPath = new vscode.ThemeIcon('cloud');
      item.contextValue = 'aiMemory.remoteGroup';
      return item;
    }
    if (node.kind === 'remoteSnapshot') {
      const t = parseSnapshotName(node.name)?.time;
      const item = new vscode.TreeItem(t !== undefined ? localTime(t) : node.name);
      item.id = `remote:${node.name}`;
      item.description = `${formatBytes(node.bytes)} · on ${node.target.remote}`;
      item.tooltip = `${node.name}\nOnly on ${node.target.remote}. Restore downloads it into the backup folder, checks it against its manifest (sha256, size) and with quick_check, then restores it as usual.`;
      item.iconPath = new vscode.ThemeIcon('cloud-download');
      item.contextValue = 'aiMemory.remoteSnapshot';
      return item;
    }
    if (node.kind === 'group') {
      const spec = GROUPS.find((g) => g.id === node.group);
      const item = new vscode.TreeItem(node.label, spec?.expanded ? vscode.TreeItemCollapsibleState.Expanded : vscode.TreeItemCollapsibleState.Collapsed);
      item.id = `aiMemory.group.${node.group}`;
      item.description = `${node.views.length}`;
      item.contextValue = 'aiMemory.group';
      item.accessibilityInformation = { label: `${node.label}: ${node.views.length} snapshot${node.views.length === 1 ? '' : 's'}` };
      return item;
    }
    if (node.kind === 'message') {
      const item = new vscode.TreeItem(node.text);
      item.description = node.detail;
      item.tooltip = node.detail;
      item.iconPath = new vscode.ThemeIcon('warning', new vscode.ThemeColor('list.warningForeground'));
      return item;
    }
    const { entry, state, stateDetail, verification, retention } = node.view;
    const now = Date.now();
    const item = new vscode.TreeItem(rowLabel(entry.time, node.group, now));
    item.id = entry.path;
    const facts = entry.manifest?.facts_version === FACTS_VERSION ? entry.manifest : undefined;
    const memories = entry.manifest?.memories;
    const sameAsNow = !!facts?.memories_digest && facts.memories_digest === this.currentDigest();
    // Short enough for the default sidebar width (the label already says the time): with a
    // memory count, "412 memories · " then the most useful of: "= now" (the same memories as
    // the current database), what changed since the previous snapshot ("+3 −1 ~2"), the age.
    // The size, the age and the change stay in the tooltip.
    const change = node.view.owner === 'this' ? this.changeOf(entry.path) : undefined;
    const parts = rowDescriptionParts(node.view, now);
    if (memories !== undefined) parts.splice(0, 2, `${memories.toLocaleString()} memories`, sameAsNow ? '= now' : (change ?? parts[0]));
    else if (sameAsNow) parts[0] = '= now';
    item.description = [...parts, ...(node.view.owner === 'this' ? [] : [ownerLabel(node.view)]), ...(entry.future ? ['dated in the future'] : [])].join(' · ');
    const copy = this.remote?.copyState(entry.name);
    if (copy) item.description += ` · ${copy}`;
    item.iconPath = state === 'verified' && entry.signature?.state === 'verified' ? SIGNED_THEME_ICON : ICONS[state];
    item.contextValue = CONTEXT_VALUES[state];
    item.resourceUri = vscode.Uri.file(entry.path);
    const m = entry.manifest;
    const md = new vscode.MarkdownString(undefined, true);
    md.appendMarkdown(`**${STATE_LABEL[state]}** — ${stateDetail}\n\n`);
    md.appendMarkdown(`\`${entry.name}\`\n\n`);
    const rows: [string, string][] = [
      ['Taken', `${localTime(entry.time)}, ${formatAge(now - entry.time)} (${new Date(entry.time).toISOString()})${entry.timeSource === 'mtime' ? ' — from the file date' : ''}`],
      ['Size', `${formatBytes(entry.size)} (${entry.size.toLocaleString()} bytes)`],
    ];
    if (m) {
      rows.push(['SHA-256', `\`${m.sha256}\``]);
      if (m.memories !== undefined) rows.push(['Memories', m.memories.toLocaleString()]);
      if (m.memories_by_tier) rows.push(['Tiers', Object.entries(m.memories_by_tier).map(([k, n]) => `${k} ${n}`).join(', ')]);
      if (m.memories_by_namespace) rows.push(['Namespaces', Object.entries(m.memories_by_namespace).slice(0, 12).map(([k, n]) => `${k || '(none)'} ${n}`).join(', ')]);
      if (m.links !== undefined) rows.push(['Links', `${m.links.toLocaleString()}${m.archived !== undefined ? ` · ${m.archived.toLocaleString()} archived` : ''}`]);
      if (change) rows.push(['Since previous', change === 'no change' ? 'no memory added, removed or edited' : `${change} (added, removed, edited memories)`]);
      if (sameAsNow) rows.push(['Current', 'the same memories as the current database (recalls aside)']);
      if (m.schema_version !== undefined) rows.push(['Schema', `version ${m.schema_version}`]);
      if (m.integrity) rows.push(['Check', `${m.integrity}${m.check && m.check !== 'off' ? ` (${checkLabel(m.check)})` : ''}`]);
      rows.push(['Source', tildify(m.source_db)]);
      rows.push(['Made by', m.tool ?? `ai-memory ${m.version}`]);
    }
    const sig = signatureLine(entry);
    if (sig && entry.signature?.state !== 'refused') rows.push(['Signature', sig]);
    if (entry.archived) rows.push(['Stored', 'in the page-dedup archive (.ai-memory-archive): restore and verify rebuild it; `ai-memory-backup materialize` gives a plain file']);
    if (retention) rows.push(['Kept', retention]);
    if (verification) rows.push(['Last verified', `${localTime(Date.parse(verification.at))}: ${verification.ok ? 'ok' : 'FAILED'}`]);
    if (copy) rows.push(['Off-machine', `$(${COPY_ICONS[copy]}) ${copy}`]);
    md.appendMarkdown(rows.map(([k, v]) => `${k}: ${v}`).join('  \n'));
    item.tooltip = md;
    item.accessibilityInformation = { label: `Snapshot of ${localTime(entry.time)}, ${memories !== undefined ? `${memories} memories, ` : ''}${sameAsNow ? 'same memories as now, ' : ''}${change && change !== 'no change' ? `changes since the previous: ${change}, ` : ''}${formatBytes(entry.size)}, ${STATE_LABEL[state]}` };
    return item;
  }
}
