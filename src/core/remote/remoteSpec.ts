/**
 * What `--remote` (or the extension's setup) names: `s3://bucket/prefix` or a folder — and
 * the id its copy state is kept under. No I/O and no S3 code: the extension host imports it.
 */
import { resolve } from 'node:path';
import { BackupError } from '../common/errors';

export interface S3Spec {
  kind: 's3';
  bucket: string;
  prefix: string;
}

export interface FolderSpec {
  kind: 'folder';
  dir: string;
}

/** `s3://bucket/some/prefix` → bucket + `some/prefix/`; anything else is a folder. */
export function parseRemote(text: string, cwd: string): S3Spec | FolderSpec {
  // Never echoed: `s3://KEY:SECRET@bucket/…` (or any scheme://user:password@…) would put a
  // credential in the messages below, in --json output and in the extension's log.
  if (/^[a-z][a-z0-9+.-]*:\/\/[^/?#]*@/i.test(text.trim())) {
    throw new BackupError('USAGE', '--remote holds a user name or password; give only s3://bucket/prefix (or a folder).', {
      hint: 'Credentials go in AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or ~/.aws/credentials (in VS Code: the setup asks for them and keeps them in its secret storage).',
    });
  }
  const m = /^s3:\/\/([^/]+)\/?(.*)$/i.exec(text.trim());
  if (m) {
    const bucket = m[1];
    if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket) && !/^[A-Za-z0-9._-]{1,255}$/.test(bucket)) {
      throw new BackupError('USAGE', `"${bucket}" is not a bucket name.`);
    }
    let prefix = m[2].replace(/^\/+/, '');
    if (prefix && !prefix.endsWith('/')) prefix += '/';
    if (prefix.split('/').some((s, i, a) => (s === '' && i < a.length - 1) || s === '.' || s === '..')) throw new BackupError('USAGE', `"${m[2]}" is not a usable prefix (empty, "." or ".." segments).`);
    return { kind: 's3', bucket, prefix };
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(text) && !/^file:\/\//i.test(text)) {
    throw new BackupError('USAGE', `--remote takes s3://bucket/prefix or a folder; got "${text}".`);
  }
  return { kind: 'folder', dir: resolve(cwd, text.replace(/^file:\/\//i, '')) };
}

/** The id the target's state is kept under (S3Target.id / MirrorTarget.id), computed without credentials. */
export function remoteId(text: string, endpoint: string | undefined, cwd: string): string {
  const spec = parseRemote(text, cwd);
  return spec.kind === 'folder' ? `folder:${spec.dir}` : `s3:${endpoint ?? ''}/${spec.bucket}/${spec.prefix}`;
}

