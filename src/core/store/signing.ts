/**
 * ai-memory 1.0's operator-signed manifests (its `cli/backup/manifest.rs`, issue #3199), in
 * both directions: we sign what we write so 1.0's `restore` accepts it, and we verify what
 * 1.0 (or we) signed before trusting a byte of it.
 *
 * What is signed: the exact bytes of serde_json's compact encoding of
 *   {"dst":"ai-memory/backup-manifest/v1","v":1,"snapshot":…,"sha256":…,"bytes":…,
 *    "source_db":…,"version":…,"created_at":…,"backend":…,"schema_version":…,"memory_count":…}
 * (that field order, no spaces, strings UTF-8 as is). The manifest carries those bytes in
 * base64 (`signed_payload`), so a verifier never re-encodes anything; `signature` is the
 * Ed25519 signature of them, `signer` a fingerprint for messages, `manifest_version` 2.
 *
 * The verdict, in the order 1.0's `manifest::verify` decides it:
 *   no signed_payload and no signature → 'unsigned';
 *   one without the other              → 'refused' (half a signature);
 *   no operator public key here        → 'signed-no-key' (nothing to check it against);
 *   either is not strict base64, the signature is not 64 bytes, it does not verify
 *   (verify_strict), the payload is not a backup payload as serde_json reads one
 *   (serdePayload.ts: duplicate fields, `1.0` for an integer, a BOM, … are refused), or its
 *   dst/v are not the above            → 'refused';
 *   its sha256 is not lowercase hex    → 'refused' (1.0 compares it as is: no file matches);
 *   otherwise                          → 'verified', and every decision is taken from the
 *                                        payload, never from the plain fields.
 * A refusal has no override flag (1.0 has none either).
 */
import { BackupError } from '../common/errors';
import { decodeBase64Standard, encodeBase64Standard } from '../common/base64';
import { keyFingerprint, SIGNATURE_BYTES, signEd25519, verifyStrict } from '../common/ed25519';
import type { Manifest } from './manifest';
import type { OperatorPublicKey, OperatorSigningKey } from './operatorKey';
import { PayloadReadError, readSignedPayload } from './serdePayload';

export const MANIFEST_DOMAIN = 'ai-memory/backup-manifest/v1';
export const PAYLOAD_VERSION = 1;
export const MANIFEST_VERSION_SIGNED = 2;
export const BACKEND_SQLITE = 'sqlite';

/** 1.0's `SignedPayload`, in its declaration (= encoding) order. */
export interface SignedPayload {
  dst: string;
  v: number;
  snapshot: string;
  sha256: string;
  bytes: number;
  source_db: string;
  version: string;
  created_at: string;
  backend: string;
  schema_version: number;
  memory_count: number;
}

export type SignatureVerdict =
  | { state: 'verified'; payload: SignedPayload; fingerprint: string; keySource: string }
  | { state: 'signed-no-key'; claimedSigner?: string }
  | { state: 'unsigned' }
  | { state: 'refused'; reason: string };

/**
 * A JSON string exactly as serde_json writes it. JSON.stringify (ES2019, "well-formed
 * JSON.stringify") escapes the same characters the same way: `"` and `\` with a backslash,
 * U+0008/09/0A/0C/0D as \b \t \n \f \r, every other U+0000–U+001F as \u00XX with lowercase
 * hex, and nothing else (not `/`, not DEL, not U+2028/2029, not non-ASCII). Its one
 * difference — a lone surrogate becomes \udXXX — cannot arise: serde strings are UTF-8, so
 * lone surrogates are first replaced by U+FFFD, which is also what Rust's
 * `to_string_lossy` and Node's path encoding make of them. Pinned by the golden-bytes test.
 */
export function serdeJsonString(s: string): string {
  return JSON.stringify(s.replace(LONE_SURROGATE, '\ufffd'));
}

const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

function serdeJsonInteger(n: number, what: string, unsigned: boolean): string {
  if (!Number.isSafeInteger(n) || (unsigned && n < 0)) throw new Error(`${what} must be a${unsigned ? ' non-negative' : 'n'} integer, got ${n}`);
  return String(n);
}

