/**
 * What a snapshot holds, in VS Code: Open Snapshot (a read-only overview document and a
 * memory browser that asks the engine for one page at a time — nothing loads every memory
 * into the extension host), Compare (with the current database, the previous snapshot, or
 * two selected ones: a report document and a pick list of the changes; an edited memory
 * opens `vscode.diff` of two read-only virtual documents), and Restore Selected Memories
 * (an import file handed to ai-memory's own `import`; we never write the live database).
 * Native views and virtual documents only: they follow the theme, work from the keyboard
 * and load nothing from the network.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { constants as fsc, promises as fsp } from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { importCommand, type DiffOutcome, type ExtractOutcome, type InspectOutcome } from '../cli/protocol';
import { errorMessage } from '../core/common/errors';
import { formatStamp } from '../core/store/naming';
import { writeFileAtomic } from '../core/store/atomicFs';
import { Disposable } from '../util/disposable';
import type { DatabaseLocator } from './databaseLocator';
import { EngineError, type EngineClient } from './engineClient';
import { explainFailure, extensionMessage, type FailureContext } from './errorText';
import { confirm } from './prompts';
import { preRestoreView, type SnapshotCatalog, type SnapshotView } from './snapshotCatalog';
import { localTime, ownerLabel, type Node } from './snapshotsTree';

export const MEMORY_SCHEME = 'ai-memory';

/** One side of a view: a snapshot file, or the current database (read consistently by the engine). */
export type Side = { snapshot: string } | { db: string };

type DocQuery =
  | { k: 'overview'; side: Side }
  | { k: 'memory'; side: Side; id: string }
  | { k: 'compare'; from: string; to: Side };

function sideLabel(s: Side): string {
  return 'db' in s ? 'current database' : path.basename(s.snapshot);
}

