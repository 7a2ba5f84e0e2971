/**
 * Archived snapshots for restore, verify and materialize: found by the path their plain file
 * would have (`<backup folder>/ai-memory-<ts>.db`), rebuilt into a temp file in the backup
 * folder (the whole file checked against the manifest's sha256 as it is written; each page
 * against its hash only to name the damage when that fails), and then handled exactly like
 * a plain snapshot.
 */
import { refuseSidecarFile, refuseSidecarFolder } from '../sqlite/dbFiles';
import { constants as fsc, promises as fsp } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { BackupError, errnoCode, ioError } from '../common/errors';
import { collectAll } from '../common/gc';
import { crashPoint } from '../common/testHooks';
import { tmpdir } from 'node:os';
import { cleanStaleTemps, copyFileExcl, createFileNoClobber, dirModeLike, fileModeLike, fsyncDir, publishNoClobber, reachableMode, tempPath } from '../store/atomicFs';
import { listArchived, rebuildArchived, refuseInsideArchive, type PackStore, type RebuildBuffers, type RebuildResult } from '../store/archive';
import { serializeManifest } from '../store/manifest';
import { manifestNameFor, snapshotFileTime } from '../store/naming';
import { pinSnapshot } from '../store/pins';
import type { VerifyMode } from '../common/checks';
import type { OperatorPublicKey } from '../store/operatorKey';
import { examineSnapshot, problemError, type SnapshotReport } from './snapshotCheck';
import { releaseReadBuffers } from '../sqlite/sqlEngine';

export interface ArchivedRef {
  dir: string;
  name: string;
  /** Where its plain file would be. */
  path: string;
  manifestPath: string;
}

/** The archived snapshot a path names (its plain file absent, its name in the folder's archive), or undefined. */
export async function findArchived(path: string): Promise<ArchivedRef | undefined> {
  const p = resolve(path);
  try {
    await fsp.lstat(p);
    return undefined; // a real file (or something else) is there: not archived
  } catch (e) {
    if (errnoCode(e) !== 'ENOENT') return undefined;
  }
  const dir = dirname(p);
  const name = basename(p);
  const a = (await listArchived(dir)).find((x) => x.name === name);
  return a ? { dir, name, path: p, manifestPath: a.manifestPath } : undefined;
}

export interface Rebuilt {
  /** The rebuilt file (a temp in the backup folder, `dir`, or the system's temp folder); remove it with `done()`. */
  file: string;
  result: RebuildResult;
  done: () => Promise<void>;
}

/** Whether we may create files in `dir` (a read-only mount, another user's folder: not), tried as the rebuild would. */
async function canCreateIn(dir: string): Promise<boolean> {
  const probe = tempPath(dir, 'probe');
  try {
    await (await fsp.open(probe, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL, 0o600)).close();
  } catch (e) {
    const code = errnoCode(e);
    return !(code === 'EACCES' || code === 'EPERM' || code === 'EROFS'); // anything else: the rebuild says what
  }
  await fsp.rm(probe, { force: true }).catch(() => undefined);
  return true;
}

/**
 * Rebuilds an archived snapshot into a temp file, pinned while it exists: in `dir` when
 * given (materialize: where it is placed), else in its backup folder, or, when we may
 * read that folder but not write it (a read-only mount, a NAS snapshot, another user's
 * backups), as a private (0600) file in the system's temp folder: reading an archived
 * snapshot (verify, inspect, diff, extract, a dry run) changes nothing in the folder.
 */
export async function rebuildToTemp(ref: ArchivedRef, opts: { signal?: AbortSignal; onBytes?: (d: number, t: number) => void; store?: PackStore; buffers?: RebuildBuffers; dir?: string } = {}): Promise<Rebuilt> {
  const unpin = await pinSnapshot(ref.dir, ref.name);
  const inFolder = opts.dir !== undefined || (await canCreateIn(ref.dir));
  if (!inFolder) await cleanStaleTemps(tmpdir(), { deadOnly: true }); // rebuilds left by processes that died
  const file = tempPath(opts.dir ?? (inFolder ? ref.dir : tmpdir()), 'rebuild');
  try {
    const result = await rebuildArchived(ref.dir, ref.name, file, { ...opts, ...(inFolder ? {} : { mode: 0o600 }) });
    crashPoint('archive:after-rebuild');
    return {
      file,
      result,
      done: async () => {
        await fsp.rm(file, { force: true }).catch(() => undefined);
        await unpin();
      },
    };
  } catch (e) {
    await fsp.rm(file, { force: true }).catch(() => undefined);
    await unpin();
    throw e;
  }
}

