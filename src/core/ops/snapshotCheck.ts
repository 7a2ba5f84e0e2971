/**
 * Examines one snapshot the way restore and verify need it: where it really is (no
 * symlink escaping its folder), its manifest (shape, the name it describes, byte count,
 * sha256), its format (plain SQLite, encrypted, truncated, something else) and, with
 * sql.js, its integrity. The snapshot is read once; restore keeps those bytes to place
 * exactly what was verified.
 */
import { isInside } from '../common/fsFacts';
import { checkLabel, type VerifyMode } from '../common/checks';
import { createHash } from 'node:crypto';
import { constants as fsc, promises as fsp } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { readManifestFor } from '../store/catalog';
import { BackupError, ioError, type ErrorCode } from '../common/errors';
import { hashFile } from '../common/hashFile';
import type { Manifest } from '../store/manifest';
import { manifestNameFor } from '../store/naming';
import { HEADER_SIZE, looksEncrypted, parseHeader } from '../sqlite/sqliteFormat';
import { checkImage, loadSqlEngine, MAX_CHECKABLE_BYTES, type ImageCheck } from '../sqlite/sqlEngine';

export type SnapshotFormat = 'sqlite' | 'encrypted' | 'not-sqlite' | 'empty' | 'truncated';

export interface Problem {
  code: ErrorCode;
  message: string;
  hint?: string;
}

export interface SnapshotReport {
  path: string;
  name: string;
  manifestPath: string;
  manifest?: Manifest;
  manifestState: 'ok' | 'missing' | 'invalid' | 'foreign' | 'skipped';
  bytes: number;
  sha256?: string;
  format?: SnapshotFormat;
  integrity?: ImageCheck;
  /** Empty when the snapshot is fine. The first one is the reason restore refuses. */
  problems: Problem[];
  /** Things worth saying that are not failures (e.g. "encrypted: integrity not checkable"). */
  notes: string[];
}

export interface ExamineOptions {
  /** The file is a rebuilt archived snapshot: report it under this name, with this manifest. */
  as?: { name: string; manifestPath: string; path: string };
  /** Check against the manifest (restore without --skip-verify, and verify). */
  useManifest: boolean;
  /** Which sql.js check; 'off' skips it (restore --skip-integrity). */
  integrity: VerifyMode;
  /** Stop at the first problem (restore) instead of collecting them all (verify). */
  stopAtFirst: boolean;
  /** An encrypted snapshot is a problem (restore, unless --skip-integrity) or only a note (verify). */
  encryptedIsProblem?: boolean;
  signal?: AbortSignal;
  onBytes?: (done: number, total: number) => void;
}

class Stop extends Error {}


/**
 * Resolves the snapshot path: a symlink is followed only when its target stays inside the
 * snapshot's folder (a link to /etc/passwd or another disk is refused).
 */
export async function resolveSnapshotPath(path: string): Promise<string> {
  let st;
  try {
    st = await fsp.lstat(path);
  } catch (e) {
    throw new BackupError('SNAPSHOT_NOT_FOUND', `Snapshot ${path} does not exist.`, { hint: 'Run `list` to see the snapshots in the backup folder.', cause: e });
  }
  if (!st.isSymbolicLink()) {
    if (!st.isFile()) throw new BackupError('SNAPSHOT_NOT_FOUND', `${path} is not a file.`);
    return path;
  }
  let target: string;
  let realDir: string;
  try {
    target = await fsp.realpath(path);
    realDir = await fsp.realpath(dirname(path));
  } catch (e) {
    throw new BackupError('UNSAFE_SNAPSHOT_PATH', `Snapshot ${path} is a broken symlink.`, { cause: e });
  }
  if (!isInside(realDir, target)) {
    throw new BackupError('UNSAFE_SNAPSHOT_PATH', `Snapshot ${path} is a symlink to ${target}, outside its folder; refusing to use it.`, {
      hint: 'Copy the real snapshot (and its manifest) into the backup folder instead of linking to it.',
    });
  }
  return target;
}

