/**
 * The operator's Ed25519 keys, found where ai-memory 1.0 finds them (read from its source:
 * `governance::rules_store::resolve_operator_pubkey`, `cli::rules::
 * load_operator_signing_key_from_dir`, `identity::keypair::default_key_dir`).
 *
 * Public key (what restore verifies against; never taken from a manifest):
 *   1. `$AI_MEMORY_OPERATOR_PUBKEY`, trimmed, base64 URL-safe without padding, else standard
 *      with padding; 32 bytes that decode to a curve point. A value that does not decode is
 *      ignored and the file is tried next — exactly as ai-memory does (we say so in a note).
 *   2. `<config dir>/ai-memory/operator.key.pub`: the same base64 text (what `ai-memory rules
 *      keygen` writes), not raw bytes.
 *   Config dir = Rust's `dirs::config_dir()`: `$XDG_CONFIG_HOME` (absolute) or `~/.config`
 *   on Linux, `~/Library/Application Support` on macOS, `%APPDATA%` on Windows.
 *
 * Signing key (what backup signs with), the first of ai-memory's three layouts present, in
 * its key dir `$AI_MEMORY_KEY_DIR`, else `<config dir>/ai-memory/keys`:
 *   1. `<key dir>/operator.priv` + `operator.pub` (32 raw bytes each, matching);
 *   2. `<key dir>/operator.key` (32-byte raw seed), its `operator.key.pub` (base64url) if any
 *      must match;
 *   3. the same two files in the key dir's parent, `<config dir>/ai-memory/` — where
 *      `ai-memory rules keygen` puts them.
 * A private key file that group or others can read or write is refused with the `chmod` to
 * run (ai-memory insists on exactly 0600; we also accept 0400, which is stricter).
 */
import { exists } from '../common/fsFacts';
import { statSync } from 'node:fs';
import { homedir } from 'node:os';
import * as nodePath from 'node:path';
import { BackupError, errnoCode } from '../common/errors';
import { NotRegularFileError, openRegular, readSmallRegular, readSmallRegularBytes } from '../common/regularFile';
import { decodeBase64Standard, decodeBase64UrlNoPad, rustTrim } from '../common/base64';
import { isCurvePoint, keyFingerprint, publicKeyFromSeed, PUBLIC_KEY_BYTES, SEED_BYTES } from '../common/ed25519';

export const PUBKEY_ENV = 'AI_MEMORY_OPERATOR_PUBKEY';
export const KEY_DIR_ENV = 'AI_MEMORY_KEY_DIR';

export interface KeyContext {
  env: Readonly<Record<string, string | undefined>>;
  home: string;
  platform: NodeJS.Platform;
}

export function processKeyContext(): KeyContext {
  return { env: process.env, home: homedir(), platform: process.platform };
}

export interface OperatorPublicKey {
  key: Buffer;
  /** `sha256:<16 hex>` */
  fingerprint: string;
  /** Where it came from, in words: `$AI_MEMORY_OPERATOR_PUBKEY` or the file's path. */
  source: string;
}

export interface OperatorSigningKey {
  seed: Buffer;
  publicKey: Buffer;
  fingerprint: string;
  path: string;
}

function api(platform: NodeJS.Platform): nodePath.PlatformPath {
  return platform === 'win32' ? nodePath.win32 : nodePath.posix;
}

/** Rust's `dirs::config_dir()`; undefined where it has none. */
export function configDir(ctx: KeyContext): string | undefined {
  const p = api(ctx.platform);
  if (ctx.platform === 'win32') return ctx.env.APPDATA || undefined;
  if (ctx.platform === 'darwin') return p.join(ctx.home, 'Library', 'Application Support');
  const xdg = ctx.env.XDG_CONFIG_HOME;
  if (xdg && p.isAbsolute(xdg)) return xdg;
  return ctx.home ? p.join(ctx.home, '.config') : undefined;
}

