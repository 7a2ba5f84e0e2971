/**
 * An S3-compatible bucket and prefix (AWS S3, Cloudflare R2, Backblaze B2, MinIO, Wasabi).
 * Files up to one part go in one PutObject; larger ones as a multipart upload of 8 MiB
 * parts, two on the wire while the next is read from disk (three part buffers, reused:
 * memory stays flat whatever the file's size). Every part carries its sha256
 * (x-amz-content-sha256, which the server checks) and Content-MD5; the whole file's
 * sha256 must equal the manifest's before the upload is completed, so a file that changed
 * under us never becomes an object; afterwards HEAD must report the expected size and the
 * ETag the upload returned (and the ETag must be the MD5 of what we sent where it is one).
 */
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { BackupError, ioError } from '../common/errors';
import { openRegular, TooLargeFileError } from '../common/regularFile';
import { writeAll } from '../store/atomicFs';
import { md5, S3Client, type S3Credentials, type S3Location } from './s3Client';
import { largerThanManifest, type DownloadOptions, type RemoteEntry, type RemoteTarget, type UploadExpect, type UploadOptions, type Written } from './target';

export const PART_BYTES = 8 << 20;
/** Parts sent at once (measured on the loopback server: 1 → 2 in flight, see bench/results-remote.md). */
const PARTS_IN_FLIGHT = 2;
/** S3's limit on parts per upload; larger files get larger parts. */
const MAX_PARTS = 10_000;

/** An ETag is checkable as MD5 only when it looks like one and the object is not SSE-KMS encrypted (then it is not an MD5). */
const MD5_ETAG = /^[0-9a-f]{32}$/;

export class S3Target implements RemoteTarget {
  readonly kind = 's3' as const;
  readonly id: string;
  readonly label: string;
  readonly client: S3Client;
  /** Part size, for tests; default 8 MiB. */
  partBytes = PART_BYTES;

  constructor(loc: S3Location, creds: S3Credentials) {
    this.client = new S3Client(loc, creds);
    this.id = `s3:${loc.endpoint ?? ''}/${loc.bucket}/${loc.prefix}`;
    this.label = this.client.describe();
  }

  private key(name: string): string {
    if (name.includes('/') || name.includes('\\')) throw new BackupError('USAGE', `${name} is not a file name.`);
    return `${this.client.loc.prefix}${name}`;
  }

  async list(signal?: AbortSignal): Promise<RemoteEntry[]> {
    const prefix = this.client.loc.prefix;
    const objects = await this.client.list(signal);
    // S3 lists only keys that start with the prefix asked for. A key that does not is a key
    // the server gives back in another form than it was written (s3rver escapes & twice; a
    // provider that rewrites some characters): left out, every snapshot there was invisible —
    // each push sent them all again and deleted nothing, pull found nothing.
    const foreign = objects.find((o) => !o.key.startsWith(prefix));
    if (foreign) {
      throw new BackupError('REMOTE_ERROR', `${this.label} listed the key "${foreign.key}", which is not under the prefix "${prefix}" that was asked for: its listing cannot be trusted (it gives keys back in another form than they were written, or ignores the prefix); nothing was copied or deleted.`, {
        // No CLI flag in it: VS Code shows a hint that names none (features/errorText.ts), and the target is set the same way in both.
        hint: 'Use a prefix of letters, digits, "-", "_", "." and "/" only (s3://bucket/prefix).',
      });
    }
    return objects.filter((o) => !o.key.slice(prefix.length).includes('/')).map((o) => ({ name: o.key.slice(prefix.length), size: o.size, etag: o.etag, modifiedMs: o.modifiedMs }));
  }

  async uploadFile(name: string, path: string, expect: UploadExpect, opts: UploadOptions = {}): Promise<Written> {
    const key = this.key(name);
    const { fh } = await openRegular(path).catch((e: unknown) => Promise.reject(ioError('opening', path, e)));
    try {
      const size = (await fh.stat()).size;
      if (size !== expect.bytes) {
        throw new BackupError('REMOTE_MISMATCH', `${name} is ${size} bytes on disk but its manifest says ${expect.bytes}; not uploaded.`, { hint: 'Verify the local snapshot.' });
      }
      const partBytes = Math.max(this.partBytes, Math.ceil(size / MAX_PARTS));
      let etag: string;
      if (size <= partBytes) {
        const body = Buffer.allocUnsafe(size);
        await readFully(fh, body, 0, path);
        this.checkSent(name, size, createHash('sha256').update(body).digest('hex'), expect);
        const r = await this.client.put(key, body, opts.signal);
        if (!r.kms && MD5_ETAG.test(r.etag) && r.etag !== md5(body).toString('hex')) {
          throw new BackupError('REMOTE_MISMATCH', `${this.label} stored ${name} with ETag ${r.etag}, not the MD5 of what was sent (${md5(body).toString('hex')}).`, { hint: 'The upload was damaged on the way; it is tried again next time.' });
        }
        etag = r.etag;
        opts.onBytes?.(size, size);
      } else {
        etag = await this.multipart(name, key, fh, size, partBytes, expect, opts);
      }
      const head = await this.client.head(key, opts.signal);
      if (!head) throw new BackupError('REMOTE_MISMATCH', `${this.label} does not show ${name} right after its upload.`, { hint: 'The copy is tried again next time.' });
      if (head.size !== expect.bytes) {
        throw new BackupError('REMOTE_MISMATCH', `${this.label} reports ${name} as ${head.size} bytes, not ${expect.bytes}.`, { hint: 'The copy is tried again next time.' });
      }
      if (etag && head.etag && head.etag !== etag) {
        throw new BackupError('REMOTE_MISMATCH', `${this.label} reports ${name} with ETag ${head.etag}, but the upload returned ${etag}.`, { hint: 'Another process may have written the same name; the copy is tried again next time.' });
      }
      return { etag: head.etag || etag };
    } finally {
      await fh.close().catch(() => undefined);
    }
  }

