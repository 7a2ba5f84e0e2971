/**
 * Ed25519 as ai-memory 1.0 uses it (ed25519-dalek 2): raw 32-byte seeds and public keys,
 * 64-byte signatures, and `verify_strict` semantics for verification.
 *
 * Node's built-in `crypto` does the signing and the signature equation (OpenSSL). It takes
 * keys only as DER, so the raw 32 bytes are wrapped in the fixed PKCS#8 / SPKI prefixes of
 * RFC 8410 §7 / §4. No library: `crypto` is the maintained implementation, and the three
 * checks below are what it lacks.
 *
 * OpenSSL's verify is RFC 8032's cofactorless check; dalek's `verify_strict` additionally
 * refuses (ed25519-dalek 2.x `VerifyingKey::verify_strict`):
 *  - a non-canonical S (S >= L) — OpenSSL refuses it too, checked here anyway so the
 *    answer never depends on the OpenSSL build;
 *  - a small-order public key A ("weak key"): any signature verifies under some of them;
 *  - a small-order R.
 * A non-canonical R encoding fails both (the recomputed R is compared byte-wise). The
 * small-order test of the key is exact: decode the point the way curve25519-dalek does
 * (y taken mod p, a sign bit on x = 0 accepted) and check that [8]P is the identity, with
 * BigInt arithmetic (a millisecond, once per key); R is compared with the seven encodings
 * of such points.
 */
import { createHash, createPrivateKey, createPublicKey, sign as nodeSign, verify as nodeVerify, type KeyObject } from 'node:crypto';

/** RFC 8410: PKCS#8 PrivateKeyInfo for Ed25519, up to the 32-byte seed. */
const PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');
/** RFC 8410: SubjectPublicKeyInfo for Ed25519, up to the 32-byte key. */
const SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

export const SEED_BYTES = 32;
export const PUBLIC_KEY_BYTES = 32;
export const SIGNATURE_BYTES = 64;

const P = (1n << 255n) - 19n;
/** The order of the prime-order subgroup. */
const L = (1n << 252n) + 27742317777372353535851937790883648493n;

function mod(a: bigint): bigint {
  const r = a % P;
  return r < 0n ? r + P : r;
}

function pow(base: bigint, exp: bigint): bigint {
  let r = 1n;
  let b = mod(base);
  let e = exp;
  while (e > 0n) {
    if (e & 1n) r = (r * b) % P;
    b = (b * b) % P;
    e >>= 1n;
  }
  return r;
}

function inv(a: bigint): bigint {
  return pow(a, P - 2n);
}

const D = mod(-121665n * inv(121666n));
const SQRT_M1 = pow(2n, (P - 1n) / 4n);

function littleEndian(bytes: Uint8Array): bigint {
  let n = 0n;
  for (let i = bytes.length - 1; i >= 0; i--) n = (n << 8n) | BigInt(bytes[i]);
  return n;
}

/**
 * Decodes a compressed Edwards point as curve25519-dalek's `CompressedEdwardsY::decompress`
 * does: undefined when y gives no point on the curve.
 */
function decodePoint(bytes: Uint8Array): { x: bigint; y: bigint } | undefined {
  if (bytes.length !== 32) return undefined;
  const copy = Uint8Array.from(bytes);
  const sign = copy[31] >> 7;
  copy[31] &= 0x7f;
  const y = mod(littleEndian(copy)); // dalek reduces a y >= p instead of refusing it
  const y2 = (y * y) % P;
  const u = mod(y2 - 1n);
  const v = mod(D * y2 + 1n);
  // RFC 8032 §5.1.3 step 2: x = u v^3 (u v^7)^((p-5)/8), then fix up by sqrt(-1).
  const v3 = (v * v * v) % P;
  let x = (u * v3 % P) * pow(u * v3 % P * v3 % P * v % P, (P - 5n) / 8n) % P;
  const vx2 = (v * x % P) * x % P;
  if (vx2 === u) {
    // x is a root
  } else if (vx2 === mod(-u)) {
    x = (x * SQRT_M1) % P;
  } else {
    return undefined;
  }
  if ((x & 1n) !== BigInt(sign)) x = mod(-x); // negating 0 gives 0: dalek accepts that
  return { x, y };
}

/**
 * Projective doubling on -x² + y² = 1 + d x² y² ("dbl-2008-bbjlp", a = -1): no inversions,
 * so [8]P costs a few dozen multiplications.
 */
function double(p: { X: bigint; Y: bigint; Z: bigint }): { X: bigint; Y: bigint; Z: bigint } {
  const B = (p.X + p.Y) ** 2n % P;
  const C = (p.X * p.X) % P;
  const Dd = (p.Y * p.Y) % P;
  const E = mod(-C);
  const F = (E + Dd) % P;
  const H = (p.Z * p.Z) % P;
  const J = mod(F - 2n * H);
  return { X: mod((B - C - Dd) * J), Y: mod(F * (E - Dd)), Z: (F * J) % P };
}

