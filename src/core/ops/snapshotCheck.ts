/**
 * Examines one snapshot the way restore and verify need it: where it really is (no
 * symlink escaping its folder), its manifest (shape, the name it describes, byte count,
 * sha256), its format (plain SQLite, encrypted, truncated, something else) and, with
 * sql.js, its integrity. The snapshot is read once (hashed, and for restore copied beside
 * the database); SQLite checks the copy restore will place, page by page from disk.
 */
import { isInside } from '../common/fsFacts';
import { checkLabel, type VerifyMode } from '../common/checks';
import { largeBuffers } from '../common/largeBuffer';
import { createHash } from 'node:crypto';
import { constants as fsc, promises as fsp, type Stats } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { EarlyWriteback, writeAll } from '../store/atomicFs';
import { anchorFor, readManifestFor } from '../store/catalog';
import type { OperatorPublicKey } from '../store/operatorKey';
import { describeVerdict, type SignatureVerdict } from '../store/signing';
import { BackupError, errnoCode, ioError, type ErrorCode } from '../common/errors';
import { openRegular } from '../common/regularFile';
import type { Manifest } from '../store/manifest';
import { manifestNameFor } from '../store/naming';
import { HEADER_SIZE, looksEncrypted, parseHeader } from '../sqlite/sqliteFormat';
import { checkFile, describeMaxCheckable, loadSqlEngine, MAX_CHECKABLE_BYTES, type ImageCheck } from '../sqlite/sqlEngine';

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
  /** ai-memory 1.0's signature verdict (store/signing.ts); the key it was checked against, if any. */
  signature?: SignatureVerdict;
  anchor?: OperatorPublicKey;
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
  /** The operator public key (undefined: resolved as ai-memory does; null: none). */
  anchor?: OperatorPublicKey | null;
  /**
   * With an operator key configured, an unsigned manifest is a problem (restore) unless
   * `allowUnsigned` (--allow-unsigned-manifest); otherwise only a note (verify).
   */
  unsignedIsProblem?: boolean;
  allowUnsigned?: boolean;
  /**
   * The sha256 of the file, computed by the caller from the very bytes it wrote there (a
   * rebuilt archived snapshot): the file is not read and hashed a second time, only its
   * first 4 KiB (the format). Not with `copyTo`.
   */
  hashed?: string;
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

const STREAM_CHUNK = 4 << 20;

/**
 * Reads the file once from start to end, hashing it and, with `copyTo`, writing it there
 * (a new file; fsynced by the caller through `sync`). Reads run ahead of the hashing and
 * the writes; memory is three chunk buffers whatever the size. Returns the sha256 and the
 * file's first 4 KiB (for the format).
 */
async function streamHashed(
  path: string,
  size: number,
  signal: AbortSignal | undefined,
  onBytes: ((d: number, t: number) => void) | undefined,
  copyTo: string | undefined,
): Promise<{ sha256: string; head: Uint8Array; sync?: () => Promise<void> }> {
  const { fh } = await openRegular(path).catch((e: unknown) => {
    throw ioError('opening', path, e);
  });
  let out: FileHandle | undefined;
  let writeback: EarlyWriteback | undefined;
  try {
    if (copyTo) {
      out = await fsp.open(copyTo, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL, 0o600).catch((e: unknown) => {
        throw ioError('creating', copyTo, e);
      });
    }
    // Views of one allocation that glibc keeps nothing of once freed (largeBuffer.ts).
    const bufs = largeBuffers(3, Math.min(STREAM_CHUNK, Math.max(size, 1)));
    const hash = createHash('sha256');
    const head = new Uint8Array(Math.min(4096, size));
    const readChunk = async (pos: number, buf: Buffer): Promise<number> => {
      const len = Math.min(buf.length, size - pos);
      let done = 0;
      while (done < len) {
        const { bytesRead } = await fh.read(buf, done, len - done, pos + done);
        if (bytesRead === 0) throw new BackupError('IO', `${path} shrank while it was read.`);
        done += bytesRead;
      }
      return len;
    };
    let writing: Promise<void> = Promise.resolve();
    writeback = out ? new EarlyWriteback(out) : undefined;
    let next: Promise<number> | undefined = size > 0 ? readChunk(0, bufs[0]) : undefined;
    next?.catch(() => undefined);
    for (let pos = 0, k = 0; next; k++) {
      const len = await next;
      if (signal?.aborted) throw new BackupError('CANCELLED', 'Cancelled.');
      const buf = bufs[k % 3];
      const end = pos + len;
      // Buffer k+1 was last used by the write of chunk k−2, awaited before chunk k−1's write began.
      next = end < size ? readChunk(end, bufs[(k + 1) % 3]) : undefined;
      next?.catch(() => undefined);
      if (pos === 0) head.set(buf.subarray(0, head.length));
      hash.update(buf.subarray(0, len));
      if (out) {
        await writing;
        const o = out;
        writeback?.wrote(len);
        writing = writeAll(o, buf.subarray(0, len), pos).catch((e: unknown) => {
          throw ioError('writing', copyTo as string, e);
        });
        writing.catch(() => undefined);
      }
      pos = end;
      onBytes?.(end, size);
    }
    await writing;
    const o = out;
    out = undefined;
    return {
      sha256: hash.digest('hex'),
      head,
      sync: o
        ? async () => {
            try {
              await writeback?.settle();
              await o.sync();
            } catch (e) {
              throw ioError('saving', copyTo as string, e);
            } finally {
              await o.close().catch(() => undefined);
            }
          }
        : undefined,
    };
  } finally {
    await writeback?.settle().catch(() => undefined);
    await out?.close().catch(() => undefined);
    await fh.close();
  }
}

