/**
 * The three memory operations as the CLI (and through it the extension) runs them:
 * inspect one snapshot, compare two databases, extract memories to an import file.
 * Each opens what it needs through source.ts and closes it again.
 */
import { refuseSidecarFile } from '../sqlite/dbFiles';
import { constants as fsc, promises as fsp } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { BackupError, errnoCode, errorMessage, ioError, isBackupError } from '../common/errors';
import { throwIfCancelled } from '../common/cancel';
import { createFileNoClobber, reachableMode, writeAll } from '../store/atomicFs';
import { readManifestFor } from '../store/catalog';
import { manifestNameFor } from '../store/naming';
import { listMemories, memoryDetail, overview, type DatabaseOverview, type MemoryDetail, type MemoryPage, type MemoryQuery } from '../memory/browse';
import { compareDatabases, type Comparison } from '../memory/compare';
import { checkNamespaceSelection, exportDocumentText, extractMemories, type ExtractResult, type Selection } from '../memory/extract';
import { readSchema } from '../memory/schema';
import { factsFromObject, type MemoryFacts } from '../memory/facts';
import { openLiveSql, openSnapshotSql, relabeled, type MemorySql, type OpenOptions } from '../memory/source';
import { resolveRestoreSource } from './restore';
import { findArchived, rebuildToTemp } from './archived';

/**
 * Opens a snapshot's memories; an archived one (store/archive.ts) is rebuilt first into a
 * temp file in its backup folder (the whole file checked against its index
 * and manifest; pinned while open) and read from there, removed on close.
 */
async function openAnySnapshotSql(path: string, opts: OpenOptions): Promise<MemorySql & { release?: () => Promise<void> }> {
  const ref = await findArchived(path);
  if (!ref) return openSnapshotSql(path, opts);
  const rebuilt = await rebuildToTemp(ref, { signal: opts.signal });
  let sql: MemorySql;
  try {
    sql = await openSnapshotSql(rebuilt.file, opts);
  } catch (e) {
    await rebuilt.done();
    throw e;
  }
  // The temp file and the pin go after the close: `closeSql` awaits it.
  return Object.assign(relabeled(sql, `snapshot ${path} (archived)`), { release: () => rebuilt.done() });
}

/** Closes a database opened here and, for an archived snapshot, removes its rebuilt temp file and pin. */
async function closeSql(db: (MemorySql & { release?: () => Promise<void> }) | undefined): Promise<void> {
  if (!db) return;
  db.close();
  await db.release?.();
}

/**
 * The snapshot a `--from` names: the file itself, or a folder's newest snapshot OF THIS
 * DATABASE (`dbPath`), exactly as restore picks it (ownership by the manifest's source_db;
 * future-dated names last). What restore would warn about is passed to `onWarning`.
 */
async function snapshotFrom(from: string, opts: MemoryOpOptions): Promise<string> {
  // Restore's advice ("to restore one of them", "point --db at…") is not what inspect, diff or extract take.
  const r = await resolveRestoreSource(from, opts.dbPath ?? resolve('ai-memory.db'), `Pass the snapshot file itself with --from (\`list --to ${from}\` names them), or set $AI_MEMORY_DB to the database they belong to.`);
  for (const w of r.warnings) opts.onWarning?.(w);
  return r.snapshot;
}

export interface MemoryOpOptions extends OpenOptions {
  /** The database whose snapshots a folder given as `--from` is searched for (default ./ai-memory.db). */
  dbPath?: string;
  onWarning?: (message: string) => void;
}

export interface SnapshotHeader {
  path: string;
  name: string;
  bytes: number;
  manifest: 'ok' | 'missing' | 'invalid' | 'foreign';
  sha256?: string;
  created_at?: string;
  integrity?: string;
  /** This is the current database, not a snapshot. */
  database?: boolean;
  /** Said when the snapshot is damaged, unverified or its manifest does not fit. */
  warnings: string[];
}