/** `<config dir>/ai-memory/operator.key.pub` — where ai-memory reads the public key from. */
export function operatorPublicKeyPath(ctx: KeyContext): string | undefined {
  const base = configDir(ctx);
  return base ? api(ctx.platform).join(base, 'ai-memory', 'operator.key.pub') : undefined;
}

/** ai-memory's key directory: `$AI_MEMORY_KEY_DIR`, else `<config dir>/ai-memory/keys`. */
export function keyDir(ctx: KeyContext): string | undefined {
  const override = ctx.env[KEY_DIR_ENV];
  if (override) return override;
  const base = configDir(ctx);
  return base ? api(ctx.platform).join(base, 'ai-memory', 'keys') : undefined;
}

/** `try_decode` of resolve_operator_pubkey: trim, URL-safe-no-pad else standard, 32 bytes, a curve point. */
export function decodeOperatorPublicKey(text: string): Buffer | undefined {
  const t = rustTrim(text);
  const bytes = decodeBase64UrlNoPad(t) ?? decodeBase64Standard(t);
  if (!bytes || bytes.length !== PUBLIC_KEY_BYTES || !isCurvePoint(bytes)) return undefined;
  return bytes;
}

export interface PublicKeyResolution {
  key: OperatorPublicKey | undefined;
  /** Things a user would want to know (a key that was set but ignored). */
  notes: string[];
}

/** Resolves the operator public key as ai-memory 1.0 does (see the top of this file). */
export async function resolveOperatorPublicKey(ctx: KeyContext = processKeyContext()): Promise<PublicKeyResolution> {
  const notes: string[] = [];
  const fromEnv = ctx.env[PUBKEY_ENV];
  if (fromEnv) {
    const key = decodeOperatorPublicKey(fromEnv);
    if (key) return { key: { key, fingerprint: keyFingerprint(key), source: `$${PUBKEY_ENV}` }, notes };
    notes.push(`$${PUBKEY_ENV} is set but is not a base64 Ed25519 public key (32 bytes); ignored, as ai-memory ignores it`);
  }
  const path = operatorPublicKeyPath(ctx);
  if (!path) return { key: undefined, notes };
  let raw: Buffer;
  try {
    raw = await readSmallRegularBytes(path); // a FIFO or a device here must not hang every command
  } catch (e) {
    if (errnoCode(e) !== 'ENOENT') notes.push(`cannot read ${path}: ${e instanceof Error ? e.message : String(e)}`);
    return { key: undefined, notes };
  }
  // read_to_string: a file that is not UTF-8 is no key.
  const text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
  let decoded: string | undefined;
  try {
    decoded = text.decode(raw);
  } catch {
    decoded = undefined;
  }
  const key = decoded === undefined ? undefined : decodeOperatorPublicKey(decoded);
  if (!key) {
    notes.push(`${path} is not a base64 Ed25519 public key (32 bytes); ignored, as ai-memory ignores it`);
    return { key: undefined, notes };
  }
  return { key: { key, fingerprint: keyFingerprint(key), source: path }, notes };
}

/**
 * Reads a 32-byte raw private key file, refusing one that group or others can read or
 * write (the check is Unix-only, as ai-memory's is).
 */