export function docUri(q: DocQuery, title: string): vscode.Uri {
  const safe = title.replace(/[/\\?#%]/g, '_').slice(0, 80) || 'memory';
  return vscode.Uri.from({ scheme: MEMORY_SCHEME, path: `/${safe}`, query: JSON.stringify(q) });
}

function sideArgs(s: Side): { from: string } | { db: string } {
  return 'db' in s ? { db: s.db } : { from: s.snapshot };
}

function pretty(v: unknown): string {
  if (typeof v !== 'string') return v === null || v === undefined ? '—' : String(v);
  try {
    const o: unknown = JSON.parse(v);
    if (o && typeof o === 'object') return JSON.stringify(o, null, 2);
  } catch {
    // plain text
  }
  return v;
}

/** A memory as readable text: what it says first, then its fields, then what recalls write. */
export function renderMemory(r: NonNullable<InspectOutcome['memory']>): string {
  const m = r.memory;
  const lines = [`# ${String(m.title ?? '')}`, '', String(m.content ?? ''), '', '---'];
  for (const k of ['namespace', 'tier', 'priority', 'confidence', 'source', 'created_at', 'updated_at', 'id']) lines.push(`${k.padEnd(17)}${pretty(m[k])}`);
  lines.push(`${'tags'.padEnd(17)}${pretty(m.tags)}`, `metadata         ${pretty(m.metadata)}`);
  if (r.links.length) {
    lines.push('', 'links:');
    for (const l of r.links) lines.push(`  ${l.direction === 'out' ? '→' : '←'} ${l.relation}  ${l.other_title ?? '(not in this database)'}  [${l.other_id}]`);
  }
  lines.push('', 'recall activity (not compared):');
  for (const k of ['access_count', 'last_accessed_at', 'expires_at']) lines.push(`  ${k.padEnd(17)}${pretty(m[k])}`);
  return `${lines.join('\n')}\n`;
}

export function renderOverview(r: InspectOutcome): string {
  const s = r.snapshot;
  const lines = [`# ${s.database ? 'Current database' : 'Snapshot'} ${s.name}`, '', `path      ${s.path}`, `size      ${s.bytes.toLocaleString()} bytes`];
  if (s.sha256) lines.push(`sha256    ${s.sha256}`);
  if (s.created_at) lines.push(`taken     ${localTime(Date.parse(s.created_at))} (${s.created_at})`);
  for (const w of s.warnings) lines.push(`WARNING   ${extensionMessage(w)}`);
  if (r.kind !== 'ai-memory') {
    lines.push('', 'This SQLite file is not an ai-memory database. Its tables:');
    for (const t of r.tables ?? []) lines.push(`  ${t.table.padEnd(30)} ${t.rows.toLocaleString()} rows`);
    return `${lines.join('\n')}\n`;
  }
  if (r.schema_version !== undefined) lines.push(`schema    version ${r.schema_version}`);
  const f = r.facts;
  if (f) {
    lines.push('', `${f.memories.toLocaleString()} memories, ${f.links.toLocaleString()} links, ${f.archived.toLocaleString()} archived`, '', 'by tier:');
    for (const [k, n] of Object.entries(f.memories_by_tier)) lines.push(`  ${k.padEnd(28)} ${n.toLocaleString()}`);
    lines.push('', 'by namespace:');
    for (const [k, n] of Object.entries(f.memories_by_namespace)) lines.push(`  ${(k || '(none)').padEnd(28)} ${n.toLocaleString()}`);
  }
  lines.push('', 'Browse the memories: AI Memory: Open Snapshot (search by title, content, tags; filter by namespace:NS or tier:T).');
  return `${lines.join('\n')}\n`;
}

/** The document shown when a snapshot's overview, a memory or a comparison cannot be read: what happened, then what to do here. */
export function readFailureDocument(f: { message: string; hint: string | undefined }): string {
  return `Could not read it: ${f.message}\n${f.hint ? `${f.hint}\n` : ''}`;
}

export function renderComparison(c: DiffOutcome): string {
  const lines = [
    `# ${c.from.label}  →  ${c.to.label}`,
    '',
    `+${c.added.length} added  −${c.removed.length} removed  ~${c.edited.length} edited  ·  ${c.recall_only} only recalled  ·  ${c.unchanged} unchanged`,
    `links: +${c.links_added.length} −${c.links_removed.length}`,
  ];
  if (c.schema.note) lines.push('', `NOTE: ${c.schema.note}`);
  const section = <T>(title: string, items: T[], line: (x: T) => string): void => {
    if (!items.length) return;
    lines.push('', `## ${title} (${items.length})`);
    for (const x of items) lines.push(line(x));
  };
  section('Removed', c.removed, (m) => `− ${m.namespace} / ${m.title}  (${m.how === 'archived' ? `archived${m.archive_reason ? `: ${m.archive_reason}` : ''}` : 'deleted'})  [${m.id}]`);
  section('Added', c.added, (m) => `+ ${m.namespace} / ${m.title}  [${m.id}]`);
  section('Edited', c.edited, (m) => `~ ${m.namespace} / ${m.title}  — ${m.fields.join(', ')}  [${m.id}]`);
  section('Links added', c.links_added, (l) => `+ ${l.source_id} —${l.relation}→ ${l.target_id}`);
  section('Links removed', c.links_removed, (l) => `− ${l.source_id} —${l.relation}→ ${l.target_id}`);
  return `${lines.join('\n')}\n`;
}

/** Finds an executable on PATH (what a shell would run), or undefined. */
async function onPath(name: string): Promise<string | undefined> {
  const exts = process.platform === 'win32' ? ['.exe', '.cmd', ''] : [''];
  for (const dir of (process.env.PATH ?? '').split(path.delimiter).filter(Boolean)) {
    for (const ext of exts) {
      const p = path.join(dir, name + ext);
      try {
        await fsp.access(p, fsc.X_OK);
        if ((await fsp.stat(p)).isFile()) return p;
      } catch {
        // not here
      }
    }
  }
  return undefined;
}

function run(cmd: string, args: string[], stdinFile?: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: [stdinFile ? 'pipe' : 'ignore', 'pipe', 'pipe'], windowsHide: true });
    let stdout = '';
    let stderr = '';
    child.stdout?.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    if (stdinFile && child.stdin) {
      void fsp.readFile(stdinFile).then((b) => child.stdin?.end(b), reject);
    }
  });
}

export interface RestoreMemoriesResult {
  file: string;
  ids: string[];
  /** How it went: imported (and which ids are now present), imported but not checked (the file kept), or the command to run by hand. */
  status: 'imported' | 'unchecked' | 'no-binary' | 'import-failed' | 'nothing' | 'declined';
  command: string;
  present?: string[];
  stillMissing?: string[];
  output?: string;
}

/** Added / removed / edited memories from one snapshot to the next. */
interface ChangeCounts {
  added: number;
  removed: number;
  edited: number;
}

/** Above this size the "= now" marker follows the last backup instead of reading the live database (see refreshDigest). */
const LIVE_DIGEST_MAX_BYTES = 256 << 20;

