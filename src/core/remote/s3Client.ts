/**
 * The S3 requests we need (ListObjectsV2, PutObject, multipart upload, GetObject,
 * HeadObject, DeleteObjects), signed with SigV4 by aws4fetch and sent with Node's fetch.
 *
 * Why aws4fetch and not @aws-sdk/client-s3 (measured 2026-11-29, esbuild --minify, node20):
 *  - @aws-sdk/client-s3 3.1175 + lib-storage + credential-providers: 627 KB minified
 *    (186 KB gzipped) added to each bundle that uses it; client-s3 alone 592 KB. Its Node
 *    requirement (>=20) is what VS Code 1.100 ships, so that was not the blocker.
 *  - aws4fetch 1.0.20: 8 KB minified (3 KB gzipped); fetch and crypto.subtle are Node 20
 *    globals.
 *  - Headers: since 3.729 the SDK adds CRC32 `x-amz-checksum-*` headers by default, which
 *    R2, B2, OCI and older MinIO refuse; `requestChecksumCalculation: WHEN_REQUIRED` turns
 *    that off, yet DeleteObjects still gets CRC32 instead of the Content-MD5 that
 *    S3-compatible servers require (aws/aws-sdk-js-v3#6819, #6920). Here every header is
 *    ours: `x-amz-content-sha256` of each payload (SigV4), `Content-MD5` only where a request
 *    needs it (DeleteObjects) and on PutObject/UploadPart, which every provider accepts; no
 *    `x-amz-checksum-*` header at all.
 * The response documents we read are small, flat and of a fixed shape (six element names),
 * so they are read with a few regular expressions instead of an XML library.
 *
 * aws4fetch only signs; the request goes out through node:http(s), not fetch: undici's
 * Request copies a Uint8Array body (twice with fetch(Request)), which for 8 MiB parts kept
 * the push at 155 MB peak RSS instead of flat (bench/results-remote.md), and a fetch signal
 * is a deadline for the whole body, where a large download needs an idle timeout.
 */
import { createHash } from 'node:crypto';
import * as http from 'node:http';
import * as https from 'node:https';
import { AwsClient } from 'aws4fetch';
import { BackupError, type ErrorCode } from '../common/errors';

export interface S3Credentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

export interface S3Location {
  /** `https://s3.<region>.amazonaws.com` when not given. */
  endpoint?: string;
  region: string;
  bucket: string;
  /** Key prefix, '' or ending in '/'. */
  prefix: string;
  /** `https://host/bucket/key` instead of `https://bucket.host/key` (MinIO, most self-hosted). */
  pathStyle: boolean;
}

export interface S3Object {
  key: string;
  size: number;
  etag: string;
  /** LastModified (the server's clock), when given and readable. */
  modifiedMs?: number;
}

const EMPTY_SHA256 = createHash('sha256').digest('hex');
const RETRIES = 2;
/** A request whose socket is silent this long is given up (idle, not total: a large download may take long). */
const IDLE_TIMEOUT_MS = 120_000;

/** What we read of a response (the shape of fetch's Response that this file uses). */
export interface S3Response {
  status: number;
  headers: { get(name: string): string | null };
  text(): Promise<string>;
  arrayBuffer(): Promise<ArrayBuffer>;
  /** The body as it arrives. */
  body: AsyncIterable<Buffer>;
}

class IdleTimeout extends Error {
  constructor() {
    super(`no answer for ${IDLE_TIMEOUT_MS / 1000} s`);
    this.name = 'TimeoutError';
  }
}

function wrap(res: http.IncomingMessage): S3Response {
  const all = async () => {
    const chunks: Buffer[] = [];
    for await (const c of res) chunks.push(c as Buffer);
    return Buffer.concat(chunks);
  };
  return {
    status: res.statusCode ?? 0,
    headers: {
      get: (n) => {
        const v = res.headers[n.toLowerCase()];
        return v === undefined ? null : Array.isArray(v) ? v.join(', ') : v;
      },
    },
    text: async () => (await all()).toString('utf8'),
    arrayBuffer: async () => {
      const b = await all();
      return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;
    },
    body: res,
  };
}