const smallOrderCache = new Map<string, boolean>();

/** The point has order dividing 8 (one of the eight torsion points): [8]P is the identity. */
export function isSmallOrderPoint(bytes: Uint8Array): boolean {
  const hex = Buffer.from(bytes).toString('hex');
  const known = smallOrderCache.get(hex);
  if (known !== undefined) return known;
  const p = decodePoint(bytes);
  let small = false;
  if (p) {
    let q = { X: p.x, Y: p.y, Z: 1n };
    for (let i = 0; i < 3; i++) q = double(q);
    small = q.X === 0n && q.Y === q.Z;
  }
  if (smallOrderCache.size > 64) smallOrderCache.clear(); // keys repeat (one operator key); Rs do not
  smallOrderCache.set(hex, small);
  return small;
}

/**
 * The y-coordinates (sign bit cleared, little-endian) of every encoding of a point of order
 * dividing 8: y = 0, 1, p-1, the two order-8 values, and the non-canonical p (= 0) and
 * p+1 (= 1); other y + p do not fit in 255 bits. The same list as libsodium's
 * `has_small_order`; the unit test proves each entry with isSmallOrderPoint. Used for R,
 * which needs no decoding: an R that is not a point can never equal the recomputed one.
 */
const SMALL_ORDER_Y = [
  '0000000000000000000000000000000000000000000000000000000000000000',
  '0100000000000000000000000000000000000000000000000000000000000000',
  '26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05',
  'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a',
  'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  'edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  'eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
].map((h) => Buffer.from(h, 'hex'));

export function hasSmallOrderEncoding(bytes: Uint8Array): boolean {
  if (bytes.length !== 32) return false;
  const y = Buffer.from(bytes);
  y[31] &= 0x7f;
  return SMALL_ORDER_Y.some((b) => b.equals(y));
}

export const SMALL_ORDER_ENCODINGS: readonly Buffer[] = SMALL_ORDER_Y;

const curvePointCache = new Map<string, boolean>();

/** The 32 bytes decode to a curve point (what `VerifyingKey::from_bytes` requires). */
export function isCurvePoint(bytes: Uint8Array): boolean {
  const hex = Buffer.from(bytes).toString('hex');
  let ok = curvePointCache.get(hex);
  if (ok === undefined) {
    ok = decodePoint(bytes) !== undefined;
    if (curvePointCache.size > 64) curvePointCache.clear();
    curvePointCache.set(hex, ok);
  }
  return ok;
}

const keyObjects = new Map<string, KeyObject>();

export function publicKeyObject(raw: Uint8Array): KeyObject {
  const hex = Buffer.from(raw).toString('hex');
  let k = keyObjects.get(hex);
  if (!k) {
    k = createPublicKey({ key: Buffer.concat([SPKI_PREFIX, raw]), format: 'der', type: 'spki' });
    if (keyObjects.size > 16) keyObjects.clear();
    keyObjects.set(hex, k);
  }
  return k;
}

export function privateKeyObject(seed: Uint8Array): KeyObject {
  if (seed.length !== SEED_BYTES) throw new Error(`an Ed25519 seed is ${SEED_BYTES} bytes, got ${seed.length}`);
  return createPrivateKey({ key: Buffer.concat([PKCS8_PREFIX, seed]), format: 'der', type: 'pkcs8' });
}

/** The raw 32-byte public key of a seed. */
export function publicKeyFromSeed(seed: Uint8Array): Buffer {
  const der = createPublicKey(privateKeyObject(seed)).export({ format: 'der', type: 'spki' });
  return Buffer.from(der.subarray(SPKI_PREFIX.length));
}

/** A 64-byte Ed25519 signature (RFC 8032, deterministic: the same for dalek's `sign`). */
export function signEd25519(seed: Uint8Array, message: Uint8Array): Buffer {
  return nodeSign(null, message, privateKeyObject(seed));
}

/** ed25519-dalek's `verify_strict` (see the top of this file). */
export function verifyStrict(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  if (publicKey.length !== PUBLIC_KEY_BYTES || signature.length !== SIGNATURE_BYTES) return false;
  const r = signature.subarray(0, 32);
  const s = littleEndian(signature.subarray(32));
  if (s >= L) return false;
  if (hasSmallOrderEncoding(r)) return false;
  if (!isCurvePoint(publicKey) || isSmallOrderPoint(publicKey)) return false; // both cached per key
  try {
    return nodeVerify(null, message, publicKeyObject(publicKey), signature);
  } catch {
    return false;
  }
}

/** ai-memory's diagnostic key fingerprint: `sha256:` + the first 16 hex digits of sha256(key). */
export function keyFingerprint(publicKey: Uint8Array): string {
  return `sha256:${createHash('sha256').update(publicKey).digest('hex').slice(0, 16)}`;
}