/** Rows whose change counts are computed (the newest; older ones are far down the view). */
const CHANGE_ROWS = 30;

export class MemoryViews extends Disposable implements vscode.TextDocumentContentProvider {
  private readonly _onDidChange = this._register(new vscode.EventEmitter<vscode.Uri>());
  readonly onDidChange = this._onDidChange.event;
  private readonly comparisons = new Map<string, DiffOutcome>();
  /** Digest of the current database's memories (for the "= now" marker), and for which database. */
  currentDigest: { db: string; digest: string } | undefined;
  private digestTimer: NodeJS.Timeout | undefined;
  private readonly _onDidChangeDigest = this._register(new vscode.EventEmitter<void>());
  readonly onDidChangeDigest = this._onDidChangeDigest.event;
  /**
   * What changed from one snapshot to the next (the rows' "+3 −1 ~2"), by the two files'
   * sha256: a pair of snapshots never changes, so a result is kept for the session and in
   * globalStorage (a small JSON map, written temp → fsync → rename).
   */
  private changes: Map<string, ChangeCounts> | undefined;
  private changesRun: Promise<void> | undefined;

  constructor(
    private readonly engine: EngineClient,
    private readonly locator: DatabaseLocator,
    private readonly catalog: SnapshotCatalog,
    private readonly storage: vscode.Uri,
    private readonly log: vscode.LogOutputChannel,
  ) {
    super();
    this._register(vscode.workspace.registerTextDocumentContentProvider(MEMORY_SCHEME, this));
    this._register({ dispose: () => this.digestTimer && clearTimeout(this.digestTimer) });
    this._register(catalog.onDidChange(() => this.scheduleDigest()));
  }

  /** The current database's digest, read by the engine in a child process a few seconds after the snapshots change; then the rows' change counts. */
  private scheduleDigest(): void {
    if (this.digestTimer) clearTimeout(this.digestTimer);
    this.digestTimer = setTimeout(() => void this.refreshDigest().then(() => this.refreshChanges()), 2000);
  }

  /** The change from the previous snapshot of this database to this one, once known ("+3 −1 ~2", or "no change"). */
  changeOf(path: string): string | undefined {
    const pair = this.pairOf(path);
    const c = pair && this.changes?.get(pair.key);
    if (!c) return undefined;
    if (!c.added && !c.removed && !c.edited) return 'no change';
    return [c.added ? `+${c.added}` : '', c.removed ? `\u2212${c.removed}` : '', c.edited ? `~${c.edited}` : ''].filter(Boolean).join(' ');
  }

  private pairOf(path: string): { key: string; older: SnapshotView; newer: SnapshotView } | undefined {
    const list = this.catalog.snapshots;
    const i = this.catalog.indexOf(path);
    const newer = list[i];
    const older = i >= 0 ? list[i + 1] : undefined;
    const a = older?.entry.manifest?.sha256;
    const b = newer?.entry.manifest?.sha256;
    return older && a && b ? { key: `${a}>${b}`, older, newer } : undefined;
  }

  private changesFile(): vscode.Uri {
    return vscode.Uri.joinPath(this.storage, 'memory-changes.json');
  }

  /**
   * Computes the change counts of the newest rows (at most {@link CHANGE_ROWS}) one pair at a
   * time in the engine's process; equal memory digests need no comparison. Runs once at a time.
   */
  refreshChanges(): Promise<void> {
    this.changesRun ??= this.computeChanges().finally(() => (this.changesRun = undefined));
    return this.changesRun;
  }