function send(url: string, method: string, headers: Headers, body: Uint8Array | undefined, signal: AbortSignal | undefined): Promise<S3Response> {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const h: Record<string, string> = {};
    headers.forEach((v, k) => {
      h[k] = v;
    });
    h['content-length'] = String(body?.length ?? 0);
    const req = (u.protocol === 'https:' ? https : http).request(u, { method, headers: h, signal }, (res) => {
      res.setTimeout(IDLE_TIMEOUT_MS, () => res.destroy(new IdleTimeout()));
      resolve(wrap(res));
    });
    req.setTimeout(IDLE_TIMEOUT_MS, () => req.destroy(new IdleTimeout()));
    req.on('error', reject);
    req.end(body);
  });
}

export function sha256Hex(b: Uint8Array | string): string {
  return createHash('sha256').update(b).digest('hex');
}

export function md5(b: Uint8Array | string): Buffer {
  return createHash('md5').update(b).digest();
}

function xmlText(s: string): string {
  return s.replace(/&(lt|gt|amp|quot|apos|#\d+|#x[0-9a-fA-F]+);/g, (_m, e: string) => {
    if (e === 'lt') return '<';
    if (e === 'gt') return '>';
    if (e === 'amp') return '&';
    if (e === 'quot') return '"';
    if (e === 'apos') return "'";
    return String.fromCodePoint(e[1] === 'x' ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10));
  });
}

function xmlEscape(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&apos;');
}

/** Text of each `<tag>…</tag>` in `xml` (not nested in the same tag). */
function all(xml: string, tag: string): string[] {
  const out: string[] = [];
  const re = new RegExp(`<${tag}>([\\s\\S]*?)</${tag}>`, 'g');
  let m;
  while ((m = re.exec(xml))) out.push(m[1]);
  return out;
}

function one(xml: string, tag: string): string | undefined {
  const v = all(xml, tag)[0];
  return v === undefined ? undefined : xmlText(v);
}