/** Reads the whole file, hashing as it goes (read-ahead overlaps the hashing). */
async function readAllHashed(path: string, size: number, signal: AbortSignal | undefined, onBytes?: (d: number, t: number) => void): Promise<{ bytes: Uint8Array; sha256: string }> {
  const fh = await fsp.open(path, fsc.O_RDONLY).catch((e: unknown) => {
    throw ioError('opening', path, e);
  });
  try {
    const out = new Uint8Array(size);
    const hash = createHash('sha256');
    const CH = 1 << 20;
    const readChunk = async (pos: number) => {
      const len = Math.min(CH, size - pos);
      let done = 0;
      while (done < len) {
        const { bytesRead } = await fh.read(out, pos + done, len - done, pos + done);
        if (bytesRead === 0) throw new BackupError('IO', `${path} shrank while it was read.`);
        done += bytesRead;
      }
      return pos;
    };
    let next: Promise<number> | undefined = size > 0 ? readChunk(0) : undefined;
    next?.catch(() => undefined);
    while (next) {
      const pos = await next;
      if (signal?.aborted) throw new BackupError('CANCELLED', 'Cancelled.');
      const end = Math.min(size, pos + CH);
      next = end < size ? readChunk(end) : undefined;
      next?.catch(() => undefined);
      hash.update(out.subarray(pos, end));
      onBytes?.(end, size);
    }
    return { bytes: out, sha256: hash.digest('hex') };
  } finally {
    await fh.close();
  }
}

/**
 * Classifies a file from its first bytes and its size; for plain SQLite also checks the
 * file holds every page its header promises (fileformat2 §1.3.9).
 */
export function detectFormat(head: Uint8Array, size: number): { format: SnapshotFormat; detail?: string } {
  if (size === 0) return { format: 'empty' };
  const hdr = parseHeader(head.subarray(0, HEADER_SIZE));
  if (!hdr) return { format: looksEncrypted(head.subarray(0, 4096), size) ? 'encrypted' : 'not-sqlite' };
  if (size % hdr.pageSize !== 0) {
    return { format: 'truncated', detail: `${size} bytes is not a whole number of ${hdr.pageSize}-byte pages` };
  }
  const filePages = size / hdr.pageSize;
  if (hdr.headerPages !== undefined && hdr.headerPages > filePages) {
    return { format: 'truncated', detail: `its header says ${hdr.headerPages} pages, the file holds ${filePages}` };
  }
  return { format: 'sqlite' };
}

/**
 * Examines a snapshot. Returns the report and, when `keepBytes`, the verified bytes.
 * Never throws for a bad snapshot (that is a Problem); throws for I/O trouble and cancel.
 */
