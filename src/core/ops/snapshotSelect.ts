/**
 * Which snapshot a restore reads: `--from FILE`, or inside a `--from DIR` the one named by
 * `--snapshot NAME`, or the newest (`--latest`, or no selector).
 *
 * "Newest" depends on the posture (ai-memory 1.0's `select_latest_signed`):
 *  - an operator public key is configured: the newest by the SIGNED `created_at`, among the
 *    manifests that verify; unsigned ones are skipped (and listed), and one whose signature
 *    is refused stops the choice — choosing among backups while one was tampered with lets
 *    the tamperer steer it. Neither the name nor the file time is trusted then. One dated in
 *    the future (signed while the clock was ahead; catalog.ts FUTURE_SKEW_MS) never outranks
 *    one taken since, as everywhere else: it is taken only when no other verifies, and named
 *    when passed over (1.0 takes it: a year-ahead clock's snapshot hid every later one).
 *  - no key (0.7 compatibility): the newest by the time in the name, as before.
 * Archived snapshots (store/archive.ts) take part like plain ones: their manifests moved into
 * the archive byte for byte, signatures included.
 */
import { exists } from '../common/fsFacts';
import { promises as fsp } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { BackupError, errnoCode } from '../common/errors';
import { compareInstants, instantMs, parseRfc3339, type Instant } from '../common/rfc3339';
import { FUTURE_SKEW_MS, listSnapshots } from '../store/catalog';
import { withOwners } from '../store/ownership';
import { thisMachine } from '../common/machine';
import { sameDbPath } from '../sqlite/dbFiles';
import { findArchived } from './archived';
import { isSnapshotFileName } from '../store/naming';
import type { OperatorPublicKey } from '../store/operatorKey';

export interface SelectOptions {
  /** `--snapshot NAME`: a file name, its id (name without `.db`) or its manifest's name. */
  snapshot?: string;
  latest?: boolean;
  anchor: OperatorPublicKey | undefined;
  /** The database restored into (resolved): the newest is among its own snapshots first. */
  dbPath?: string;
}

export interface Selection {
  path: string;
  /** ai-memory's `selected_by`: 'explicit' or 'latest'. */
  selectedBy: 'explicit' | 'latest';
  /** How the newest was decided, in words (for the output). */
  rule?: string;
  /** Snapshots --latest passed over, with why. */
  skipped: string[];
}

const MANIFEST_SUFFIX = '.manifest.json';

/** ai-memory's `snapshot_id`: the id a --snapshot NAME stands for; undefined for a path. */
export function snapshotId(name: string): string | undefined {
  if (!name || name.includes('/') || name.includes('\\') || name.includes('\0')) return undefined;
  let id = name;
  if (name.endsWith(MANIFEST_SUFFIX)) id = name.slice(0, -MANIFEST_SUFFIX.length);
  else if (/\.db$/i.test(name)) id = name.slice(0, -3);
  return id && id !== '.' && id !== '..' ? id : undefined;
}