/**
 * Verifies one archived snapshot: rebuilds it (pages, sha256) and checks the result like a
 * plain one. `store`, `buffers`: the packs' table and the rebuild's buffers, made once for
 * a whole folder (`verify --all`), not again for every snapshot.
 */
export async function verifyArchived(ref: ArchivedRef, integrity: VerifyMode, signal?: AbortSignal, anchor?: OperatorPublicKey | null, store?: PackStore, buffers?: RebuildBuffers): Promise<SnapshotReport> {
  let rebuilt: Rebuilt;
  // The last check's read buffers (verify --all) are dead: gone before the rebuild takes its own.
  if (store) {
    releaseReadBuffers();
    await collectAll();
  }
  try {
    rebuilt = await rebuildToTemp(ref, { signal, store, buffers });
  } catch (e) {
    if (!(e instanceof BackupError) || e.code === 'CANCELLED') throw e;
    return { path: ref.path, name: ref.name, manifestPath: ref.manifestPath, manifestState: 'ok', bytes: 0, problems: [{ code: e.code, message: e.message, hint: e.hint }], notes: ['archived'] };
  }
  // The rebuild's buffers are dead, the free ones it keeps for the next rebuild too: gone
  // before sql.js takes its memory for the check (they were on top of it: verify --all's peak).
  if (store) {
    buffers?.dropFree();
    await collectAll();
  }
  try {
    const { report } = await examineSnapshot(rebuilt.file, { useManifest: true, integrity, stopAtFirst: false, signal, anchor, hashed: rebuilt.result.sha256, as: { name: ref.name, manifestPath: ref.manifestPath, path: ref.path } });
    report.notes.unshift(`archived: rebuilt from ${rebuilt.result.packsUsed.length} pack${rebuilt.result.packsUsed.length === 1 ? '' : 's'}`);
    return report;
  } finally {
    await rebuilt.done();
  }
}

export interface MaterializeOptions {
  /** An archived (or plain) snapshot: the path its plain file has or would have. */
  from: string;
  /** A new file, or an existing folder (then the snapshot's own name inside it). */
  out: string;
  integrity?: 'quick' | 'full' | 'off';
  signal?: AbortSignal;
}

export interface MaterializeResult {
  from: string;
  out: string;
  manifest: string;
  sha256: string;
  bytes: number;
  report: SnapshotReport;
}

/**
 * `materialize`: a plain file (and its manifest, naming it) from an archived snapshot, so
 * ai-memory's own CLI can restore it. Rebuilt and checked (sha256, integrity) before it gets
 * its name; never overwrites anything.
 */
