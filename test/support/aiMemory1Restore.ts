/**
 * Test oracle: the checks ai-memory 1.0's `restore` makes before it publishes a snapshot,
 * re-implemented from its source (src/cli/backup.rs `run_restore_with`,
 * `select_latest_signed`, and src/cli/backup/manifest.rs `verify` / `sign_into`), and
 * written independently of our engine: Ed25519 from `@noble/ed25519` (not Node's crypto),
 * base64 by regular expression, JSON by JSON.parse/JSON.stringify, SQLite checks with
 * native SQLite (better-sqlite3). Nothing here imports `src/`.
 *
 * What it leaves out (they do not depend on the snapshot or its manifest): the store-URL
 * guard, the exclusive lock on the live database, the publish itself, asi-hard posture.
 */
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import * as ed from '@noble/ed25519';
import { openNative } from './sqlite';

export const V1_DOMAIN = 'ai-memory/backup-manifest/v1';

/** ai-memory 1.0.x's migration ladder head when this oracle was written is far above ours; tests pass what they need. */
export interface OracleOptions {
  /** The operator public key (`resolve_operator_pubkey`), or undefined when none resolves. */
  anchor?: Uint8Array;
  allowUnsignedManifest?: boolean;
  /** `current_schema_version()` of the ai-memory binary doing the restore. */
  binarySchema: number;
}

export interface OracleVerdict {
  verification: 'signed' | 'unsigned_allowed';
  sha256: string;
}

class Refused extends Error {}

function b64Standard(s: string, what: string): Uint8Array {
  // base64 crate STANDARD: canonical padding, no whitespace, zero trailing bits.
  if (s.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(s) || Buffer.from(s, 'base64').toString('base64') !== s) {
    throw new Refused(`the manifest's ${what} is not base64 — refusing it (#3199)`);
  }
  return new Uint8Array(Buffer.from(s, 'base64'));
}

function isString(v: unknown): v is string {
  return typeof v === 'string';
}

/** serde's derive(Deserialize) of BackupManifest. */
function parseBackupManifest(text: string): Record<string, unknown> {
  let o: unknown;
  try {
    o = JSON.parse(text);
  } catch {
    throw new Refused('the manifest is not valid manifest JSON');
  }
  if (!o || typeof o !== 'object' || Array.isArray(o)) throw new Refused('the manifest is not valid manifest JSON');
  const m = o as Record<string, unknown>;
  for (const k of ['snapshot', 'sha256', 'source_db', 'version', 'created_at']) if (!isString(m[k])) throw new Refused(`the manifest is not valid manifest JSON (${k})`);
  if (!Number.isInteger(m.bytes) || (m.bytes as number) < 0) throw new Refused('the manifest is not valid manifest JSON (bytes)');
  for (const k of ['backend', 'signed_payload', 'signature', 'signer']) if (m[k] !== undefined && m[k] !== null && !isString(m[k])) throw new Refused(`the manifest is not valid manifest JSON (${k})`);
  for (const k of ['schema_version', 'memory_count', 'manifest_version']) if (m[k] !== undefined && m[k] !== null && !Number.isInteger(m[k])) throw new Refused(`the manifest is not valid manifest JSON (${k})`);
  return m;
}

/**
 * `verify_strict`: no small-order A or R, S canonical, and the COFACTORLESS equation — R is
 * compared byte for byte with [S]B - [k]A, as dalek's recompute_R does. noble's verify
 * multiplies by the cofactor first, which accepts 8 times as many signatures under a
 * mixed-order key, so only its points are used here.
 */
function verifyStrict(sig: Uint8Array, msg: Uint8Array, pub: Uint8Array): boolean {
  try {
    const L = (1n << 252n) + 27742317777372353535851937790883648493n;
    const le = (b: Uint8Array) => b.reduceRight((n, x) => (n << 8n) | BigInt(x), 0n);
    const A = ed.Point.fromBytes(pub, true);
    const R = ed.Point.fromBytes(sig.subarray(0, 32), true);
    if (A.isSmallOrder() || R.isSmallOrder()) return false;
    const S = le(sig.subarray(32));
    if (S >= L) return false;
    const k = le(createHash('sha512').update(sig.subarray(0, 32)).update(pub).update(msg).digest()) % L;
    const expected = (S === 0n ? ed.Point.ZERO : ed.Point.BASE.multiply(S)).subtract(k === 0n ? ed.Point.ZERO : A.multiply(k));
    return Buffer.from(expected.toBytes()).equals(Buffer.from(sig.subarray(0, 32)));
  } catch {
    return false;
  }
}