  private checkSent(name: string, bytes: number, sha: string, expect: UploadExpect): void {
    if (bytes !== expect.bytes || sha !== expect.sha256) {
      throw new BackupError('REMOTE_MISMATCH', `${name} does not match its manifest (read ${bytes} bytes, sha256 ${sha}; manifest: ${expect.bytes} bytes, ${expect.sha256}); not uploaded.`, {
        hint: 'The local snapshot changed or is damaged: verify it (Verify Snapshot / `verify`).',
      });
    }
  }

  private async multipart(name: string, key: string, fh: fsp.FileHandle, size: number, partBytes: number, expect: UploadExpect, opts: UploadOptions): Promise<string> {
    const uploadId = await this.client.createMultipart(key, opts.signal);
    await opts.onMultipart?.({ key, uploadId });
    const sha = createHash('sha256');
    const etags: string[] = [];
    const md5s: Buffer[] = [];
    const count = Math.ceil(size / partBytes);
    // PARTS_IN_FLIGHT parts on the wire while the next one is read from disk and hashed:
    // PARTS_IN_FLIGHT + 1 part buffers, reused, whatever the file's size.
    const free: Buffer[] = Array.from({ length: PARTS_IN_FLIGHT + 1 }, () => Buffer.allocUnsafe(partBytes));
    const inflight = new Set<Promise<void>>();
    let failure: unknown;
    let done = 0;
    try {
      for (let i = 0; i < count && failure === undefined; i++) {
        while (!free.length) await Promise.race(inflight);
        if (failure !== undefined) break;
        const buf = free.pop() as Buffer;
        const body = buf.subarray(0, Math.min(partBytes, size - i * partBytes));
        await readFully(fh, body, i * partBytes, key);
        sha.update(body);
        const m = md5(body);
        md5s[i] = m;
        const sent: Promise<void> = this.client
          .uploadPart(key, uploadId, i + 1, body, opts.signal)
          .then(({ etag, kms }) => {
            if (!kms && MD5_ETAG.test(etag) && etag !== m.toString('hex')) {
              throw new BackupError('REMOTE_MISMATCH', `${this.label} acknowledged part ${i + 1} of ${name} with ETag ${etag}, not the MD5 of what was sent.`, { hint: 'The upload was damaged on the way; it is tried again next time.' });
            }
            etags[i] = etag;
            done += body.length;
            opts.onBytes?.(done, size);
          })
          .catch((e: unknown) => {
            failure ??= e;
          })
          .finally(() => {
            inflight.delete(sent);
            free.push(buf);
          });
        inflight.add(sent);
      }
      await Promise.all(inflight);
      if (failure !== undefined) throw failure;
      this.checkSent(name, done, sha.digest('hex'), expect);
      const final = await this.client.completeMultipart(key, uploadId, etags, opts.signal);
      const expected = `${md5(Buffer.concat(md5s)).toString('hex')}-${count}`;
      if (/^[0-9a-f]{32}-\d+$/.test(final) && final !== expected) {
        throw new BackupError('REMOTE_MISMATCH', `${this.label} assembled ${name} with ETag ${final}, expected ${expected}.`, { hint: 'The copy is tried again next time.' });
      }
      await opts.onMultipart?.(undefined);
      return final;
    } catch (e) {
      // Best effort: a dead server cannot be told; the id stays in the state file and is abandoned next run.
      await this.client.abortMultipart(key, uploadId).then(() => opts.onMultipart?.(undefined)).catch(() => undefined);
      throw e;
    }
  }

