/**
 * `verify`: checks snapshots against their manifests (bytes, sha256) and with sql.js
 * (quick_check) without restoring anything. A folder means every plain snapshot in it;
 * with `all`, also every archived one (rebuilt to a temp file: every page against its hash,
 * the whole file against its sha256, then the same checks) and every pack of the archive
 * (its bytes against its name), naming the snapshots a damaged pack affects.
 */
import type { VerifyMode } from '../common/checks';
import { promises as fsp } from 'node:fs';
import { join, resolve } from 'node:path';
import { BackupError, errnoCode } from '../common/errors';
import { collectAll } from '../common/gc';
import { archivePaths, PackStore, RebuildBuffers, verifyPacks } from '../store/archive';
import { findArchived, verifyArchived } from './archived';
import { examineSnapshot, type SnapshotReport } from './snapshotCheck';
import { anchorFor, listSnapshots } from '../store/catalog';
import { manifestNameFor } from '../store/naming';
import type { OperatorPublicKey } from '../store/operatorKey';

export interface VerifyOptions {
  from: string;
  integrity?: VerifyMode;
  /** The operator public key (undefined: resolved as ai-memory does; null: none). */
  anchor?: OperatorPublicKey | null;
  /** A folder: archived snapshots and the archive's packs too. */
  all?: boolean;
  signal?: AbortSignal;
  onSnapshot?: (report: SnapshotReport, index: number, total: number) => void;
}

export interface PackProblem {
  pack: string;
  problem: string;
  snapshots: string[];
}

export async function verifySnapshots(opts: VerifyOptions): Promise<SnapshotReport[]> {
  return (await verifyFolderOrFile(opts)).reports;
}

/**
 * `gone`: snapshots listed when the run began that left the folder before their turn, with
 * their manifest (retention of a backup or prune running meanwhile: the folder is read
 * without its lock, which a long run must not hold). A snapshot archived or made plain
 * again meanwhile is checked where it is now.
 */
export async function verifyFolderOrFile(opts: VerifyOptions): Promise<{ reports: SnapshotReport[]; packs: PackProblem[]; gone: string[] }> {
  const from = resolve(opts.from);
  let st;
  try {
    st = await fsp.stat(from);
  } catch (e) {
    if (errnoCode(e) === 'ENOENT' && (await fsp.lstat(from).catch(() => undefined))) {
      st = undefined; // dangling symlink: examined (and reported) below
    } else if (errnoCode(e) === 'ENOENT') {
      const ref = await findArchived(from);
      if (!ref) throw new BackupError('SNAPSHOT_NOT_FOUND', `${from} does not exist.`, { hint: 'Pass a snapshot file or a backup folder with --from.' });
      const report = await verifyArchived(ref, opts.integrity ?? 'quick', opts.signal, (await anchorFor(opts.anchor)) ?? null);
      opts.onSnapshot?.(report, 0, 1);
      return { reports: [report], packs: [], gone: [] };
    } else {
      throw new BackupError('SNAPSHOT_NOT_FOUND', `${from} does not exist.`, { hint: 'Pass a snapshot file or a backup folder with --from.' });
    }
  }
  const entries = st?.isDirectory() ? await listSnapshots(from, { manifests: false, archived: opts.all === true }) : undefined;
  const items = entries ? entries.map((e) => ({ path: e.path, archived: e.archived === true, name: e.name, manifestPath: e.manifestPath })) : [{ path: from, archived: false, name: '', manifestPath: '' }];
  if (entries && items.length === 0) {
    throw new BackupError('NO_SNAPSHOTS', `No snapshots found in ${from}.`, { hint: 'Run `backup` first.' });
  }
  const reports: SnapshotReport[] = [];
  const gone: string[] = [];
  const anchor = (await anchorFor(opts.anchor)) ?? null;
  let store: PackStore | undefined;
  const buffers = new RebuildBuffers();
  const exists = async (p: string): Promise<boolean> => await fsp.lstat(p).then(() => true, (e: unknown) => errnoCode(e) !== 'ENOENT');
  for (const [i, listed] of items.entries()) {
    let it = listed;
    if (entries) {
      // Where is it now? A backup or prune may have archived it, deleted it, or (materialize,
      // pull) put it back as a plain file since the folder was listed.
      const plainPath = join(from, it.name);
      if (await exists(plainPath)) {
        it = { ...it, path: plainPath, archived: false, manifestPath: join(from, manifestNameFor(it.name)) };
      } else {
        const ref = opts.all ? await findArchived(plainPath) : undefined;
        if (ref) it = { ...it, archived: true, path: ref.path, manifestPath: ref.manifestPath };
        else if (!(await exists(join(from, manifestNameFor(it.name))))) {
          gone.push(it.name); // left with its manifest: deleted by retention, or archived (without --all)
          continue;
        }
      }
    }
    const check = async (): Promise<SnapshotReport> =>
      it.archived
        ? verifyArchived({ dir: from, name: it.name, path: it.path, manifestPath: it.manifestPath }, opts.integrity ?? 'quick', opts.signal, anchor, (store ??= await PackStore.load(archivePaths(from), { readOnly: true })), buffers)
        : (await examineSnapshot(it.path, { useManifest: true, integrity: opts.integrity ?? 'quick', stopAtFirst: false, anchor, signal: opts.signal })).report;
    let report = await check();
    if (it.archived && report.problems.length) {
      // The packs' table is read once: a snapshot archived since, or packs a prune repacked
      // meanwhile, are not in it. Read again before calling the snapshot damaged.
      store = await PackStore.load(archivePaths(from), { readOnly: true });
      report = await check();
    }
    reports.push(report);
    opts.onSnapshot?.(report, i, items.length);
    // Each snapshot's buffers (hashing, rebuilding, the check) are dead now; without this a
    // folder of 500 MB snapshots climbed ~12 MB a snapshot before V8 collected.
    if (items.length > 1) await collectAll();
  }
  const packs = entries && opts.all ? await verifyPacks(from, opts.signal) : [];
  return { reports, packs, gone };
}