async function snapshotHeader(path: string): Promise<SnapshotHeader & { recordedFacts?: MemoryFacts }> {
  const name = basename(path);
  let st;
  try {
    st = await fsp.stat(path);
  } catch (e) {
    // In the page-dedup archive: its manifest is there; opening it rebuilds and checks it against that manifest.
    const ref = errnoCode(e) === 'ENOENT' ? await findArchived(path) : undefined;
    if (ref) {
      const a = await readManifestFor(name, ref.manifestPath);
      const warnings = a.manifestState === 'ok' ? [] : [`its manifest is ${a.manifestState}${a.manifestError ? ` (${a.manifestError})` : ''}`];
      return { path, name, bytes: a.manifest?.bytes ?? 0, manifest: a.manifestState, sha256: a.manifest?.sha256, created_at: a.manifest?.created_at, integrity: a.manifest?.integrity, warnings };
    }
    if (errnoCode(e) === 'ENOENT') throw new BackupError('SNAPSHOT_NOT_FOUND', `Snapshot not found: ${path}`, { hint: 'Check the path, or list snapshots with `ai-memory-backup list`.' });
    throw ioError('reading', path, e);
  }
  const m = await readManifestFor(name, join(dirname(path), manifestNameFor(name)));
  const warnings: string[] = [];
  if (m.manifestState === 'missing') warnings.push('no manifest beside it: not verified');
  else if (m.manifestState !== 'ok') warnings.push(`its manifest is ${m.manifestState}${m.manifestError ? ` (${m.manifestError})` : ''}`);
  if (m.manifest && m.manifest.bytes !== st.size) warnings.push(`its size (${st.size} bytes) differs from the manifest's (${m.manifest.bytes}): the file is damaged or was replaced`);
  if (m.manifest?.integrity === 'unverified') warnings.push('it was not integrity-checked when it was made');
  const header: SnapshotHeader = { path, name, bytes: st.size, manifest: m.manifestState, sha256: m.manifest?.sha256, created_at: m.manifest?.created_at, integrity: m.manifest?.integrity, warnings };
  // The facts our backup recorded, when the manifest is sound and the size still matches.
  const facts = m.manifestState === 'ok' && m.manifest?.bytes === st.size ? factsFromObject(m.manifest as unknown as Record<string, unknown>) : undefined;
  return Object.assign(header, { recordedFacts: facts });
}

export interface InspectResult {
  snapshot: SnapshotHeader;
  overview: DatabaseOverview;
  page?: MemoryPage;
  memory?: MemoryDetail;
}

/** Inspects a snapshot (`from`), or with `db` the current database, read through the WAL-consistent reader. */
export async function inspectSnapshot(opts: { from?: string; db?: string; query?: MemoryQuery; id?: string } & MemoryOpOptions): Promise<InspectResult> {
  let path: string;
  let snapshot: SnapshotHeader;
  let recorded: MemoryFacts | undefined;
  let db: MemorySql;
  if (opts.db !== undefined) {
    path = opts.db;
    db = await openLiveSql(path, opts);
    snapshot = { path, name: basename(path), bytes: db.bytes, manifest: 'missing', database: true, warnings: [] };
  } else {
    const notes: string[] = [];
    path = await snapshotFrom(opts.from ?? '.', { ...opts, onWarning: (w) => notes.push(w) });
    const { recordedFacts, ...header } = await snapshotHeader(path);
    snapshot = header;
    recorded = recordedFacts;
    snapshot.warnings.unshift(...notes);
    db = await openAnySnapshotSql(path, opts);
  }
  try {
    const schema = readSchema(db);
    // The facts (counts, digest) read every memory: only for the overview, not for a page of
    // a search or one memory (the browser asks for those one after another), and from the
    // manifest when our backup recorded them.
    const q = opts.query;
    const wantFacts = opts.id === undefined && !(q?.text || q?.namespace || q?.tier || q?.offset);
    const result: InspectResult = {
      snapshot,
      overview: schema.kind !== 'ai-memory' || (wantFacts && !recorded) ? overview(db, schema) : { kind: 'ai-memory', schema_version: schema.schemaVersion, facts: recorded },
    };
    if (schema.kind === 'ai-memory') {
      if (opts.id !== undefined) {
        const detail = memoryDetail(db, opts.id, schema);
        if (!detail) throw new BackupError('MEMORY_NOT_FOUND', `No memory with id ${opts.id} in ${path}.`, { hint: 'List the memories with `inspect --from SNAP` to see their ids.' });
        result.memory = detail;
      } else if (opts.query) {
        result.page = listMemories(db, opts.query, schema);
      }
    }
    return result;
  } finally {
    await closeSql(db);
  }
}

/** The "to" side: another snapshot, or the current database (read through the WAL-consistent reader). */
export type Side = { snapshot: string } | { db: string };

async function openSide(side: Side, opts: MemoryOpOptions): Promise<MemorySql & { release?: () => Promise<void> }> {
  return 'snapshot' in side ? openAnySnapshotSql(await snapshotFrom(side.snapshot, opts), opts) : openLiveSql(side.db, opts);
}

export async function diff(opts: { from: string; to: Side } & MemoryOpOptions): Promise<Comparison> {
  const from = await openAnySnapshotSql(await snapshotFrom(opts.from, { ...opts, dbPath: opts.dbPath ?? ('db' in opts.to ? opts.to.db : undefined) }), opts);
  try {
    const to = await openSide(opts.to, opts);
    try {
      return compareDatabases(from, to);
    } finally {
      await closeSql(to);
    }
  } finally {
    await closeSql(from);
  }
}

export interface ExtractToFileResult extends ExtractResult {
  /** The file written, when one was asked for. */
  out?: string;
  /** Count of links in the file. */
  links: number;
  /** Why the database to compare with (`dbOptional`) could not be read: nothing was compared with it. */
  dbUnread?: string;
}