  async uploadBytes(name: string, data: Uint8Array, signal?: AbortSignal): Promise<Written> {
    const key = this.key(name);
    const r = await this.client.put(key, data, signal);
    if (!r.kms && MD5_ETAG.test(r.etag) && r.etag !== md5(data).toString('hex')) {
      throw new BackupError('REMOTE_MISMATCH', `${this.label} stored ${name} with ETag ${r.etag}, not the MD5 of what was sent.`, { hint: 'The copy is tried again next time.' });
    }
    // As for a snapshot: the server must show what it acknowledged. A manifest (uploaded last,
    // it is what makes a snapshot there complete) answered 200 but not stored was counted as
    // copied, and the target held an unfinished upload.
    const head = await this.client.head(key, signal);
    if (!head) throw new BackupError('REMOTE_MISMATCH', `${this.label} does not show ${name} right after its upload.`, { hint: 'The copy is tried again next time.' });
    if (head.size !== data.length) throw new BackupError('REMOTE_MISMATCH', `${this.label} reports ${name} as ${head.size} bytes, not ${data.length}.`, { hint: 'The copy is tried again next time.' });
    if (r.etag && head.etag && head.etag !== r.etag) {
      throw new BackupError('REMOTE_MISMATCH', `${this.label} reports ${name} with ETag ${head.etag}, but the upload returned ${r.etag}.`, { hint: 'Another process may have written the same name; the copy is tried again next time.' });
    }
    return { etag: head.etag || r.etag };
  }

  /**
   * At most `maxBytes` (a manifest: SMALL_FILE_CAP, as a manifest in the backup folder is
   * read). An object of that name that is larger (damage, anyone with write access) was read
   * whole into memory — gigabytes — by every push and pull; now it is refused
   * (MANIFEST_INVALID) after its Content-Length or the first bytes past the cap.
   */
  async readBytes(name: string, signal?: AbortSignal, maxBytes = Infinity): Promise<Buffer> {
    const res = await this.client.get(this.key(name), signal);
    const where = `${this.label}/${name}`;
    const it = res.body[Symbol.asyncIterator]();
    try {
      const length = Number(res.headers.get('content-length') ?? NaN);
      if (Number.isFinite(length) && length > maxBytes) throw new TooLargeFileError(where, length, maxBytes);
      const chunks: Buffer[] = [];
      let n = 0;
      for (let r = await it.next(); !r.done; r = await it.next()) {
        n += r.value.length;
        if (n > maxBytes) throw new TooLargeFileError(where, n, maxBytes);
        chunks.push(r.value);
      }
      return Buffer.concat(chunks, n);
    } finally {
      await it.return?.(); // stops the download of what is left (a no-op once it ended)
    }
  }

  async downloadTo(name: string, destPath: string, opts: DownloadOptions = {}): Promise<{ bytes: number; sha256: string }> {
    const res = await this.client.get(this.key(name), opts.signal);
    const total = Number(res.headers.get('content-length') ?? 0);
    const max = opts.maxBytes ?? Infinity;
    if (total > max) {
      await res.body[Symbol.asyncIterator]().return?.(); // stops the download unread
      throw largerThanManifest(`${this.label}/${name}`, total, false, max);
    }
    const out = await fsp.open(destPath, 'r+');
    const hash = createHash('sha256');
    let pos = 0;
    try {
      if (!res.body) throw new BackupError('REMOTE_ERROR', `${this.label} sent no body for ${name}.`);
      for await (const chunk of res.body) {
        if (pos + chunk.length > max) throw largerThanManifest(`${this.label}/${name}`, pos + chunk.length, true, max);
        hash.update(chunk);
        await writeAll(out, chunk, pos);
        pos += chunk.length;
        opts.onBytes?.(pos, total);
      }
      await out.sync();
    } catch (e) {
      if (e instanceof BackupError) throw e;
      throw new BackupError('REMOTE_UNREACHABLE', `The download of ${name} from ${this.label} broke off after ${pos} bytes (${e instanceof Error ? e.message : String(e)}).`, { hint: 'Try again; nothing was restored.' });
    } finally {
      await out.close().catch(() => undefined);
    }
    return { bytes: pos, sha256: hash.digest('hex') };
  }

  async remove(names: string[], signal?: AbortSignal): Promise<{ deleted: string[]; refused: { name: string; message: string }[] }> {
    const prefix = this.client.loc.prefix;
    const r = await this.client.deleteMany(names.map((n) => this.key(n)), signal);
    return { deleted: r.deleted.map((k) => k.slice(prefix.length)), refused: r.refused.map((x) => ({ name: x.key.slice(prefix.length), message: x.message })) };
  }

  async abandon(u: { key: string; uploadId: string }, signal?: AbortSignal): Promise<void> {
    await this.client.abortMultipart(u.key, u.uploadId, signal);
  }
}

async function readFully(fh: fsp.FileHandle, buf: Buffer, position: number, where: string): Promise<void> {
  let done = 0;
  while (done < buf.length) {
    const { bytesRead } = await fh.read(buf, done, buf.length - done, position + done).catch((e: unknown) => Promise.reject(ioError('reading', where, e)));
    if (bytesRead === 0) throw new BackupError('REMOTE_MISMATCH', `${where} became shorter while it was uploaded.`, { hint: 'The copy is tried again next time.' });
    done += bytesRead;
  }
}