  private async computeChanges(): Promise<void> {
    if (!this.changes) {
      this.changes = new Map();
      try {
        const saved = JSON.parse(Buffer.from(await vscode.workspace.fs.readFile(this.changesFile())).toString('utf8')) as Record<string, ChangeCounts>;
        for (const [k, v] of Object.entries(saved)) if (v && typeof v.added === 'number' && typeof v.removed === 'number' && typeof v.edited === 'number') this.changes.set(k, v);
      } catch {
        // none yet, or unreadable: computed again
      }
    }
    let computed = 0;
    for (const view of this.catalog.snapshots.slice(0, CHANGE_ROWS)) {
      const pair = this.pairOf(view.entry.path);
      if (!pair || this.changes.has(pair.key)) continue;
      const [a, b] = [pair.older.entry.manifest?.memories_digest, pair.newer.entry.manifest?.memories_digest];
      let counts: ChangeCounts;
      if (a && a === b) {
        counts = { added: 0, removed: 0, edited: 0 };
      } else {
        try {
          const d = await this.engine.run('diff', { from: pair.older.entry.path, to: pair.newer.entry.path });
          counts = { added: d.added.length, removed: d.removed.length, edited: d.edited.length };
        } catch (e) {
          this.log.debug(`change counts of ${pair.newer.entry.name}: ${this.explain(e, 'open').message}`);
          continue;
        }
      }
      this.changes.set(pair.key, counts);
      computed++;
      this._onDidChangeDigest.fire();
    }
    if (!computed) return;
    // Keep the map small: only pairs still in the view.
    const live = new Set(this.catalog.snapshots.map((v) => this.pairOf(v.entry.path)?.key).filter(Boolean));
    const keep = Object.fromEntries([...this.changes].filter(([k]) => live.has(k)));
    try {
      await vscode.workspace.fs.createDirectory(this.storage);
      await writeFileAtomic(this.changesFile().fsPath, JSON.stringify(keep), 0o600);
    } catch (e) {
      this.log.debug(`could not save the change counts: ${errorMessage(e)}`);
    }
  }

  async refreshDigest(): Promise<void> {
    const db = this.locator.current?.path;
    if (!db || !this.catalog.snapshots.length) return;
    try {
      // Reading the live database means a consistent copy of it (to a private temp file) and
      // every memory: fine for most, too heavy after every backup of a large one. Above
      // LIVE_DIGEST_MAX_BYTES the current digest is the one the last backup recorded (its
      // snapshot, made or found unchanged, held exactly the database's memories then).
      const size = (await fsp.stat(db).catch(() => undefined))?.size ?? 0;
      let digest: string | undefined;
      if (size > LIVE_DIGEST_MAX_BYTES) {
        const last = this.catalog.folderState;
        digest = this.catalog.snapshots.find((v) => v.entry.name === last?.snapshot)?.entry.manifest?.memories_digest;
      } else {
        digest = (await this.engine.run('inspect', { db, limit: 1 })).facts?.memories_digest;
      }
      if (digest && (this.currentDigest?.digest !== digest || this.currentDigest.db !== db)) {
        this.currentDigest = { db, digest };
        this._onDidChangeDigest.fire();
      }
    } catch (e) {
      this.log.debug(`current database facts: ${this.explain(e, 'open').message}`);
    }
  }

  async provideTextDocumentContent(uri: vscode.Uri): Promise<string> {
    const q = JSON.parse(uri.query) as DocQuery;
    try {
      if (q.k === 'overview') return renderOverview(await this.engine.run('inspect', { ...sideArgs(q.side), limit: 1 }));
      if (q.k === 'memory') {
        const r = await this.engine.run('inspect', { ...sideArgs(q.side), id: q.id });
        return r.memory ? renderMemory(r.memory) : '(not found)\n';
      }
      const c = this.comparisons.get(uri.toString()) ?? (await this.engine.run('diff', { from: q.from, ...('db' in q.to ? { db: q.to.db } : { to: q.to.snapshot }) }));
      return renderComparison(c);
    } catch (e) {
      if (e instanceof EngineError && e.code === 'MEMORY_NOT_FOUND') return `This memory is not in ${'side' in q ? sideLabel(q.side) : 'this database'}.\n`;
      return readFailureDocument(this.explain(e, 'open'));
    }
  }

  /** The snapshot(s) a command was invoked on: the clicked row and the selection (for "compare two"). */
  private async pickSnapshot(arg: unknown, title: string): Promise<SnapshotView | undefined> {
    const node = arg as Node | undefined;
    if (node && typeof node === 'object' && node.kind === 'snapshot') return this.catalog.find(node.view.entry.path) ?? node.view;
    if (node && typeof node === 'object' && node.kind === 'preRestore') return preRestoreView(node.copy);
    if (typeof arg === 'string') return this.catalog.find(arg) ?? undefined;
    if (arg instanceof vscode.Uri) return this.catalog.find(arg.fsPath);
    await this.catalog.reload();
    const picked = await vscode.window.showQuickPick(
      this.catalog.snapshots.map((s) => ({ label: localTime(s.entry.time), description: s.entry.manifest?.memories !== undefined ? `${s.entry.manifest.memories} memories` : '', view: s })),
      { title, placeHolder: 'Newest first' },
    );
    return picked?.view;
  }