/** What extract gathers into one write of the file (the pieces are a memory or a link each). */
const WRITE_CHUNK = 1 << 20;

/**
 * Extracts the selection. `current` (the live database) lets links to memories that exist
 * now come along; with `removedSinceDb` it is that database. The file, when asked for, is
 * written temp → fsync → link (never over a file), no more readable than the snapshot and the
 * database; it and stdout get the document as it is made, a memory at a time.
 */
export async function extract(
  opts: {
    from: string;
    select: { ids: string[] } | { namespace: string } | { removedSinceDb: string };
    db?: string;
    /**
     * `db` is only compared with (found, not named by the user): when it cannot be read (a
     * damaged database is when memories are extracted), the extract goes on without it and
     * says why in `dbUnread`.
     */
    dbOptional?: boolean;
    out?: string;
    /** Without `out`: where the document goes (compact, as `ai-memory export` prints it), written while the snapshot is open. */
    stdout?: (s: string) => void | Promise<void>;
    now?: Date;
  } & MemoryOpOptions,
): Promise<ExtractToFileResult> {
  if ('namespace' in opts.select) checkNamespaceSelection(opts.select.namespace); // before anything is opened
  const dbPath = 'removedSinceDb' in opts.select ? opts.select.removedSinceDb : opts.db;
  const snapPath = await snapshotFrom(opts.from, { ...opts, dbPath: dbPath ?? opts.dbPath });
  const snap = await openAnySnapshotSql(snapPath, opts);
  let current: MemorySql | undefined;
  try {
    let dbUnread: string | undefined;
    current = dbPath
      ? await openLiveSql(dbPath, opts).catch((e: unknown) => {
          if (!opts.dbOptional || 'removedSinceDb' in opts.select || (isBackupError(e) && e.code === 'CANCELLED')) throw e;
          dbUnread = errorMessage(e);
          return undefined;
        })
      : undefined;
    const selection: Selection = 'removedSinceDb' in opts.select ? { removedSince: current as MemorySql } : opts.select;
    const r = extractMemories(snap, selection, { current, now: opts.now });
    const result: ExtractToFileResult = { ...r, links: r.document.links.length, ...(dbUnread ? { dbUnread } : {}) };
    if (opts.out) {
      // Each as its folders let others reach it and as the export's group may read it (atomicFs.reachableMode): a 0644 snapshot in a 0700 folder counts as 0600.
      const perm = async (p: string): Promise<number> => (await reachableMode(p, dirname(resolve(opts.out as string)))) & 0o666;
      // An archived snapshot's files in the archive keep the mode its plain file had.
      let mode = await perm((await findArchived(snapPath))?.manifestPath ?? snapPath);
      if (dbPath && current) mode &= await perm(dbPath);
      mode |= 0o600; // group/other only what both the snapshot and the database allow; the owner reads and writes
      const existing = await fsp.lstat(opts.out).catch(() => undefined);
      if (existing?.isDirectory()) throw new BackupError('TARGET_NOT_DIRECTORY', `--out ${opts.out} is a folder; give a file name.`);
      // Never over anything: --out naming the live database, the snapshot being read or any
      // other file replaced it with the export (as materialize, extract never overwrites).
      const exists = () => new BackupError('USAGE', `${opts.out} already exists; extract never overwrites a file. Nothing was written.`, { hint: 'Pass a new file name with --out.' });
      if (existing) throw exists();
      await refuseSidecarFile(opts.out, '--out', 'Pass another file name with --out.');
      await fsp.access(dirname(opts.out), fsc.W_OK).catch((e: unknown) => {
        throw ioError('writing into', dirname(opts.out as string), e);
      });
      // Written as it is made (exportDocumentText), never as one string of the whole export.
      const write = async (fh: fsp.FileHandle): Promise<void> => {
        let pos = 0;
        let parts: string[] = [];
        let pending = 0;
        const flush = async () => {
          const buf = Buffer.from(parts.join(''), 'utf8');
          parts = [];
          pending = 0;
          await writeAll(fh, buf, pos);
          pos += buf.length;
        };
        for (const piece of exportDocumentText(r.document, 2)) {
          parts.push(piece);
          pending += piece.length;
          if (pending < WRITE_CHUNK) continue;
          await flush();
          throwIfCancelled(opts.signal, `Extract cancelled; nothing was written to ${opts.out as string}.`); // the temp is removed
        }
        parts.push('\n');
        await flush();
      };
      if (!(await createFileNoClobber(opts.out, write, mode, { purpose: 'extract' }))) throw exists();
      result.out = opts.out;
    } else if (opts.stdout) {
      for (const piece of exportDocumentText(r.document)) await opts.stdout(piece);
      await opts.stdout('\n');
    }
    return result;
  } finally {
    current?.close();
    await closeSql(snap);
  }
}
