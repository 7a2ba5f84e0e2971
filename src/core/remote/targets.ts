/**
 * From what the user wrote (`s3://bucket/prefix` or a folder path) and where credentials
 * come from (the AWS chain in the CLI, SecretStorage in the extension, which hands them to
 * the CLI in its environment) to a RemoteTarget.
 */
import { BackupError } from '../common/errors';
import { loadAwsSettings } from './awsConfig';
import { MirrorTarget } from './mirrorTarget';
import { S3Target } from './s3Target';
import type { RemoteTarget } from './target';
import { parseRemote } from './remoteSpec';

export { parseRemote, remoteId } from './remoteSpec';

export interface S3Flags {
  endpoint?: string;
  region?: string;
  pathStyle?: boolean;
  profile?: string;
}

export async function targetFromCli(text: string, flags: S3Flags, env: NodeJS.ProcessEnv, home: string, cwd: string): Promise<RemoteTarget> {
  const spec = parseRemote(text, cwd);
  if (spec.kind === 'folder') return new MirrorTarget(spec.dir);
  const aws = await loadAwsSettings(env, home, flags.profile);
  if (!aws.credentials) {
    throw new BackupError('NO_CREDENTIALS', `No credentials for ${text}.`, {
      hint: 'Set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or a profile in ~/.aws/credentials (AWS_PROFILE or --profile).',
    });
  }
  const endpoint = flags.endpoint ?? aws.endpoint;
  if (endpoint) {
    let u: URL;
    try {
      u = new URL(endpoint);
    } catch {
      throw new BackupError('USAGE', 'The endpoint is not a URL (e.g. https://<account>.r2.cloudflarestorage.com).');
    }
    if (u.protocol !== 'https:' && u.protocol !== 'http:') throw new BackupError('USAGE', `The endpoint must be http(s)://…; got ${u.protocol}.`);
    // Never echoed: a URL with user:password@ would put a credential in messages and logs.
    if (u.username || u.password) throw new BackupError('USAGE', 'The endpoint URL holds a user name or password; give only scheme, host and port.', { hint: 'Credentials go in AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or ~/.aws/credentials.' });
  }
  // us-east-1 when nothing says otherwise: AWS's default, MinIO's default, and R2 takes it as "auto".
  const region = flags.region ?? aws.region ?? 'us-east-1';
  // Buckets with dots cannot be virtual-hosted over TLS (the certificate covers one label).
  const pathStyle = flags.pathStyle ?? aws.pathStyle ?? (spec.bucket.includes('.') || (endpoint !== undefined && /^http:/.test(endpoint)));
  return new S3Target({ endpoint, region, bucket: spec.bucket, prefix: spec.prefix, pathStyle }, aws.credentials);
}