/** serde_json::to_vec(&SignedPayload): compact, declaration order. */
export function encodeSignedPayload(p: SignedPayload): Buffer {
  const s = serdeJsonString;
  const text =
    `{"dst":${s(p.dst)},"v":${serdeJsonInteger(p.v, 'v', false)},"snapshot":${s(p.snapshot)},"sha256":${s(p.sha256)},` +
    `"bytes":${serdeJsonInteger(p.bytes, 'bytes', true)},"source_db":${s(p.source_db)},"version":${s(p.version)},` +
    `"created_at":${s(p.created_at)},"backend":${s(p.backend)},"schema_version":${serdeJsonInteger(p.schema_version, 'schema_version', false)},` +
    `"memory_count":${serdeJsonInteger(p.memory_count, 'memory_count', false)}}`;
  return Buffer.from(text, 'utf8');
}

/** The payload of a manifest we are about to write; undefined when 1.0's required facts are unknown. */
export function payloadFor(m: Manifest): SignedPayload | undefined {
  if (m.schema_version === undefined || m.memory_count === undefined) return undefined;
  return {
    dst: MANIFEST_DOMAIN,
    v: PAYLOAD_VERSION,
    snapshot: m.snapshot,
    sha256: m.sha256,
    bytes: m.bytes,
    source_db: m.source_db,
    version: m.version,
    created_at: m.created_at,
    backend: m.backend ?? BACKEND_SQLITE,
    schema_version: m.schema_version,
    memory_count: m.memory_count,
  };
}

/** `sign_into`: the manifest with 1.0's four signature fields. */
export function signManifest(m: Manifest, payload: SignedPayload, key: OperatorSigningKey): Manifest {
  const bytes = encodeSignedPayload(payload);
  return {
    ...m,
    manifest_version: MANIFEST_VERSION_SIGNED,
    signed_payload: encodeBase64Standard(bytes),
    signature: encodeBase64Standard(signEd25519(key.seed, bytes)),
    signer: keyFingerprint(key.publicKey),
  };
}

/**
 * The payload as 1.0 reads it (serdePayload.ts: serde_json's rules, not JSON.parse's), or
 * why it is refused.
 */
function parsePayload(bytes: Buffer): SignedPayload | string {
  let r: Record<string, string | number>;
  try {
    r = readSignedPayload(bytes);
  } catch (e) {
    if (!(e instanceof PayloadReadError)) throw e;
    if (e.beyondUs) {
      return `its signed payload's ${e.message}: refused here, though ai-memory 1.0 reads it (restore this snapshot with ai-memory's own \`restore\`)`;
    }
    return `its signed payload is not one ai-memory 1.0 reads (${e.message}), so it is not a backup manifest`;
  }
  return r as unknown as SignedPayload;
}

/** The verdict on a parsed manifest (see the top of this file). */
export function judgeSignature(m: Manifest, anchor: OperatorPublicKey | undefined): SignatureVerdict {
  const payloadB64 = m.signed_payload;
  const signatureB64 = m.signature;
  if (payloadB64 === undefined && signatureB64 === undefined) return { state: 'unsigned' };
  if (payloadB64 === undefined || signatureB64 === undefined) {
    return { state: 'refused', reason: `the manifest carries half a signature (${payloadB64 === undefined ? 'a signature without signed_payload' : 'signed_payload without a signature'})` };
  }
  if (!anchor) return { state: 'signed-no-key', claimedSigner: m.signer };
  const bytes = decodeBase64Standard(payloadB64);
  if (!bytes) return { state: 'refused', reason: 'its signed_payload is not base64' };
  const sig = decodeBase64Standard(signatureB64);
  if (!sig) return { state: 'refused', reason: 'its signature is not base64' };
  if (sig.length !== SIGNATURE_BYTES) return { state: 'refused', reason: `its signature is ${sig.length} bytes, not an Ed25519 signature (${SIGNATURE_BYTES})` };
  if (!verifyStrict(anchor.key, bytes, sig)) {
    return {
      state: 'refused',
      reason: `its signature does NOT verify under the operator public key ${anchor.fingerprint} (from ${anchor.source}): the snapshot or its manifest was altered, or signed by another key${m.signer && m.signer !== anchor.fingerprint ? ` (it claims ${m.signer})` : ''}`,
    };
  }
  const payload = parsePayload(bytes);
  if (typeof payload === 'string') return { state: 'refused', reason: payload };
  if (payload.dst !== MANIFEST_DOMAIN || payload.v !== PAYLOAD_VERSION) {
    return { state: 'refused', reason: `its signed payload is "${payload.dst}" v${payload.v}, not "${MANIFEST_DOMAIN}" v${PAYLOAD_VERSION}` };
  }
  // 1.0's restore compares the signed sha256 as is with the snapshot's lowercase hex digest:
  // any other spelling (upper case, a prefix) refuses every file, so it is no verdict to act on.
  if (!/^[0-9a-f]{64}$/.test(payload.sha256)) {
    return { state: 'refused', reason: `its signed sha256 "${payload.sha256}" is not 64 lowercase hex digits, which ai-memory 1.0 compares as is with the snapshot's sha256 (so no file matches it)` };
  }
  return { state: 'verified', payload, fingerprint: anchor.fingerprint, keySource: anchor.source };
}

