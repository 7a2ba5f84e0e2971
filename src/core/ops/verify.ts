/**
 * `verify`: checks snapshots against their manifests (bytes, sha256) and with sql.js
 * (quick_check) without restoring anything. A folder means every plain snapshot in it;
 * with `all`, also every archived one (rebuilt to a temp file: every page against its hash,
 * the whole file against its sha256, then the same checks) and every pack of the archive
 * (its bytes against its name), naming the snapshots a damaged pack affects.
 */
import type { VerifyMode } from '../common/checks';
import { promises as fsp } from 'node:fs';
import { resolve } from 'node:path';
import { BackupError, errnoCode } from '../common/errors';
import { collectAll } from '../common/gc';
import { archivePaths, PackStore, RebuildBuffers, verifyPacks } from '../store/archive';
import { findArchived, verifyArchived } from './archived';
import { examineSnapshot, type SnapshotReport } from './snapshotCheck';
import { anchorFor, listSnapshots } from '../store/catalog';
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

export async function verifyFolderOrFile(opts: VerifyOptions): Promise<{ reports: SnapshotReport[]; packs: PackProblem[] }> {
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
      return { reports: [report], packs: [] };
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
  const anchor = (await anchorFor(opts.anchor)) ?? null;
  let store: PackStore | undefined;
  const buffers = new RebuildBuffers();
  for (const [i, it] of items.entries()) {
    if (it.archived) store ??= await PackStore.load(archivePaths(from));
    const report = it.archived
      ? await verifyArchived({ dir: from, name: it.name, path: it.path, manifestPath: it.manifestPath }, opts.integrity ?? 'quick', opts.signal, anchor, store, buffers)
      : (await examineSnapshot(it.path, { useManifest: true, integrity: opts.integrity ?? 'quick', stopAtFirst: false, anchor, signal: opts.signal })).report;
    reports.push(report);
    opts.onSnapshot?.(report, i, items.length);
    // Each snapshot's buffers (hashing, rebuilding, the check) are dead now; without this a
    // folder of 500 MB snapshots climbed ~12 MB a snapshot before V8 collected.
    if (items.length > 1) await collectAll();
  }
  const packs = entries && opts.all ? await verifyPacks(from, opts.signal) : [];
  return { reports, packs };
}