  private currentDb(): string | undefined {
    const db = this.locator.current?.path;
    if (!db) void vscode.window.showWarningMessage('No ai-memory database is selected.', 'Select Database…').then((a) => (a ? vscode.commands.executeCommand('aiMemory.selectDatabase') : undefined));
    return db;
  }

  /** An engine failure in VS Code's words (errorText.ts): never the CLI's flags or commands. */
  private explain(e: unknown, operation: FailureContext['operation']): { message: string; hint: string | undefined; text: string } {
    return explainFailure(e, { operation, db: this.locator.current });
  }

  private fail(what: string, e: unknown, operation: FailureContext['operation'] = 'open'): void {
    const { text } = this.explain(e, operation);
    this.log.error(`${what}: ${text}`);
    void vscode.window.showErrorMessage(`${what}: ${text}`, 'Show Log').then((a) => (a ? this.log.show() : undefined));
  }

  /** Open Snapshot: the overview document, then (unless `browse` is false) the memory browser. */
  async openSnapshot(arg?: unknown, opts: { browse?: boolean } = {}): Promise<vscode.Uri | undefined> {
    const view = await this.pickSnapshot(arg, 'AI Memory: Open a snapshot');
    if (!view) return undefined;
    const side: Side = { snapshot: view.entry.path };
    const uri = docUri({ k: 'overview', side }, `${view.entry.name}.md`);
    await vscode.window.showTextDocument(uri, { preview: true });
    if (opts.browse !== false) void this.browse(side, localTime(view.entry.time));
    return uri;
  }

  /** A quick pick that asks the engine for one page of matches per (debounced) query. */
  async browse(side: Side, title: string): Promise<void> {
    const qp = vscode.window.createQuickPick<vscode.QuickPickItem & { id?: string }>();
    qp.title = `Memories in ${title}`;
    qp.placeholder = 'Search title, content, tags — namespace:NS and tier:T filter';
    qp.matchOnDescription = true;
    qp.matchOnDetail = true;
    let seq = 0;
    let timer: NodeJS.Timeout | undefined;
    const load = async (value: string): Promise<void> => {
      const mine = ++seq;
      qp.busy = true;
      const words = value.split(/\s+/).filter(Boolean);
      const ns = words.find((w) => w.startsWith('namespace:'))?.slice(10);
      const tier = words.find((w) => w.startsWith('tier:'))?.slice(5);
      const search = words.filter((w) => !w.startsWith('namespace:') && !w.startsWith('tier:')).join(' ');
      try {
        const r = await this.engine.run('inspect', { ...sideArgs(side), search: search || undefined, namespace: ns || undefined, tier: tier || undefined, limit: 200 });
        if (mine !== seq) return;
        const rows = r.page?.rows ?? [];
        qp.items = [
          ...rows.map((m) => ({ label: m.title || '(untitled)', description: `${m.namespace} · ${m.tier}`, detail: m.updated_at, id: m.id, alwaysShow: true })),
          ...((r.page?.total ?? 0) > rows.length ? [{ label: `${(r.page?.total ?? 0) - rows.length} more match — refine the search`, kind: vscode.QuickPickItemKind.Separator }] : []),
        ];
      } catch (e) {
        if (mine === seq) {
          const { message, hint } = this.explain(e, 'open');
          qp.items = [{ label: `$(error) ${message}`, detail: hint }];
        }
      } finally {
        if (mine === seq) qp.busy = false;
      }
    };
    qp.onDidChangeValue((v) => {
      if (timer) clearTimeout(timer);
      timer = setTimeout(() => void load(v), 250);
    });
    qp.onDidAccept(() => {
      const id = qp.selectedItems[0]?.id;
      if (id) void vscode.window.showTextDocument(docUri({ k: 'memory', side, id }, `${qp.selectedItems[0].label}.txt`), { preview: true, preserveFocus: true });
    });
    qp.onDidHide(() => {
      if (timer) clearTimeout(timer);
      qp.dispose();
    });
    qp.show();
    await load('');
  }

