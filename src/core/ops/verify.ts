/**
 * `verify`: checks snapshots against their manifests (bytes, sha256) and with sql.js
 * (quick_check) without restoring anything. A folder means every snapshot in it.
 */
import type { VerifyMode } from '../common/checks';
import { promises as fsp } from 'node:fs';
import { resolve } from 'node:path';
import { listSnapshots } from '../store/catalog';
import { BackupError, errnoCode } from '../common/errors';
import { examineSnapshot, type SnapshotReport } from './snapshotCheck';

export interface VerifyOptions {
  from: string;
  integrity?: VerifyMode;
  signal?: AbortSignal;
  onSnapshot?: (report: SnapshotReport, index: number, total: number) => void;
}

export async function verifySnapshots(opts: VerifyOptions): Promise<SnapshotReport[]> {
  const from = resolve(opts.from);
  let st;
  try {
    st = await fsp.stat(from);
  } catch (e) {
    if (errnoCode(e) === 'ENOENT' && (await fsp.lstat(from).catch(() => undefined))) {
      st = undefined; // dangling symlink: examined (and reported) below
    } else {
      throw new BackupError('SNAPSHOT_NOT_FOUND', `${from} does not exist.`, { hint: 'Pass a snapshot file or a backup folder with --from.' });
    }
  }
  const paths = st?.isDirectory() ? (await listSnapshots(from, { manifests: false })).map((e) => e.path) : [from];
  if (st?.isDirectory() && paths.length === 0) {
    throw new BackupError('NO_SNAPSHOTS', `No snapshots found in ${from}.`, { hint: 'Run `backup` first.' });
  }
  const reports: SnapshotReport[] = [];
  for (const [i, p] of paths.entries()) {
    const { report } = await examineSnapshot(p, { useManifest: true, integrity: opts.integrity ?? 'quick', stopAtFirst: false, signal: opts.signal });
    reports.push(report);
    opts.onSnapshot?.(report, i, paths.length);
  }
  return reports;
}