/**
 * The manifest as it may be trusted: for a verified one, the signed payload's values in
 * place of the plain fields (which are then only what anyone could have written).
 */
export function trustedManifest(m: Manifest, v: SignatureVerdict): Manifest {
  if (v.state !== 'verified') return m;
  const p = v.payload;
  return { ...m, snapshot: p.snapshot, sha256: p.sha256, bytes: p.bytes, source_db: p.source_db, version: p.version, created_at: p.created_at, backend: p.backend, schema_version: p.schema_version, memory_count: p.memory_count };
}

/** Plain fields that say something other than the signed payload (ignored, but worth a note). */
export function plainFieldsDiffering(m: Manifest, v: SignatureVerdict): string[] {
  if (v.state !== 'verified') return [];
  const p = v.payload;
  const out: string[] = [];
  for (const k of ['snapshot', 'sha256', 'bytes', 'source_db', 'version', 'created_at', 'backend', 'schema_version', 'memory_count'] as const) {
    const plain = m[k];
    if (plain !== undefined && String(plain).toLowerCase() !== String(p[k]).toLowerCase()) out.push(k);
  }
  return out;
}

/** One line for lists, tooltips and logs. */
export function describeVerdict(v: SignatureVerdict): string {
  switch (v.state) {
    case 'verified':
      return `signed by the operator key ${v.fingerprint} (verified)`;
    case 'signed-no-key':
      return `signed${v.claimedSigner ? ` (claims ${v.claimedSigner})` : ''}, but no operator public key is configured here to check it`;
    case 'unsigned':
      return 'not signed';
    default:
      return `signature refused: ${v.reason}`;
  }
}

/**
 * The manifest a caller may act on, and its verdict. A verified manifest must describe this
 * very file by its signed name (a renamed signed pair is refused); a refused one is an error.
 * Throws BackupError('SIGNATURE_REFUSED' | 'MANIFEST_FOREIGN').
 */
export function assessManifest(m: Manifest, snapshotFileName: string, where: string, anchor: OperatorPublicKey | undefined): { manifest: Manifest; verdict: SignatureVerdict } {
  const verdict = judgeSignature(m, anchor);
  if (verdict.state === 'refused') {
    throw new BackupError('SIGNATURE_REFUSED', `Manifest ${where}: ${verdict.reason}. Refusing it.`, {
      hint: 'No option accepts a signature that does not verify. Restore another snapshot; if you trust this file anyway, restore it with --skip-verify (nothing then vouches for it).',
    });
  }
  if (verdict.state === 'verified' && verdict.payload.snapshot !== snapshotFileName) {
    throw new BackupError('MANIFEST_FOREIGN', `The signed manifest ${where} is for snapshot "${verdict.payload.snapshot}", not ${snapshotFileName}: a signed backup cannot be renamed into another one. Refusing it.`, {
      hint: 'Give the snapshot and its manifest back their signed names, or restore another snapshot.',
    });
  }
  return { manifest: trustedManifest(m, verdict), verdict };
}