  /** Runs a comparison, opens its report, and (unless `quiet`) offers its changes. */
  async compare(from: SnapshotView, to: Side, opts: { quiet?: boolean } = {}): Promise<{ uri: vscode.Uri; result: DiffOutcome } | undefined> {
    let result: DiffOutcome;
    try {
      result = await vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: `AI Memory: comparing ${from.entry.name} with the ${sideLabel(to)}`, cancellable: true }, (_p, token) =>
        this.engine.run('diff', { from: from.entry.path, ...('db' in to ? { db: to.db } : { to: to.snapshot }) }, { token }),
      );
    } catch (e) {
      this.fail('Could not compare', e);
      return undefined;
    }
    const uri = docUri({ k: 'compare', from: from.entry.path, to }, `${from.entry.name} ↔ ${sideLabel(to)}.md`);
    this.comparisons.set(uri.toString(), result);
    this._onDidChange.fire(uri);
    await vscode.window.showTextDocument(uri, { preview: false });
    if (!opts.quiet) void this.offerChanges(from, to, result);
    return { uri, result };
  }

  private async offerChanges(from: SnapshotView, to: Side, c: DiffOutcome): Promise<void> {
    type Item = vscode.QuickPickItem & { act?: () => unknown };
    const fromSide: Side = { snapshot: from.entry.path };
    const items: Item[] = [];
    if (c.removed.length && 'db' in to) items.push({ label: `$(history) Restore ${c.removed.length} removed memor${c.removed.length === 1 ? 'y' : 'ies'}…`, act: () => this.restoreMemories(from.entry.path) });
    for (const m of c.edited) items.push({ label: `$(diff) ${m.title}`, description: `${m.namespace} · ${m.fields.join(', ')}`, act: () => this.openMemoryDiff(fromSide, to, m.id, m.title) });
    for (const m of c.removed) items.push({ label: `$(remove) ${m.title}`, description: `${m.namespace} · ${m.how}`, act: () => vscode.window.showTextDocument(docUri({ k: 'memory', side: fromSide, id: m.id }, `${m.title}.txt`)) });
    for (const m of c.added) items.push({ label: `$(add) ${m.title}`, description: m.namespace, act: () => vscode.window.showTextDocument(docUri({ k: 'memory', side: to, id: m.id }, `${m.title}.txt`)) });
    if (!items.length) return;
    const picked = await vscode.window.showQuickPick(items, { title: `${c.added.length} added, ${c.removed.length} removed, ${c.edited.length} edited`, placeHolder: 'Open a change' });
    await picked?.act?.();
  }

  /** `vscode.diff` of one memory on two sides, as two read-only virtual documents. */
  async openMemoryDiff(left: Side, right: Side, id: string, title = id): Promise<void> {
    await vscode.commands.executeCommand(
      'vscode.diff',
      docUri({ k: 'memory', side: left, id }, `${title} (${sideLabel(left)}).txt`),
      docUri({ k: 'memory', side: right, id }, `${title} (${sideLabel(right)}).txt`),
      `${title}: ${sideLabel(left)} ↔ ${sideLabel(right)}`,
    );
  }

  async compareWithCurrent(arg?: unknown, opts: { quiet?: boolean } = {}) {
    const view = await this.pickSnapshot(arg, 'AI Memory: Compare a snapshot with the current database');
    const db = view && this.currentDb();
    return view && db ? this.compare(view, { db }, opts) : undefined;
  }

  async compareWithPrevious(arg?: unknown, opts: { quiet?: boolean } = {}) {
    const view = await this.pickSnapshot(arg, 'AI Memory: Compare a snapshot with the one before it');
    if (!view) return undefined;
    const i = this.catalog.indexOf(view.entry.path);
    const previous = i >= 0 ? this.catalog.snapshots[i + 1] : undefined;
    if (!previous) {
      void vscode.window.showInformationMessage('This is the oldest snapshot: there is nothing before it to compare with.');
      return undefined;
    }
    return this.compare(previous, { snapshot: view.entry.path }, opts);
  }

  /** Two snapshots selected in the view (older → newer). */
  async compareSelected(arg?: unknown, selection?: unknown, opts: { quiet?: boolean } = {}) {
    const nodes = (Array.isArray(selection) ? selection : [arg]).filter((n): n is Node => !!n && typeof n === 'object' && (n as Node).kind === 'snapshot') as Extract<Node, { kind: 'snapshot' }>[];
    if (nodes.length !== 2) {
      void vscode.window.showInformationMessage('Select exactly two snapshots (Ctrl/Cmd+click) to compare them.');
      return undefined;
    }
    const [a, b] = nodes.map((n) => n.view).sort((x, y) => x.entry.time - y.entry.time);
    return this.compare(a, { snapshot: b.entry.path }, opts);
  }

  /**
   * Restore Selected Memories: writes ai-memory's import file (the chosen memories with their
   * links) and runs `ai-memory import` on it; then compares again and reports which are back.
   * `ids` undefined: choose among the memories the current database no longer has.
   */
  async restoreMemories(arg?: unknown, ids?: string[]): Promise<RestoreMemoriesResult | undefined> {
    const view = await this.pickSnapshot(arg, 'AI Memory: Restore memories from a snapshot');
    const db = view && this.currentDb();
    if (!view || !db) return undefined;
    // Another database's snapshot: every memory it holds looks "removed" from this one, and
    // importing them merges a foreign memory into yours — asked first, naming both.
    if (view.owner !== 'this') {
      const go = await vscode.window.showWarningMessage(
        `This snapshot was not taken of your database: it is ${ownerLabel(view)}.`,
        { modal: true, detail: `Its memories would be imported into ${db}, which never held most of them. Undoing that means deleting them one by one.` },
        'Import Into This Database',
      );
      if (go !== 'Import Into This Database') return undefined;
    }
    let chosen = ids;
    if (!chosen) {
      let c: DiffOutcome;
      try {
        c = await this.engine.run('diff', { from: view.entry.path, db });
      } catch (e) {
        this.fail('Could not compare with the current database', e);
        return undefined;
      }
      if (!c.removed.length) {
        void vscode.window.showInformationMessage(`Every memory of the snapshot of ${localTime(view.entry.time)} is in the current database.`);
        return { file: '', ids: [], status: 'nothing', command: '' };
      }
      const picked = await vscode.window.showQuickPick(
        c.removed.map((m) => ({ label: m.title, description: `${m.namespace} · ${m.how === 'archived' ? `archived${m.archive_reason ? ` (${m.archive_reason})` : ''}` : 'deleted'}`, picked: true, id: m.id })),
        { canPickMany: true, title: 'Restore which memories?', placeHolder: 'All removed memories are selected' },
      );
      if (!picked?.length) return undefined;
      chosen = picked.map((p) => p.id);
    }
    this.log.info(`restore memories: ${chosen.length} from ${view.entry.name}`);
    await fsp.mkdir(this.storage.fsPath, { recursive: true, mode: 0o700 }); // extracted memories go here: private
    // A name of its own: extract never overwrites, and a second restore within the same second
    // (the stamp's resolution) must not find the first one's file kept for a by-hand import.
    const file = path.join(this.storage.fsPath, `restore-${formatStamp(new Date())}-${randomBytes(4).toString('hex')}.json`);
    let extracted: ExtractOutcome;
    try {
      extracted = await this.engine.run('extract', { from: view.entry.path, ids: chosen.join(','), db, out: file });
    } catch (e) {
      this.fail('Could not extract the memories', e, 'extract');
      return undefined;
    }
    this.log.info(`restore memories: wrote ${file}`);
    for (const w of extracted.warnings) this.log.warn(`restore memories: ${extensionMessage(w)}`);
    const configured = vscode.workspace.getConfiguration('aiMemory').get<string>('aiMemoryPath')?.trim();
    const binary = configured || (await onPath('ai-memory'));
    const display = importCommand(file, { binary: binary ?? 'ai-memory', db });
    if (!binary) {
      void vscode.window
        .showWarningMessage(
          `ai-memory was not found on PATH. The ${chosen.length} memor${chosen.length === 1 ? 'y is' : 'ies are'} saved in ${file}; import ${chosen.length === 1 ? 'it' : 'them'} with: ${display}`,
          'Copy Command',
          'Open File',
          'Set ai-memory Path',
        )
        .then(async (a) => {
          if (a === 'Copy Command') await vscode.env.clipboard.writeText(display);
          if (a === 'Open File') await vscode.window.showTextDocument(vscode.Uri.file(file));
          if (a === 'Set ai-memory Path') await vscode.commands.executeCommand('workbench.action.openSettings', 'aiMemory.aiMemoryPath');
        });
      this.log.info(`restore memories: ai-memory not found; saved ${file}; command: ${display}`);
      return { file, ids: chosen, status: 'no-binary', command: display };
    }
    const version = await run(binary, ['--version']).catch(() => undefined);
    const major = Number(/(\d+)\.\d+/.exec(version?.stdout ?? '')?.[1] ?? 0);
    // ai-memory 0.x imports by (title, namespace) and overwrites: a memory written again under
    // a restored one's title since the snapshot would be replaced by it. Asked first, naming them.
    if (major < 1 && extracted.title_clashes.length) {
      const n = extracted.title_clashes.length;
      const named = extracted.title_clashes.slice(0, 5).map((c) => `“${c.title}”`).join(', ') + (n > 5 ? ', …' : '');
      const go = await confirm(
        `${n} of these memories would overwrite ${n === 1 ? 'a memory' : 'memories'} you have now.`,
        `ai-memory ${major === 0 && version ? version.stdout.trim() : '0.x'} imports by title and namespace, and your database holds other memories with the title and namespace of ${named}: the import would replace ${n === 1 ? 'it' : 'them'} with the snapshot's. To keep both, rename the current ${n === 1 ? 'one' : 'ones'} first, then restore again. The memories are saved in ${file}.`,
        'Import and Overwrite',
      );
      if (!go) {
        this.log.info(`restore memories: not imported (title clashes: ${extracted.title_clashes.map((c) => `${c.id} → ${c.current}`).join(', ')}); saved ${file}; command: ${display}`);
        void vscode.window.showInformationMessage(`Nothing was imported. The ${chosen.length} memor${chosen.length === 1 ? 'y is' : 'ies are'} saved in ${file}.`, 'Copy Command').then(async (a) => {
          if (a === 'Copy Command') await vscode.env.clipboard.writeText(display);
        });
        return { file, ids: chosen, status: 'declined', command: display };
      }
    }
    // 1.0 resolves a clash on (title, namespace) by --on-conflict; "version" (its default) never overwrites.
    const args = ['--db', db, 'import', ...(major >= 1 ? ['--on-conflict', 'version'] : [])];
    this.log.info(`restore memories: ${binary} ${args.join(' ')} < ${file}`);
    const r = await run(binary, args, file).catch((e: unknown) => ({ code: -1, stdout: '', stderr: errorMessage(e) }));
    if (r.code !== 0) {
      this.log.error(`ai-memory import failed (${r.code}): ${r.stderr}`);
      void vscode.window
        .showErrorMessage(`ai-memory import failed: ${r.stderr.trim().split('\n').pop() || `exit ${r.code}`}. The memories are saved in ${file}.`, 'Copy Command', 'Show Log')
        .then(async (a) => {
          if (a === 'Copy Command') await vscode.env.clipboard.writeText(display);
          if (a === 'Show Log') this.log.show();
        });
      return { file, ids: chosen, status: 'import-failed', command: display, output: r.stderr };
    }
    // Compare again: which of them are in the database now?
    let stillMissing: string[] = [];
    let unchecked: string | undefined;
    try {
      const after = await this.engine.run('diff', { from: view.entry.path, db });
      const removed = new Set(after.removed.map((m) => m.id));
      stillMissing = chosen.filter((id) => removed.has(id));
    } catch (e) {
      unchecked = this.explain(e, 'open').message;
      this.log.warn(`compare after import: ${unchecked}`);
    }
    if (unchecked !== undefined) {
      // ai-memory said it imported, but which memories are back could not be checked: the
      // file stays, and the user is told so — never "restored" on the import's word alone.
      const msg = `ai-memory import finished, but the check of which memories are back failed (${unchecked}). The ${chosen.length} memor${chosen.length === 1 ? 'y is' : 'ies are'} kept in ${file}; compare the snapshot with the current database to see.`;
      void vscode.window.showWarningMessage(msg, 'Show Log').then((a) => (a ? this.log.show() : undefined));
      this.log.info(msg);
      return { file, ids: chosen, status: 'unchecked', command: display, output: r.stdout };
    }
    const present = chosen.filter((id) => !stillMissing.includes(id));
    const msg = stillMissing.length
      ? `Restored ${present.length} of ${chosen.length} memories; ${stillMissing.length} are still missing (ai-memory import skipped them — see the log).`
      : `Restored ${present.length} memor${present.length === 1 ? 'y' : 'ies'} from the snapshot of ${localTime(view.entry.time)}.`;
    if (stillMissing.length) void vscode.window.showWarningMessage(msg, 'Show Log').then((a) => (a ? this.log.show() : undefined));
    else {
      // Every one is back: their copy (full contents) does not stay in the extension's storage
      // beyond the snapshots' own retention. Kept when some are missing, to import by hand.
      await fsp.rm(file, { force: true }).catch(() => undefined);
      void vscode.window.showInformationMessage(msg);
    }
    this.log.info(msg);
    return { file, ids: chosen, status: 'imported', command: display, present, stillMissing, output: r.stdout };
  }
}