export async function selectRestoreSource(from: string, opts: SelectOptions): Promise<Selection> {
  const p = resolve(from);
  let isDir = false;
  try {
    isDir = (await fsp.stat(p)).isDirectory();
  } catch (e) {
    const dangling = errnoCode(e) === 'ENOENT' && (await exists(p));
    if (!dangling) throw new BackupError('SNAPSHOT_NOT_FOUND', `${p} does not exist.`, { hint: 'Pass a snapshot file or the backup folder with --from.' });
  }
  if (!isDir) {
    if (opts.snapshot !== undefined || opts.latest) {
      throw new BackupError('USAGE', `${opts.latest ? '--latest' : '--snapshot'} selects a snapshot inside a --from folder, but ${p} is not a folder.`, {
        hint: `Pass the folder with --from, or drop ${opts.latest ? '--latest' : '--snapshot'}.`,
      });
    }
    return { path: p, selectedBy: 'explicit', skipped: [] };
  }
  if (opts.snapshot !== undefined) {
    const id = snapshotId(opts.snapshot);
    if (!id) {
      throw new BackupError('USAGE', `--snapshot "${opts.snapshot}" is not a snapshot name.`, { hint: 'Pass the file name (ai-memory-<time>.db), its id (ai-memory-<time>) or its manifest\'s name — never a path.' });
    }
    const path = join(p, `${id}.db`);
    if (!(await exists(path)) && !(await findArchived(path))) {
      throw new BackupError('SNAPSHOT_NOT_FOUND', `No snapshot ${basename(path)} in ${p}.`, { hint: 'Run `list` to see the snapshots in that folder.' });
    }
    return { path, selectedBy: 'explicit', skipped: [] };
  }
  const selectedBy = opts.latest ? 'latest' : 'explicit';
  if (!opts.anchor) {
    // No key: the folder itself, and the restore takes this database's newest snapshot by the
    // time in its name, as without --latest (restore.ts resolveRestoreSource: whose each one is,
    // links out of the folder and odd names). Taking the folder's newest whatever database it
    // was of restored another database's snapshot into this one.
    return { path: p, selectedBy, rule: "this database's newest, by the time in its name (no operator key configured)", skipped: [] };
  }
  const entries = await listSnapshots(p, { anchor: opts.anchor, archived: true });
  if (!entries.length) throw new BackupError('NO_SNAPSHOTS', `No snapshots found in ${p}.`, { hint: 'Run `backup` first, or pass the folder that holds your ai-memory-*.db snapshots.' });
  const skipped: string[] = [];
  const verified: { time: number; at: Instant; name: string; path: string; rank: number; future: boolean; byHost?: string }[] = [];
  const here = thisMachine();
  const now = Date.now();
  // Whose each one is, by its signed source_db: this database's first (known, then guessed
  // from a relative path), others' only when it has none — as a restore from the folder picks.
  const owners = opts.dbPath ? await withOwners(p, opts.dbPath, entries.map((e) => ({ manifest: e.manifest, manifestState: e.manifestState }))) : undefined;
  for (const [i, e] of entries.entries()) {
    if (!isSnapshotFileName(e.name) || e.unsafe) continue;
    // A manifest that was read and is not one (broken JSON, a duplicate field, …) stops the
    // choice like a signature that does not verify — 1.0's select_latest_signed refuses both:
    // breaking the newest manifest needs no key, and skipping it handed --latest an older
    // snapshot. A manifest that cannot be read at all is passed over, as 1.0 passes it over.
    if (e.signature?.state === 'refused' || (e.manifestState === 'foreign' && e.manifestError?.includes('signed')) || (e.manifestState === 'invalid' && !e.manifestUnreadable)) {
      throw new BackupError('SIGNATURE_REFUSED', `The manifest of ${e.name} fails verification (${e.manifestError ?? 'refused'}); refusing to choose the newest backup while one of them has been altered.`, {
        hint: 'Inspect that snapshot, or name the one you trust with --snapshot.',
      });
    }
    if (e.signature?.state !== 'verified' || !e.manifest) {
      skipped.push(`${e.name} (${e.manifestState !== 'ok' ? `manifest ${e.manifestState}` : e.signature?.state ?? 'unsigned'})`);
      continue;
    }
    // Read as 1.0 reads it (chrono's parse_from_rfc3339), not by Date.parse: a time without
    // an offset was local time there, and a date alone, 24:00 or February 30 were accepted.
    const at = parseRfc3339(e.manifest.created_at);
    if (!at) {
      throw new BackupError('SIGNATURE_REFUSED', `${e.name}'s signed created_at "${e.manifest.created_at}" is not an RFC 3339 time (a date, a time with seconds, and an offset), so the newest cannot be told; ai-memory 1.0's --latest refuses it too.`, { hint: 'Name the snapshot you trust with --snapshot.' });
    }
    const time = instantMs(at);
    const o = owners?.[i];
    // Another machine's by the host name alone (no machine id here or in its manifest): maybe this machine under a name it had then.
    const byHost = o?.owner === 'gone' && o.host && o.source && opts.dbPath && sameDbPath(o.source, opts.dbPath) && !(e.manifest.machine_id && here.machine_id) ? o.host : undefined;
    verified.push({ time, at, name: e.name, path: e.path, rank: !o ? 0 : o.owner === 'this' ? (o.guessed ? 1 : 0) : 2, future: e.future || time > now + FUTURE_SKEW_MS, ...(byHost ? { byHost } : {}) });
  }
  const rank = Math.min(...verified.map((v) => v.rank));
  const ofRank = verified.filter((v) => v.rank === rank);
  const inTime = ofRank.some((v) => !v.future) ? ofRank.filter((v) => !v.future) : ofRank;
  let best: { time: number; at: Instant; name: string; path: string } | undefined;
  // 1.0's order: (signed created_at to the nanosecond, file name).
  for (const v of inTime) if (!best || compareInstants(v.at, best.at) > 0 || (compareInstants(v.at, best.at) === 0 && v.name > best.name)) best = v;
  if (best) for (const v of ofRank) if (v.future && v !== best) skipped.push(`${v.name} (dated in the future: signed as taken at ${new Date(v.time).toISOString()}, later than now)`);
  // Never passed in silence (restore.ts names it so for a folder restore without a key).
  if (best && rank === 0) for (const v of verified) if (v.byHost && !v.future && compareInstants(v.at, best.at) > 0) skipped.push(`${v.name} (taken on ${v.byHost} by its manifest, and without machine ids only host names tell machines apart: if this machine was called ${v.byHost} then, name it with --snapshot)`);
  if (!best) {
    throw new BackupError('NO_SNAPSHOTS', `No snapshot in ${p} has a manifest that verifies under the operator public key ${opts.anchor.fingerprint} (${opts.anchor.source}).`, {
      hint: 'Name one with --snapshot (an unsigned one also needs --allow-unsigned-manifest).',
    });
  }
  const whose = rank === 0 && owners ? "this database's " : rank === 1 ? "this database's (by a relative source_db) " : '';
  return { path: best.path, selectedBy, rule: `${whose}newest by its signed created_at, among manifests that verify under ${opts.anchor.fingerprint}`, skipped };
}