export async function runMaterialize(opts: MaterializeOptions): Promise<MaterializeResult> {
  const ref = await findArchived(opts.from);
  if (!ref) {
    const st = await fsp.lstat(resolve(opts.from)).catch(() => undefined);
    if (st?.isDirectory()) {
      throw new BackupError('USAGE', `${resolve(opts.from)} is a folder; materialize takes one archived snapshot, by the path its plain file would have (DIR/ai-memory-<time>.db).`, {
        hint: `Run \`list --to ${resolve(opts.from)}\` to see its snapshots, archived ones included.`,
      });
    }
    const exists = st !== undefined;
    throw new BackupError('SNAPSHOT_NOT_FOUND', exists ? `${resolve(opts.from)} is already a plain file; nothing to materialize.` : `${resolve(opts.from)} is neither a snapshot nor in its folder's archive.`, {
      hint: exists ? 'Copy it (with its manifest), or restore it directly.' : 'Run `list --to <backup folder>` to see the snapshots, archived ones included.',
    });
  }
  let out = resolve(opts.out);
  // What it writes (folders, the file, its manifest) is no more readable than the archived snapshot (its manifest's mode, which the rebuild gets).
  const fileMode = fileModeLike(await reachableMode(ref.manifestPath, /[\\/]$/.test(opts.out) ? out : dirname(out)).catch(() => 0o600));
  await refuseInsideArchive(/[\\/]$/.test(opts.out) ? out : dirname(out));
  // "--out folder/" (trailing separator) means a folder, created if needed.
  await refuseSidecarFolder(/[\\/]$/.test(opts.out) ? out : dirname(out), 'Folder', 'Pass another --out.');
  if (/[\\/]$/.test(opts.out)) {
    await fsp.mkdir(out, { recursive: true, mode: dirModeLike(fileMode) }).catch((e: unknown) => {
      throw ioError('creating folder', out, e);
    });
  }
  const st = await fsp.stat(out).catch(() => undefined);
  if (st?.isDirectory()) out = join(out, ref.name);
  else if (st) throw new BackupError('USAGE', `${out} already exists; materialize never overwrites a file.`, { hint: 'Pass a new file name, or a folder, with --out.' });
  await refuseSidecarFile(out, '--out', 'Pass another --out (a new file name, or a folder).');
  const outDir = dirname(out);
  await refuseInsideArchive(outDir); // again, now that `out` is known (an existing folder named without a trailing separator)
  // A plain file shadows an archived one of its name (catalog.ts lists it, restore and
  // materialize take it): placed in a backup folder whose archive holds another snapshot of
  // that name (another database's folder, the same times), it would hide that snapshot and
  // stand for it with other bytes. Its own twin (the same sha256) is fine.
  const shadowed = (await listArchived(outDir)).find((x) => x.name === basename(out));
  if (shadowed) {
    const ours = (await listArchived(ref.dir)).find((x) => x.name === ref.name)?.manifest?.sha256;
    if (!ours || shadowed.manifest?.sha256 !== ours) {
      throw new BackupError('USAGE', `${outDir} holds another snapshot named ${basename(out)} in its archive; materialize never puts a file over it (it would stand for that snapshot with other bytes). Nothing was written.`, {
        hint: 'Pass another --out (a new file name, or another folder).',
      });
    }
  }
  await fsp.mkdir(outDir, { recursive: true, mode: dirModeLike(fileMode) }).catch((e: unknown) => {
    throw ioError('creating folder', outDir, e);
  });
  // Rebuilt where it is placed (one write; a read-only backup folder is no obstacle).
  const rebuilt = await rebuildToTemp(ref, { signal: opts.signal, dir: outDir });
  try {
    const { report } = await examineSnapshot(rebuilt.file, {
      useManifest: true,
      integrity: opts.integrity ?? 'quick',
      stopAtFirst: true,
      signal: opts.signal,
      hashed: rebuilt.result.sha256,
      as: { name: ref.name, manifestPath: ref.manifestPath, path: ref.path },
    });
    if (report.problems.length) throw problemError(report.problems[0]);
    const manifest = { ...(report.manifest as NonNullable<typeof report.manifest>), snapshot: basename(out) };
    const manifestPath = join(outDir, manifestNameFor(basename(out)));
    if (await fsp.lstat(manifestPath).then(() => true, () => false)) {
      throw new BackupError('USAGE', `${manifestPath} already exists; materialize never overwrites a file.`, { hint: 'Pass another --out.' });
    }
    // Manifest first, then the file (as backup does): a crash never leaves a file without its manifest.
    // Given its name without replacing anything (link, not rename): a second materialize into
    // the same folder at once replaced this manifest, lost the race for the file, and then
    // removed the manifest the winner had just reported — leaving its snapshot without one.
    // Its name is durable before the file gets its own.
    if (!(await createFileNoClobber(manifestPath, serializeManifest(manifest), fileMode, { purpose: 'manifest' }))) {
      throw new BackupError('USAGE', `${manifestPath} appeared meanwhile; materialize never overwrites a file.`, { hint: 'Pass another --out.' });
    }
    let placed: boolean;
    // Dated as the snapshot, not now (naming.ts snapshotFileTime: ai-memory orders by file time).
    const when = snapshotFileTime(ref.name, manifest.created_at);
    if (dirname(rebuilt.file) === outDir) {
      if (when) await fsp.utimes(rebuilt.file, when, when).catch(() => undefined); // best effort: a file system that keeps no times (some network mounts) fails nothing
      placed = await publishNoClobber(rebuilt.file, out);
    } else {
      const tmp = tempPath(outDir, 'materialize');
      await copyFileExcl(rebuilt.file, tmp);
      if (when) await fsp.utimes(tmp, when, when).catch(() => undefined); // best effort: a file system that keeps no times (some network mounts) fails nothing
      const fh = await fsp.open(tmp, fsc.O_RDONLY);
      await fh.sync().finally(() => fh.close());
      placed = await publishNoClobber(tmp, out);
      if (!placed) await fsp.rm(tmp, { force: true });
    }
    if (!placed) {
      await fsp.rm(manifestPath, { force: true });
      throw new BackupError('USAGE', `${out} appeared meanwhile; materialize never overwrites a file.`, { hint: 'Pass another --out.' });
    }
    await fsyncDir(outDir);
    return { from: ref.path, out, manifest: manifestPath, sha256: rebuilt.result.sha256, bytes: rebuilt.result.bytes, report };
  } finally {
    await rebuilt.done();
  }
}