/** `"abc"` → `abc` (S3 quotes ETags). */
export function unquoteEtag(e: string | null | undefined): string {
  return (e ?? '').replace(/^W\//, '').replace(/^"|"$/g, '').replace(/^&quot;|&quot;$/g, '');
}

/** Encodes a key for the URL path: each segment percent-encoded (RFC 3986), slashes kept. */
function encodeKey(key: string): string {
  return key
    .split('/')
    .map((s) => encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`))
    .join('/');
}

export class S3Client {
  private readonly aws: AwsClient;
  readonly loc: S3Location;
  private readonly base: URL;

  constructor(loc: S3Location, creds: S3Credentials) {
    this.loc = loc;
    // retries: 0 — aws4fetch would retry 5xx ten times; our own loop below retries twice and
    // never retries a request whose body could not be replayed.
    this.aws = new AwsClient({ ...creds, service: 's3', region: loc.region, retries: 0 });
    this.base = new URL(loc.endpoint ?? `https://s3.${loc.region}.amazonaws.com`);
  }

  /** Where messages say we are talking to (never a credential). */
  describe(): string {
    return `s3://${this.loc.bucket}/${this.loc.prefix}${this.loc.endpoint ? ` at ${this.base.host}` : ''}`;
  }

  url(key: string, query = ''): string {
    const b = this.base;
    const basePath = b.pathname.replace(/\/+$/, '');
    const path = key ? `/${encodeKey(key)}` : '/';
    const q = query ? `?${query}` : '';
    if (this.loc.pathStyle) return `${b.protocol}//${b.host}${basePath}/${encodeURIComponent(this.loc.bucket)}${key ? path : ''}${q}`;
    return `${b.protocol}//${this.loc.bucket}.${b.host}${basePath}${path}${q}`;
  }

  /**
   * One signed request, retried on network errors and 5xx (twice, 0.5 s then 1 s).
   * Throws a BackupError saying what the server answered and what to do.
   */
  async request(method: string, key: string, opts: { query?: string; body?: Uint8Array; headers?: Record<string, string>; signal?: AbortSignal; okStatus?: number[]; what?: string } = {}): Promise<S3Response> {
    const url = this.url(key, opts.query);
    const headers: Record<string, string> = { 'x-amz-content-sha256': opts.body ? sha256Hex(opts.body) : EMPTY_SHA256, ...opts.headers };
    const what = opts.what ?? `${method} ${key || this.loc.bucket}`;
    let lastError: BackupError | undefined;
    for (let attempt = 0; attempt <= RETRIES; attempt++) {
      if (attempt > 0) await sleep(500 * attempt, opts.signal);
      let res: S3Response;
      try {
        // Signed without the body: its sha256 is already in x-amz-content-sha256.
        const signed = await this.aws.sign(url, { method, headers });
        res = await send(signed.url, method, signed.headers, opts.body, opts.signal);
      } catch (e) {
        if (opts.signal?.aborted) throw new BackupError('CANCELLED', `Cancelled while ${what}.`);
        lastError = networkError(this.describe(), what, e);
        continue;
      }
      if ((opts.okStatus ?? [200, 204, 206]).includes(res.status)) return res;
      const text = await res.text().catch(() => '');
      const err = this.withPrefixHint(s3Error(this.describe(), what, res.status, text, res.headers.get('x-amz-bucket-region') ?? undefined), text);
      if (res.status >= 500 || res.status === 429) {
        lastError = err;
        continue;
      }
      throw err;
    }
    throw lastError ?? new BackupError('REMOTE_ERROR', `${what} failed.`);
  }

  /**
   * A signature refused while the prefix has characters beyond letters, digits and - _ . ~ /:
   * the prefix is in the LIST's query, which S3-compatible servers canonicalise differently
   * (s3rver leaves ! ' ( ) * unescaped, where SigV4 escapes them); "enter the secret again"
   * alone sent the user after a secret that is right.
   */
  private withPrefixHint(err: BackupError, body: string): BackupError {
    const odd = [...new Set(this.loc.prefix.match(/[^A-Za-z0-9/._~-]/g) ?? [])];
    if (one(body, 'Code') !== 'SignatureDoesNotMatch' || !odd.length) return err;
    return new BackupError(err.code, err.message, {
      hint: `${err.hint ?? ''} If the secret is right: the prefix "${this.loc.prefix}" has characters (${odd.join(' ')}) that some servers sign differently; use a prefix of letters, digits, "-", "_", "." and "/" only.`.trim(),
    });
  }

  /**
   * Keys a LIST page asks for (`max-keys`): S3's own ceiling, 1,000. Tests lower it, so that
   * listing past one page runs against a real server with a handful of objects.
   */
  pageKeys = 1000;
  /** Keys a DeleteObjects request carries: S3's limit, 1,000. Tests lower it. */
  deleteBatch = 1000;

  /** Every object directly under the prefix: one paginated ListObjectsV2 (`pageKeys` keys a page). */
  async list(signal?: AbortSignal): Promise<S3Object[]> {
    const out: S3Object[] = [];
    const seen = new Set<string>();
    let token: string | undefined;
    do {
      const q = new URLSearchParams({ 'list-type': '2', delimiter: '/', prefix: this.loc.prefix, 'max-keys': String(this.pageKeys) });
      if (token) q.set('continuation-token', token);
      const res = await this.request('GET', '', { query: q.toString().replace(/\+/g, '%20'), signal, what: `listing ${this.describe()}` });
      const xml = await res.text();
      // Keys percent-encoded when the answer says so (EncodingType "url": some servers encode
      // unasked): read as written, they were keys outside the prefix, and every run failed.
      const urlEncoded = /^\s*url\s*$/i.test(one(xml, 'EncodingType') ?? '');
      for (const c of all(xml, 'Contents')) {
        const modified = Date.parse(one(c, 'LastModified') ?? '');
        const raw = one(c, 'Key') ?? '';
        out.push({ key: urlEncoded ? urlDecodeKey(raw) : raw, size: Number(one(c, 'Size') ?? 0), etag: unquoteEtag(one(c, 'ETag')), ...(Number.isFinite(modified) ? { modifiedMs: modified } : {}) });
      }
      // An xs:boolean: "1" and "True" say there is more as "true" does (read as "no": half a listing, silently).
      const truncated = /^\s*(true|1)\s*$/i.test(one(xml, 'IsTruncated') ?? '');
      token = truncated ? one(xml, 'NextContinuationToken') : undefined;
      // A listing cut short and taken for the whole: a snapshot past the page counted as
      // missing (sent again), the newest there not the newest, retention judging half a target.
      if (truncated && !token) throw incompleteList(this.describe(), 'said there is more but gave no continuation token');
      if (token !== undefined && seen.has(token)) throw incompleteList(this.describe(), 'gave the same continuation token twice');
      if (token !== undefined) seen.add(token);
    } while (token);
    return out;
  }

  async put(key: string, body: Uint8Array, signal?: AbortSignal): Promise<{ etag: string; kms: boolean }> {
    const res = await this.request('PUT', key, { body, headers: { 'content-md5': md5(body).toString('base64'), 'content-type': 'application/octet-stream' }, signal, what: `uploading ${key}` });
    await res.arrayBuffer().catch(() => undefined);
    return { etag: unquoteEtag(res.headers.get('etag')), kms: (res.headers.get('x-amz-server-side-encryption') ?? '').includes('kms') };
  }

  async head(key: string, signal?: AbortSignal): Promise<{ size: number; etag: string } | undefined> {
    const res = await this.request('HEAD', key, { signal, okStatus: [200, 404], what: `checking ${key}` });
    if (res.status === 404) return undefined;
    return { size: Number(res.headers.get('content-length') ?? -1), etag: unquoteEtag(res.headers.get('etag')) };
  }

  async get(key: string, signal?: AbortSignal): Promise<S3Response> {
    return this.request('GET', key, { signal, what: `downloading ${key}` });
  }

  async createMultipart(key: string, signal?: AbortSignal): Promise<string> {
    const res = await this.request('POST', key, { query: 'uploads=', headers: { 'content-type': 'application/octet-stream' }, signal, what: `starting the upload of ${key}` });
    const id = one(await res.text(), 'UploadId');
    if (!id) throw new BackupError('REMOTE_ERROR', `${this.describe()} did not return an upload id for ${key}.`);
    return id;
  }

  async uploadPart(key: string, uploadId: string, part: number, body: Uint8Array, signal?: AbortSignal): Promise<{ etag: string; kms: boolean }> {
    const q = `partNumber=${part}&uploadId=${encodeURIComponent(uploadId)}`;
    const res = await this.request('PUT', key, { query: q, body, headers: { 'content-md5': md5(body).toString('base64') }, signal, what: `uploading part ${part} of ${key}` });
    await res.arrayBuffer().catch(() => undefined);
    return { etag: unquoteEtag(res.headers.get('etag')), kms: (res.headers.get('x-amz-server-side-encryption') ?? '').includes('kms') };
  }

  async completeMultipart(key: string, uploadId: string, etags: string[], signal?: AbortSignal): Promise<string> {
    const body = Buffer.from(`<CompleteMultipartUpload>${etags.map((e, i) => `<Part><PartNumber>${i + 1}</PartNumber><ETag>"${xmlEscape(e)}"</ETag></Part>`).join('')}</CompleteMultipartUpload>`);
    const res = await this.request('POST', key, { query: `uploadId=${encodeURIComponent(uploadId)}`, body, headers: { 'content-type': 'application/xml' }, signal, what: `finishing the upload of ${key}` });
    const xml = await res.text();
    // A 200 may still carry an error document (S3 docs, CompleteMultipartUpload).
    if (/<Error>/.test(xml)) throw s3Error(this.describe(), `finishing the upload of ${key}`, 200, xml);
    return unquoteEtag(one(xml, 'ETag'));
  }

  async abortMultipart(key: string, uploadId: string, signal?: AbortSignal): Promise<void> {
    await this.request('DELETE', key, { query: `uploadId=${encodeURIComponent(uploadId)}`, okStatus: [200, 204, 404], signal, what: `abandoning the upload of ${key}` });
  }

  /**
   * DeleteObjects (up to `deleteBatch`, 1,000, keys a request) with the Content-MD5 it requires.
   * Returns the keys the server refused, with its reason; a refusal of the whole request
   * (403) refuses every key. A server without DeleteObjects (501) gets single DELETEs.
   */
  async deleteMany(keys: string[], signal?: AbortSignal): Promise<{ deleted: string[]; refused: { key: string; message: string }[] }> {
    const deleted: string[] = [];
    const refused: { key: string; message: string }[] = [];
    for (let i = 0; i < keys.length; i += this.deleteBatch) {
      const batch = keys.slice(i, i + this.deleteBatch);
      const body = Buffer.from(`<?xml version="1.0" encoding="UTF-8"?><Delete><Quiet>false</Quiet>${batch.map((k) => `<Object><Key>${xmlEscape(k)}</Key></Object>`).join('')}</Delete>`);
      let xml: string;
      try {
        const res = await this.request('POST', '', { query: 'delete=', body, headers: { 'content-md5': md5(body).toString('base64'), 'content-type': 'application/xml' }, signal, what: `deleting ${batch.length} old object${batch.length === 1 ? '' : 's'}` });
        xml = await res.text();
      } catch (e) {
        if (e instanceof BackupError && e.code === 'REMOTE_DENIED') {
          for (const k of batch) refused.push({ key: k, message: e.message });
          continue;
        }
        if (e instanceof BackupError && /\(HTTP 501\)/.test(e.message)) {
          for (const k of batch) {
            try {
              await this.request('DELETE', k, { okStatus: [200, 204, 404], signal, what: `deleting ${k}` });
              deleted.push(k);
            } catch (e2) {
              if (e2 instanceof BackupError && e2.code === 'REMOTE_DENIED') refused.push({ key: k, message: e2.message });
              else throw e2;
            }
          }
          continue;
        }
        throw e;
      }
      for (const d of all(xml, 'Deleted')) deleted.push(one(d, 'Key') ?? '');
      for (const er of all(xml, 'Error')) refused.push({ key: one(er, 'Key') ?? '', message: `${one(er, 'Code') ?? 'Error'}: ${one(er, 'Message') ?? ''}`.trim() });
    }
    return { deleted, refused };
  }
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => {
      clearTimeout(t);
      resolve();
    }, { once: true });
  });
}