export async function examineSnapshot(path: string, opts: ExamineOptions & { keepBytes?: boolean }): Promise<{ report: SnapshotReport; bytes?: Uint8Array }> {
  const name = opts.as?.name ?? basename(path);
  const manifestPath = opts.as?.manifestPath ?? join(dirname(path), manifestNameFor(name));
  const report: SnapshotReport = { path: opts.as?.path ?? path, name, manifestPath, manifestState: opts.useManifest ? 'missing' : 'skipped', bytes: 0, problems: [], notes: [] };
  const problem = (p: Problem) => {
    report.problems.push(p);
    if (opts.stopAtFirst) throw new Stop();
  };
  let bytes: Uint8Array | undefined;
  try {
    let real: string;
    try {
      real = await resolveSnapshotPath(path);
    } catch (e) {
      if (e instanceof BackupError) {
        problem({ code: e.code, message: e.message, hint: e.hint });
        return { report };
      }
      throw e;
    }
    const size = (await fsp.stat(real)).size;
    report.bytes = size;
    if (opts.useManifest) {
      const m = await readManifestFor(name, manifestPath);
      report.manifestState = m.manifestState;
      report.manifest = m.manifest;
      if (m.manifestState === 'missing') {
        problem({ code: 'MANIFEST_MISSING', message: `Manifest ${manifestPath} not found; cannot check ${name}.`, hint: 'Pass --skip-verify to restore without the manifest check (not recommended).' });
      } else if (m.manifestState === 'foreign') {
        problem({
          code: 'MANIFEST_FOREIGN',
          message: m.manifestError ?? 'manifest names another file',
          hint: 'A manifest must name the snapshot beside it; this one may have been tampered with. Restore another snapshot, or pass --skip-verify only if you trust this one.',
        });
      } else if (m.manifestState === 'invalid') {
        problem({ code: 'MANIFEST_INVALID', message: m.manifestError ?? 'manifest invalid', hint: 'Pass --skip-verify to restore without the manifest check (not recommended).' });
      } else if (m.manifest && m.manifest.bytes !== size) {
        problem({ code: 'SIZE_MISMATCH', message: `${name} is ${size} bytes but its manifest says ${m.manifest.bytes}: the snapshot is damaged or incomplete.`, hint: 'Restore another snapshot.' });
      }
    }
    const needBytes = opts.integrity !== 'off' || opts.keepBytes === true;
    if (opts.integrity !== 'off' && size > MAX_CHECKABLE_BYTES) {
      problem({ code: 'TOO_LARGE', message: `${name} is ${size} bytes, larger than the ${MAX_CHECKABLE_BYTES >> 20} MiB the WASM checker can open.`, hint: 'Pass --skip-integrity to restore it with only the manifest check.' });
    }
    let sha256: string;
    if (needBytes && size <= MAX_CHECKABLE_BYTES) {
      // Compile the WASM checker while the disk works (a failure surfaces in checkImage).
      if (opts.integrity !== 'off') loadSqlEngine().catch(() => undefined);
      const r = await readAllHashed(real, size, opts.signal, opts.onBytes);
      bytes = r.bytes;
      sha256 = r.sha256;
    } else {
      sha256 = (await hashFile(real, opts.signal, (d) => opts.onBytes?.(d, size))).sha256;
    }
    report.sha256 = sha256;
    if (report.manifest && report.manifest.bytes === size && report.manifest.sha256 !== sha256) {
      problem({ code: 'SHA_MISMATCH', message: `sha256 mismatch — manifest says ${report.manifest.sha256}, snapshot is ${sha256}.`, hint: 'The snapshot or its manifest was altered or damaged; restore another snapshot.' });
    }
    {
      const head = bytes ?? (await readHead(real));
      const c = detectFormat(head, size);
      report.format = c.format;
      if (c.format === 'empty') problem({ code: 'NOT_A_DATABASE', message: `${name} is empty (0 bytes).`, hint: 'Restore another snapshot.' });
      else if (c.format === 'truncated') problem({ code: 'INTEGRITY_FAILED', message: `${name} is truncated: ${c.detail}.`, hint: 'Restore another snapshot.' });
      else if (c.format === 'not-sqlite') problem({ code: 'NOT_A_DATABASE', message: `${name} is not an SQLite database.`, hint: 'Restore another snapshot.' });
      else if (c.format === 'encrypted' && opts.integrity !== 'off' && !opts.encryptedIsProblem) {
        report.notes.push('encrypted (not plain SQLite): integrity not checkable here');
      } else if (c.format === 'encrypted' && opts.integrity !== 'off') {
        problem({
          code: 'UNVERIFIABLE',
          message: `${name} is encrypted (not plain SQLite, e.g. SQLCipher): its integrity cannot be checked here.`,
          hint: 'If it is your encrypted ai-memory database, pass --skip-integrity to restore it with only the manifest check.',
        });
      } else if (c.format === 'sqlite' && opts.integrity !== 'off' && bytes) {
        const check = await checkImage(bytes, opts.integrity);
        report.integrity = check;
        if (!check.ok) problem({ code: 'INTEGRITY_FAILED', message: `${name} fails ${checkLabel(opts.integrity)}: ${check.result}.`, hint: 'Restore another snapshot.' });
      }
    }
  } catch (e) {
    if (!(e instanceof Stop)) throw e;
  }
  return { report, bytes: opts.keepBytes && report.problems.length === 0 ? bytes : undefined };
}

async function readHead(path: string): Promise<Uint8Array> {
  const fh = await fsp.open(path, fsc.O_RDONLY).catch((e: unknown) => {
    throw ioError('opening', path, e);
  });
  try {
    const buf = Buffer.alloc(4096);
    const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
    return buf.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}

/** The first problem as the error restore throws. */
export function problemError(p: Problem): BackupError {
  return new BackupError(p.code, p.message, { hint: p.hint });
}