/** The first 4 KiB of a file (for its format). */
async function readHead(path: string, size: number): Promise<Uint8Array> {
  const { fh } = await openRegular(path).catch((e: unknown) => {
    throw ioError('opening', path, e);
  });
  try {
    const head = Buffer.alloc(Math.min(4096, size));
    for (let done = 0; done < head.length; ) {
      const { bytesRead } = await fh.read(head, done, head.length - done, done);
      if (bytesRead === 0) throw new BackupError('IO', `${path} shrank while it was read.`);
      done += bytesRead;
    }
    return head;
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
 * Examines a snapshot. With `copyTo` (restore), the one read of the snapshot also writes
 * it to that new file, fsyncs it, and the SQLite check runs on that copy — exactly the
 * bytes that were hashed and will be put in place. Without it (verify, a dry run), the
 * check reads the snapshot itself, and a snapshot that changed between the hash and the
 * end of the check is a problem. Either way SQLite reads the file lazily: memory stays
 * flat whatever its size. `report.copied` says whether `copyTo` holds the verified copy;
 * the caller removes it otherwise (and on any failure).
 * Never throws for a bad snapshot (that is a Problem); throws for I/O trouble and cancel.
 */
export async function examineSnapshot(path: string, opts: ExamineOptions & { copyTo?: string }): Promise<{ report: SnapshotReport; copied: boolean }> {
  const name = opts.as?.name ?? basename(path);
  const manifestPath = opts.as?.manifestPath ?? join(dirname(path), manifestNameFor(name));
  const report: SnapshotReport = { path: opts.as?.path ?? path, name, manifestPath, manifestState: opts.useManifest ? 'missing' : 'skipped', bytes: 0, problems: [], notes: [] };
  const problem = (p: Problem) => {
    report.problems.push(p);
    if (opts.stopAtFirst) throw new Stop();
  };
  let copied = false;
  try {
    let real: string;
    try {
      real = await resolveSnapshotPath(path);
    } catch (e) {
      if (e instanceof BackupError) {
        problem({ code: e.code, message: e.message, hint: e.hint });
        return { report, copied };
      }
      throw e;
    }
    const before = await fsp.stat(real);
    const size = before.size;
    report.bytes = size;
    if (opts.useManifest) {
      const anchor = await anchorFor(opts.anchor);
      report.anchor = anchor;
      const m = await readManifestFor(name, manifestPath, anchor ?? null);
      report.manifestState = m.manifestState;
      report.manifest = m.manifest;
      report.signature = m.signature;
      if (m.signature && m.signature.state !== 'refused') report.notes.push(describeVerdict(m.signature));
      if (m.signature?.state === 'refused') {
        problem({ code: 'SIGNATURE_REFUSED', message: m.manifestError ?? m.signature.reason, hint: 'No option accepts a signature that does not verify: restore another snapshot.' });
      } else if (anchor && m.signature?.state === 'unsigned' && !opts.allowUnsigned) {
        const msg = `Manifest ${manifestPath} is not signed, and an operator public key is configured (${anchor.source}, ${anchor.fingerprint}): anyone who can write the backup folder can write an unsigned manifest.`;
        if (opts.unsignedIsProblem) {
          problem({ code: 'MANIFEST_UNSIGNED', message: `${msg} Refusing to restore it.`, hint: 'If you know where this snapshot came from (an older backup, or one taken without the key), pass --allow-unsigned-manifest.' });
        } else {
          report.notes.push('unsigned: with the operator key configured, restore needs --allow-unsigned-manifest');
        }
      }
      if (m.manifestState === 'missing') {
        problem({ code: 'MANIFEST_MISSING', message: `Manifest ${manifestPath} not found; cannot check ${name}.`, hint: 'Pass --skip-verify to restore without the manifest check (not recommended).' });
      } else if (m.manifestState === 'foreign') {
        problem({
          code: 'MANIFEST_FOREIGN',
          message: m.manifestError ?? 'manifest names another file',
          hint: 'A manifest must name the snapshot beside it; this one may have been tampered with. Restore another snapshot, or pass --skip-verify only if you trust this one.',
        });
      } else if (m.manifestState === 'invalid' && m.signature?.state !== 'refused') {
        // A manifest this user may not read is not a damaged one: skipping the check is not the advice.
        const denied = await fsp.access(manifestPath, fsc.R_OK).then(
          () => false,
          (e: unknown) => errnoCode(e) === 'EACCES' || errnoCode(e) === 'EPERM',
        );
        problem({
          code: 'MANIFEST_INVALID',
          message: m.manifestError ?? 'manifest invalid',
          hint: denied ? "Check that you may read the manifest (its mode, and that its folders let you in), or run as the user who owns the backups." : 'Pass --skip-verify to restore without the manifest check (not recommended).',
        });
      } else if (m.manifest && m.manifest.bytes !== size) {
        problem({ code: 'SIZE_MISMATCH', message: `${name} is ${size} bytes but its manifest says ${m.manifest.bytes}: the snapshot is damaged or incomplete.`, hint: 'Restore another snapshot.' });
      }
    }
    if (opts.integrity !== 'off' && size > MAX_CHECKABLE_BYTES) {
      problem({
        code: 'TOO_LARGE',
        message: `${name} is ${size} bytes: not checked: larger than ${describeMaxCheckable()}, the most the WASM checker opens.`,
        hint: 'Pass --skip-integrity to restore it with only the manifest check.',
      });
    }
    const checking = opts.integrity !== 'off' && size <= MAX_CHECKABLE_BYTES;
    // Compile the WASM checker while the disk works (a failure surfaces in the check).
    if (checking) loadSqlEngine().catch(() => undefined);
    const read = opts.hashed !== undefined && !opts.copyTo ? { sha256: opts.hashed, head: await readHead(real, size), sync: undefined } : await streamHashed(real, size, opts.signal, opts.onBytes, opts.copyTo);
    // The copy's fsync runs while the format and the integrity are checked; awaited below.
    const durable = read.sync?.();
    durable?.catch(() => undefined);
    let settled = false;
    try {
      const sha256 = read.sha256;
      report.sha256 = sha256;
      if (report.manifest && report.manifest.bytes === size && report.manifest.sha256 !== sha256) {
        problem({ code: 'SHA_MISMATCH', message: `sha256 mismatch — manifest says ${report.manifest.sha256}, snapshot is ${sha256}.`, hint: 'The snapshot or its manifest was altered or damaged; restore another snapshot.' });
      }
      const c = detectFormat(read.head, size);
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
      } else if (c.format === 'sqlite' && checking && opts.integrity !== 'off') {
        const check = await checkFile(opts.copyTo ?? real, opts.integrity);
        report.integrity = check;
        if (!check.ok) problem({ code: 'INTEGRITY_FAILED', message: `${name} fails ${checkLabel(opts.integrity)}: ${check.result}.`, hint: 'Restore another snapshot.' });
        if (!opts.copyTo && changed(before, await fsp.stat(real))) {
          problem({ code: 'SHA_MISMATCH', message: `${name} changed while it was checked.`, hint: 'Something is writing to the snapshot; check again, or restore another snapshot.' });
        }
      }
      await durable; // a copy that cannot be made durable is an error, even for a good snapshot
      settled = true;
    } finally {
      if (!settled) await durable?.catch(() => undefined); // never leave the copy's fsync running
    }
    copied = opts.copyTo !== undefined && report.problems.length === 0;
  } catch (e) {
    if (!(e instanceof Stop)) throw e;
  }
  return { report, copied };
}

function changed(a: Stats, b: Stats): boolean {
  return a.size !== b.size || a.mtimeMs !== b.mtimeMs || a.ctimeMs !== b.ctimeMs || a.ino !== b.ino;
}

/** The first problem as the error restore throws. */
export function problemError(p: Problem): BackupError {
  return new BackupError(p.code, p.message, { hint: p.hint });
}