/** A key as an EncodingType=url listing gives it (AWS writes a space as "+"); left as it is when it does not decode. */
function urlDecodeKey(k: string): string {
  try {
    return decodeURIComponent(k.replace(/\+/g, ' '));
  } catch {
    return k;
  }
}

function incompleteList(where: string, why: string): BackupError {
  return new BackupError('REMOTE_ERROR', `The listing of ${where} is incomplete: the server ${why}; nothing was copied or deleted.`, {
    hint: 'Try again later (a copy is retried by itself); if it keeps failing, the provider\'s listing is at fault: report it to them.',
  });
}

function networkError(where: string, what: string, e: unknown): BackupError {
  const cause = e instanceof Error && e.cause instanceof Error ? e.cause : e;
  const code = cause && typeof cause === 'object' && 'code' in cause ? String((cause as { code: unknown }).code) : '';
  const detail = e instanceof IdleTimeout ? e.message : code || (cause instanceof Error ? cause.message : String(cause));
  return new BackupError('REMOTE_UNREACHABLE', `Could not reach ${where} while ${what} (${detail}).`, {
    hint: 'Check the network and the endpoint; the copy stays pending and is retried.',
    cause: e,
  });
}

/** Maps an S3 error document to what happened and what to do. Never includes the request's signature or credentials. */
export function s3Error(where: string, what: string, status: number, body: string, bucketRegion?: string): BackupError {
  // A HEAD has no body: its 301 is still AWS's PermanentRedirect (the bucket's region in x-amz-bucket-region).
  const code = one(body, 'Code') ?? (status === 404 ? 'NotFound' : status === 403 ? 'AccessDenied' : status === 301 ? 'PermanentRedirect' : `HTTP${status}`);
  const message = one(body, 'Message') ?? '';
  const said = `${code}${message ? `: ${message}` : ''} (HTTP ${status})`;
  const map: Record<string, [ErrorCode, string]> = {
    InvalidAccessKeyId: ['REMOTE_AUTH', 'The access key is not known to the server: check the access key id (and the endpoint: keys of one provider do not work at another).'],
    SignatureDoesNotMatch: ['REMOTE_AUTH', 'The secret key does not match the access key: enter the secret again.'],
    InvalidToken: ['REMOTE_AUTH', 'The session token is invalid: refresh your temporary credentials.'],
    ExpiredToken: ['REMOTE_AUTH', 'The session token has expired: refresh your temporary credentials.'],
    AuthorizationHeaderMalformed: ['REMOTE_AUTH', 'The server expects another region: set the region of the bucket.'],
    NoSuchBucket: ['REMOTE_NO_BUCKET', 'Create the bucket, or correct its name (and the endpoint and region).'],
    AccessDenied: ['REMOTE_DENIED', 'The credentials are not allowed to do this: grant them List, Get, Put and Delete on the bucket and prefix.'],
    AllAccessDisabled: ['REMOTE_DENIED', 'The bucket is disabled for these credentials.'],
    QuotaExceeded: ['REMOTE_QUOTA', 'The storage quota is used up: free space or raise the quota.'],
    EntityTooLarge: ['REMOTE_QUOTA', 'The provider refuses files this large.'],
    PermanentRedirect: ['REMOTE_ERROR', 'The bucket is in another region or needs another endpoint: set the region/endpoint of the bucket.'],
    // Both are 403 on AWS, where the fallback below told the user to grant permissions.
    RequestTimeTooSkewed: ['REMOTE_ERROR', 'This computer\'s clock is more than 15 minutes off the server\'s, and S3 refuses requests signed at another time: set the clock right (automatic date and time), then try again.'],
    InvalidObjectState: ['REMOTE_ERROR', 'The object is in an archive storage class (Glacier, Deep Archive): restore it at the provider first (e.g. "Initiate restore" in the S3 console), then try again.'],
  };
  const [ec, general] = map[code] ?? (status === 403 ? ['REMOTE_DENIED', map.AccessDenied[1]] : status === 507 ? ['REMOTE_QUOTA', map.QuotaExceeded[1]] : ['REMOTE_ERROR', 'Show the log for the details; the copy stays pending and is retried.']);
  // Where the bucket is, when the server says (AWS: the x-amz-bucket-region header, or <Region> in AuthorizationHeaderMalformed).
  const region = (code === 'PermanentRedirect' || code === 'AuthorizationHeaderMalformed' || code === 'IllegalLocationConstraintException') ? (bucketRegion ?? one(body, 'Region'))?.trim() : undefined;
  const hint = region && /^[a-z0-9-]{1,40}$/.test(region) ? `The bucket is in the region ${region}: set that region for this target (and its endpoint, if you gave one), then try again.` : general;
  return new BackupError(ec, `${where} refused ${what}: ${said}.`, { hint });
}