type Payload = Record<string, unknown>;

/** `manifest::verify`. Returns the verified payload, 'unsigned' / 'no_operator_pubkey', or throws (refused). */
export function verifyManifestText(text: string, anchor: Uint8Array | undefined): { payload: Payload } | { unverified: 'unsigned' | 'no_operator_pubkey'; manifest: Record<string, unknown> } {
  const m = parseBackupManifest(text);
  const p = m.signed_payload ?? undefined;
  const s = m.signature ?? undefined;
  if (p === undefined && s === undefined) return { unverified: 'unsigned', manifest: m };
  if (p === undefined || s === undefined) throw new Refused('the manifest carries half a signature — refusing it (#3199)');
  if (!anchor) return { unverified: 'no_operator_pubkey', manifest: m };
  const bytes = b64Standard(p as string, 'signed_payload');
  const sig = b64Standard(s as string, 'signature');
  if (sig.length !== 64) throw new Refused("the manifest's signature is not an Ed25519 signature — refusing it (#3199)");
  if (!verifyStrict(sig, bytes, anchor)) throw new Refused("the manifest's signature does NOT verify under the operator public key — refusing it (#3199)");
  let payload: Payload;
  try {
    payload = JSON.parse(Buffer.from(bytes).toString('utf8')) as Payload;
  } catch {
    throw new Refused("the manifest's signed payload is not a backup manifest — refusing it (#3199)");
  }
  const strings = ['dst', 'snapshot', 'sha256', 'source_db', 'version', 'created_at', 'backend'];
  const ints = ['v', 'bytes', 'schema_version', 'memory_count'];
  if (!payload || typeof payload !== 'object' || strings.some((k) => !isString(payload[k])) || ints.some((k) => !Number.isInteger(payload[k])) || (payload.bytes as number) < 0) {
    throw new Refused("the manifest's signed payload is not a backup manifest — refusing it (#3199)");
  }
  if (payload.dst !== V1_DOMAIN || payload.v !== 1) throw new Refused(`the manifest's signed payload is \`${String(payload.dst)}\` v${String(payload.v)} — refusing it (#3199)`);
  return { payload };
}

/**
 * Everything `run_restore_with` checks about the snapshot and its manifest, in its order.
 * Throws an Error with 1.0's reason when it would refuse.
 */
export function aiMemory1RestoreChecks(snapshotPath: string, opts: OracleOptions): OracleVerdict {
  const name = path.basename(snapshotPath);
  const stem = name.replace(/\.[^.]*$/, '');
  const manifestPath = path.join(path.dirname(snapshotPath), `${stem}.manifest.json`);
  if (!fs.existsSync(snapshotPath)) throw new Refused(`snapshot ${snapshotPath} does not exist`);
  if (!fs.existsSync(manifestPath)) throw new Refused(`manifest ${manifestPath} not found — refusing an unverified restore`);
  const v = verifyManifestText(fs.readFileSync(manifestPath, 'utf8'), opts.anchor);
  let facts: { sha256: string; backend?: string; schema_version?: number };
  let verification: OracleVerdict['verification'];
  if ('payload' in v) {
    if (v.payload.snapshot !== name) throw new Refused(`the signed manifest is for snapshot \`${String(v.payload.snapshot)}\`, not \`${name}\` — a signed backup cannot be renamed into another one`);
    facts = { sha256: v.payload.sha256 as string, backend: v.payload.backend as string, schema_version: v.payload.schema_version as number };
    verification = 'signed';
  } else {
    if (!opts.allowUnsignedManifest) throw new Refused(`manifest ${manifestPath} is not verified: ${v.unverified}. Refusing to restore it. Pass --allow-unsigned-manifest`);
    const m = v.manifest;
    facts = { sha256: m.sha256 as string, backend: (m.backend ?? undefined) as string | undefined, schema_version: (m.schema_version ?? undefined) as number | undefined };
    verification = 'unsigned_allowed';
  }
  if (facts.backend !== undefined && facts.backend !== 'sqlite') throw new Refused(`snapshot declares backend \`${facts.backend}\` — refusing a cross-backend restore`);
  if (facts.schema_version !== undefined && facts.schema_version > opts.binarySchema) throw new Refused(`snapshot is on schema v${facts.schema_version} but this binary understands v${opts.binarySchema}`);
  const observed = createHash('sha256').update(fs.readFileSync(snapshotPath)).digest('hex');
  if (observed !== facts.sha256) throw new Refused(`sha256 mismatch — manifest says ${facts.sha256}, snapshot is ${observed}`);
  // Structural: a readable SQLite database with a memories table, a schema stamp it can
  // operate (> 0, not ahead of the binary), and a whole-database integrity check.
  const db = openNative(snapshotPath, { readonly: true });
  try {
    db.prepare('SELECT COUNT(*) AS n FROM memories').get();
    const stamp = (db.prepare('SELECT max(version) AS v FROM schema_version').get() as { v: number | null }).v ?? 0;
    if (stamp <= 0) throw new Refused('snapshot has no operable schema version');
    if (stamp > opts.binarySchema) throw new Refused(`snapshot schema ${stamp} is ahead of the binary's ${opts.binarySchema}`);
    const ic = db.prepare('PRAGMA integrity_check').all() as { integrity_check: string }[];
    if (ic.length !== 1 || ic[0].integrity_check !== 'ok') throw new Refused(`the staged restore fails integrity_check: ${ic.map((r) => r.integrity_check).join('; ')}`);
  } finally {
    db.close();
  }
  return { verification, sha256: observed };
}

