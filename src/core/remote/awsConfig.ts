/**
 * Credentials and settings for the CLI from the standard AWS chain, in the AWS CLI's order
 * (docs.aws.amazon.com/cli/latest/userguide/cli-configure-files.html and
 * …/sdkref/latest/guide/settings-reference.html):
 *  1. environment: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN;
 *  2. the profile (AWS_PROFILE, else `default`) in ~/.aws/credentials
 *     (AWS_SHARED_CREDENTIALS_FILE), then in ~/.aws/config (AWS_CONFIG_FILE) as
 *     `[profile NAME]` (`[default]` for the default one).
 * Region: AWS_REGION, AWS_DEFAULT_REGION, the profile's `region`. Endpoint:
 * AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, the profile's `endpoint_url` (also inside its
 * `s3 =` sub-section), whose `addressing_style = path` chooses path-style.
 *
 * Our own INI reader: the `ini` package splits section names on dots (`[profile my.dev]`
 * becomes nested objects) and its current major needs Node 22; the AWS files are plain
 * `key = value` lines in `[section]`s with indented sub-settings under a `key =` line, which
 * takes twenty lines to read.
 */
import { join } from 'node:path';
import { devNull } from 'node:os';
import { BackupError } from '../common/errors';
import { readSmallRegular } from '../common/regularFile';
import type { S3Credentials } from './s3Client';

type Section = Record<string, string>;

/** Sections of an AWS config/credentials file; an indented `sub = v` under `s3 =` becomes `s3.sub`. */
export function parseAwsIni(text: string): Map<string, Section> {
  const out = new Map<string, Section>();
  let cur: Section | undefined;
  let parent: string | undefined;
  for (const raw of text.split(/\r?\n/)) {
    if (/^\s*([#;].*)?$/.test(raw)) continue;
    const sec = /^\s*\[\s*([^\]]+?)\s*\]\s*$/.exec(raw);
    if (sec) {
      cur = out.get(sec[1]) ?? {};
      out.set(sec[1], cur);
      parent = undefined;
      continue;
    }
    const kv = /^(\s*)([^=\s][^=]*?)\s*=\s*(.*?)\s*$/.exec(raw);
    if (!kv || !cur) continue;
    const indented = kv[1].length > 0;
    const key = kv[2].toLowerCase();
    if (indented && parent) cur[`${parent}.${key}`] = kv[3];
    else {
      cur[key] = kv[3];
      parent = kv[3] === '' ? key : undefined;
    }
  }
  return out;
}

export interface AwsSettings {
  credentials?: S3Credentials;
  /** Where the credentials came from, for messages ("environment", "profile dev in ~/.aws/credentials"); never the values. */
  credentialSource?: string;
  region?: string;
  endpoint?: string;
  pathStyle?: boolean;
}

async function readIni(path: string): Promise<Map<string, Section>> {
  // The null device is "no file" (the extension points AWS_CONFIG_FILE there so that only the
  // credentials it holds are used); any other device or FIFO is refused, never waited on.
  if (path === devNull) return new Map();
  try {
    return parseAwsIni(await readSmallRegular(path, 16 << 20)); // regular files only: a FIFO must not hang the command
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return new Map();
    throw new BackupError('IO', `Cannot read ${path}: ${e instanceof Error ? e.message : String(e)}`);
  }
}

export async function loadAwsSettings(env: NodeJS.ProcessEnv, home: string, profileFlag?: string): Promise<AwsSettings> {
  const profile = profileFlag ?? env.AWS_PROFILE ?? 'default';
  const credFile = env.AWS_SHARED_CREDENTIALS_FILE ?? join(home, '.aws', 'credentials');
  const confFile = env.AWS_CONFIG_FILE ?? join(home, '.aws', 'config');
  const [creds, conf] = await Promise.all([readIni(credFile), readIni(confFile)]);
  const fromCreds = creds.get(profile);
  const fromConf = conf.get(profile === 'default' ? 'default' : `profile ${profile}`) ?? (profile === 'default' ? undefined : conf.get(profile));
  if (profileFlag ?? env.AWS_PROFILE) {
    if (!fromCreds && !fromConf) {
      throw new BackupError('NO_CREDENTIALS', `AWS profile "${profile}" is in neither ${credFile} nor ${confFile}.`, { hint: 'Check the profile name (AWS_PROFILE or --profile).' });
    }
  }
  const s: AwsSettings = {};
  // Environment keys win over any profile — unless a profile was asked for by flag.
  if (!profileFlag && env.AWS_ACCESS_KEY_ID && env.AWS_SECRET_ACCESS_KEY) {
    s.credentials = { accessKeyId: env.AWS_ACCESS_KEY_ID, secretAccessKey: env.AWS_SECRET_ACCESS_KEY, sessionToken: env.AWS_SESSION_TOKEN || undefined };
    s.credentialSource = 'environment (AWS_ACCESS_KEY_ID)';
  } else {
    for (const [sec, file] of [[fromCreds, credFile], [fromConf, confFile]] as const) {
      if (sec?.aws_access_key_id && sec.aws_secret_access_key) {
        s.credentials = { accessKeyId: sec.aws_access_key_id, secretAccessKey: sec.aws_secret_access_key, sessionToken: sec.aws_session_token || undefined };
        s.credentialSource = `profile ${profile} in ${file}`;
        break;
      }
    }
  }
  s.region = env.AWS_REGION || env.AWS_DEFAULT_REGION || fromConf?.region || fromCreds?.region || undefined;
  s.endpoint = env.AWS_ENDPOINT_URL_S3 || env.AWS_ENDPOINT_URL || fromConf?.['s3.endpoint_url'] || fromConf?.endpoint_url || undefined;
  const style = fromConf?.['s3.addressing_style'];
  if (style === 'path') s.pathStyle = true;
  else if (style === 'virtual') s.pathStyle = false;
  return s;
}