export async function readPrivateKeyFile(path: string, platform: NodeJS.Platform = process.platform): Promise<Buffer> {
  // One open, then everything from that descriptor (regularFile.ts): a name checked and then
  // read could be swapped in between for a FIFO (the read would hang) or another file.
  let opened;
  try {
    opened = await openRegular(path);
  } catch (e) {
    if (e instanceof NotRegularFileError) throw new BackupError('SIGNING_KEY', `The signing key ${path} is not a file.`);
    if (endsWithKeyMaterial(path)) {
      // The key itself was given where its file's path belongs (pasted into --sign-key or the
      // setting): the message, the --json output and the extension's log must not repeat it.
      throw new BackupError('SIGNING_KEY', 'The signing key given is not a file, and what was given looks like a key itself (not shown here).', {
        hint: 'Pass the path of the operator.key file (32 raw bytes), never the key; if you pasted the key into a setting or a script, remove it from there.',
      });
    }
    throw new BackupError('SIGNING_KEY', `Cannot read the signing key ${path}: ${errnoCode(e) === 'ENOENT' ? 'no such file' : e instanceof Error ? e.message : String(e)}.`, {
      hint: 'Pass the operator.key file that `ai-memory rules keygen` wrote (32 raw bytes).',
    });
  }
  const { fh } = opened;
  try {
    const st = await fh.stat();
    if (platform !== 'win32' && (st.mode & 0o077) !== 0) {
      throw new BackupError('SIGNING_KEY', `The signing key ${path} can be read by others (mode ${(st.mode & 0o777).toString(8).padStart(3, '0')}); refusing to use it.`, {
        hint: `Run: chmod 600 ${shellQuote(path)}`,
      });
    }
    // One byte more than a key: a longer file is told apart without reading all of it.
    const buf = Buffer.alloc(SEED_BYTES + 1);
    let n = 0;
    for (;;) {
      const { bytesRead } = await fh.read(buf, n, buf.length - n, n);
      if (bytesRead === 0 || (n += bytesRead) === buf.length) break;
    }
    if (n !== SEED_BYTES) {
      const size = n > SEED_BYTES ? `${Math.max(st.size, n)} bytes` : `${n} bytes`;
      throw new BackupError('SIGNING_KEY', `The signing key ${path} is ${size}; an Ed25519 operator key is ${SEED_BYTES} raw bytes.`, {
        hint: 'Use the operator.key file that `ai-memory rules keygen` wrote.',
      });
    }
    return buf.subarray(0, SEED_BYTES);
  } finally {
    await fh.close().catch(() => undefined);
  }
}

/** PEM armour (`-----BEGIN PRIVATE KEY-----`, `-----END OPENSSH PRIVATE KEY-----`, …): a key file's text, not its name. */
const PEM_ARMOUR = /-----(?:BEGIN|END) [A-Z0-9 ]*-----|PRIVATE KEY/;

/**
 * The end of `path` is a key written out rather than a file name: a key file's text (PEM
 * armour anywhere: PKCS#8, OpenSSH, …), or 32 or 64 bytes as base64 (either alphabet, padded
 * or not) or as hex. Base64 must mix upper and lower case, hex letters and digits. Spaces,
 * line breaks and quotes are not part of a key, so they are left out before judging: a key
 * pasted with its trailing newline, wrapped into lines or grouped in pairs of hex digits was
 * repeated in full. It errs on the side of silence, except where the end crosses a `/` whose
 * folder exists (`…/Documents/Backups/operatorSigningKey`, a mistyped file name): random key
 * text names no folder, so that is a path, and the user is shown it.
 */