/** `select_latest_signed`: the snapshot --latest picks (newest SIGNED created_at among verified). */
export function aiMemory1SelectLatest(dir: string, anchor: Uint8Array | undefined): string {
  const names = fs
    .readdirSync(dir, { withFileTypes: true })
    .filter((e) => e.isFile() && e.name.startsWith('ai-memory-') && /\.db$/i.test(e.name))
    .map((e) => e.name)
    .sort()
    .reverse();
  if (!names.length) throw new Refused(`no snapshots found in ${dir}`);
  let best: { at: number; name: string } | undefined;
  for (const name of names) {
    const mp = path.join(dir, `${name.replace(/\.[^.]*$/, '')}.manifest.json`);
    if (!fs.existsSync(mp)) continue;
    const v = verifyManifestText(fs.readFileSync(mp, 'utf8'), anchor); // throws: refuses to choose
    if (!('payload' in v)) continue;
    if (v.payload.snapshot !== name) throw new Refused(`${name}'s signed manifest names \`${String(v.payload.snapshot)}\` — a signed backup was renamed`);
    const at = Date.parse(v.payload.created_at as string);
    if (!Number.isFinite(at)) throw new Refused(`${name}'s signed created_at is not RFC 3339`);
    if (!best || at > best.at || (at === best.at && name > best.name)) best = { at, name };
  }
  if (!best) throw new Refused(`restore --latest: no backup in ${dir} has a manifest that verifies under the operator public key`);
  return path.join(dir, best.name);
}

/**
 * `sign_into` as 1.0 does it: serde_json::to_vec of the SignedPayload (here JSON.stringify
 * of an object built in declaration order — no spaces, the same escapes for well-formed
 * strings), signed with the seed, the four fields set.
 */
export function aiMemory1Sign(manifest: Record<string, unknown>, seed: Uint8Array, payloadOverrides: Record<string, unknown> = {}): Record<string, unknown> {
  const payload = {
    dst: V1_DOMAIN,
    v: 1,
    snapshot: manifest.snapshot,
    sha256: manifest.sha256,
    bytes: manifest.bytes,
    source_db: manifest.source_db,
    version: manifest.version,
    created_at: manifest.created_at,
    backend: manifest.backend ?? 'sqlite',
    schema_version: manifest.schema_version,
    memory_count: manifest.memory_count,
    ...payloadOverrides,
  };
  const bytes = new Uint8Array(Buffer.from(JSON.stringify(payload), 'utf8'));
  const sig = ed.sign(bytes, seed);
  const pub = ed.getPublicKey(seed);
  return {
    ...manifest,
    manifest_version: 2,
    signed_payload: Buffer.from(bytes).toString('base64'),
    signature: Buffer.from(sig).toString('base64'),
    signer: `sha256:${createHash('sha256').update(pub).digest('hex').slice(0, 16)}`,
  };
}

/** noble's sync API needs a SHA-512 (Node's, outside our engine). */
ed.hashes.sha512 = (m: Uint8Array) => new Uint8Array(createHash('sha512').update(m).digest());

export function noblePublicKey(seed: Uint8Array): Uint8Array {
  return ed.getPublicKey(seed);
}

export function nobleSign(msg: Uint8Array, seed: Uint8Array): Uint8Array {
  return ed.sign(msg, seed);
}

export function nobleVerify(sig: Uint8Array, msg: Uint8Array, pub: Uint8Array): boolean {
  return ed.verify(sig, msg, pub, { zip215: false });
}