export function endsWithKeyMaterial(path: string, isFolder: (p: string) => boolean = folderExists): boolean {
  if (PEM_ARMOUR.test(path)) return true;
  const compact = path.replace(/[\s"'`]+/g, '');
  const cut = path.lastIndexOf('/');
  const isPath = (n: number) => compact === path && cut > path.length - n && cut > 0 && isFolder(path.slice(0, cut));
  return keyTails(compact).some((n) => !isPath(n));
}

/** The lengths of the key texts `text` may end with (see endsWithKeyMaterial). */
function keyTails(text: string): number[] {
  const found = [43, 44, 86, 88].filter((n) => {
    const tail = text.slice(-n);
    if (tail.length !== n || !/^[A-Za-z0-9+/_-]+={0,2}$/.test(tail) || !/[a-z]/.test(tail) || !/[A-Z]/.test(tail)) return false;
    const bytes = Buffer.from(tail.replace(/[-_]/g, (c) => (c === '-' ? '+' : '/')), 'base64').length;
    return bytes === 32 || bytes === 64;
  });
  return found.concat([64, 128].filter((n) => {
    const tail = text.slice(-n);
    // The whole run, not the end of a longer one.
    return tail.length === n && /^[0-9a-fA-F]+$/.test(tail) && /[0-9]/.test(tail) && /[a-fA-F]/.test(tail) && !/[0-9a-fA-F]/.test(text.charAt(text.length - n - 1));
  }));
}

function folderExists(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

function shellQuote(p: string): string {
  return /^[\w@%+=:,./-]+$/.test(p) ? p : `'${p.replace(/'/g, `'\\''`)}'`;
}

function signingKey(seed: Buffer, path: string): OperatorSigningKey {
  const publicKey = publicKeyFromSeed(seed);
  return { seed, publicKey, fingerprint: keyFingerprint(publicKey), path };
}

/** Checks `<key>.pub` (base64url, as keygen writes it) against the seed when it exists. */
async function checkKeygenPub(key: OperatorSigningKey, pubPath: string): Promise<void> {
  let text: string;
  try {
    text = await readSmallRegular(pubPath);
  } catch (e) {
    if (errnoCode(e) === 'ENOENT') return;
    throw new BackupError('SIGNING_KEY', `Cannot read ${pubPath}: ${e instanceof Error ? e.message : String(e)}.`);
  }
  const pub = decodeBase64UrlNoPad(rustTrim(text));
  if (!pub || pub.length !== PUBLIC_KEY_BYTES) {
    throw new BackupError('SIGNING_KEY', `${pubPath} is not a base64url Ed25519 public key.`, { hint: 'Run `ai-memory rules keygen` again, or remove the damaged file.' });
  }
  if (!pub.equals(key.publicKey)) {
    throw new BackupError('SIGNING_KEY', `The private key ${key.path} does not match the public key ${pubPath}.`, { hint: 'One of the two files was replaced; restore the matching pair.' });
  }
}

/** The key given by `--sign-key PATH` (or the extension's setting). */
export async function loadSigningKeyFile(path: string, platform: NodeJS.Platform = process.platform): Promise<OperatorSigningKey> {
  const key = signingKey(await readPrivateKeyFile(path, platform), path);
  await checkKeygenPub(key, `${path}.pub`);
  return key;
}

export interface SigningKeySearch {
  key: OperatorSigningKey | undefined;
  /** A key was found but is unusable (loose mode, wrong size, mismatched pair): why. */
  problem?: BackupError;
  /** The folders looked in (for the message when there is none). */
  searched: string[];
}

/** ai-memory's three layouts, in its order (see the top of this file). Never throws. */
export async function findOperatorSigningKey(ctx: KeyContext = processKeyContext()): Promise<SigningKeySearch> {
  const dir = keyDir(ctx);
  if (!dir) return { key: undefined, searched: [] };
  const p = api(ctx.platform);
  const searched = [dir, p.dirname(dir)];
  try {
    const priv = p.join(dir, 'operator.priv');
    const pub = p.join(dir, 'operator.pub');
    if ((await exists(priv)) && (await exists(pub))) {
      const key = signingKey(await readPrivateKeyFile(priv, ctx.platform), priv);
      const raw = await readSmallRegularBytes(pub);
      if (!raw.equals(key.publicKey)) {
        throw new BackupError('SIGNING_KEY', `The private key ${priv} does not match the public key ${pub}.`, { hint: 'One of the two files was replaced; restore the matching pair.' });
      }
      return { key, searched };
    }
    for (const folder of searched) {
      const file = p.join(folder, 'operator.key');
      if (await exists(file)) {
        const key = signingKey(await readPrivateKeyFile(file, ctx.platform), file);
        await checkKeygenPub(key, `${file}.pub`);
        return { key, searched };
      }
    }
    return { key: undefined, searched };
  } catch (e) {
    const problem = e instanceof BackupError ? e : new BackupError('SIGNING_KEY', e instanceof Error ? e.message : String(e));
    return { key: undefined, problem, searched };
  }
}
