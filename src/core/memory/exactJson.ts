/**
 * JSON read and written without losing integers. ai-memory's metadata is serde_json, which
 * keeps every integer up to 64 bits exactly (a nanosecond timestamp, a 64-bit id); JSON.parse
 * turns one past 2^53 into the nearest double (`12345678901234567891` → `…67000`), so an
 * extract wrote another number than the snapshot held, and two metadata texts differing in
 * such a number compared equal (no edit in `diff`, the same facts digest).
 *
 * An integer literal beyond Number.MAX_SAFE_INTEGER is kept as a {@link JsonInteger} (its
 * digits as written); every other value is what JSON.parse gives. Node 20 has neither
 * JSON.parse's source text nor JSON.rawJSON, hence the placeholders below. Not a library
 * such as lossless-json: its parser is JavaScript through and through, while this is
 * JSON.parse itself, with one extra scan only for a text holding a 16-digit run, and the
 * facts parse the metadata of every memory (92,000 in a 500 MB database) at each backup.
 */
import { randomBytes } from 'node:crypto';

/** An integer literal too large for a double (or, with `floats`, a float literal with an integral value), kept as written. */
export class JsonInteger {
  constructor(readonly digits: string) {}
  /** For a plain JSON.stringify (lossy, as before); {@link stringifyExact} writes the digits. */
  toJSON(): number {
    return Number(this.digits);
  }
}

// A string token, or a number token (outside strings); only used on text JSON.parse accepted.
const TOKEN = /"(?:[^"\\]|\\.)*"|-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/g;

/** True when `raw` (valid JSON) has an integer literal a double cannot hold. */
function hasUnsafeInteger(raw: string): boolean {
  if (!/\d{16}/.test(raw)) return false; // 2^53 has 16 digits: the common case costs one scan
  TOKEN.lastIndex = 0;
  for (let m = TOKEN.exec(raw); m; m = TOKEN.exec(raw)) {
    const t = m[0];
    if (t[0] !== '"' && !/[.eE]/.test(t) && !Number.isSafeInteger(Number(t))) return true;
  }
  return false;
}

/** A marker no text of this process contains by chance. */
const MARK = `\u2063aimb-int-${randomBytes(8).toString('hex')}:`;

/**
 * A float literal whose value is a whole number (`1.0`, `1e16`, `-0.0`): JSON.parse makes it
 * a JavaScript number that JSON.stringify writes as an integer (`1`, `10000000000000000`,
 * `0`), which serde_json then reads as an integer, not the float the text held.
 */
function isIntegralFloat(t: string): boolean {
  if (t[0] === '"' || !/[.eE]/.test(t)) return false;
  const n = Number(t);
  return Number.isInteger(n) || Object.is(n, -0);
}

/** True when `raw` (valid JSON) has a number token {@link isIntegralFloat} finds. */
function hasIntegralFloat(raw: string): boolean {
  if (!/\d[.eE]/.test(raw)) return false;
  TOKEN.lastIndex = 0;
  for (let m = TOKEN.exec(raw); m; m = TOKEN.exec(raw)) if (isIntegralFloat(m[0])) return true;
  return false;
}

/**
 * JSON.parse, with integers beyond 2^53 kept exactly as {@link JsonInteger}. Throws as JSON.parse does.
 * `floats`: float literals with a whole-number value kept as written too (extract: the import
 * must read the type the snapshot held). Not for comparisons or the digest, which see `1.0` and `1` as one value.
 */
export function parseExact(raw: string, opts: { floats?: boolean } = {}): unknown {
  const plain: unknown = JSON.parse(raw);
  if (!(hasUnsafeInteger(raw) || (opts.floats === true && hasIntegralFloat(raw))) || raw.includes(MARK)) return plain;
  const keep = (t: string): boolean => (t[0] !== '"' && !/[.eE]/.test(t) && !Number.isSafeInteger(Number(t))) || (opts.floats === true && isIntegralFloat(t));
  TOKEN.lastIndex = 0;
  const marked = raw.replace(TOKEN, (t) => (keep(t) ? `"${MARK}${t}"` : t));
  return JSON.parse(marked, (_k, v: unknown) => (typeof v === 'string' && v.startsWith(MARK) ? new JsonInteger(v.slice(MARK.length)) : v));
}

/** JSON.stringify that writes a {@link JsonInteger}'s digits as they were read. */
export function stringifyExact(v: unknown, space?: number): string {
  let found = false;
  const text = JSON.stringify(
    v,
    function (this: Record<string, unknown>, k: string, value: unknown) {
      const orig = this[k];
      if (orig instanceof JsonInteger) {
        found = true;
        return `${MARK}${orig.digits}`;
      }
      return value;
    },
    space,
  );
  if (!found) return text;
  const esc = MARK.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return text.replace(new RegExp(`"${esc}(-?\\d+(?:\\.\\d+)?(?:[eE][+-]?\\d+)?)"`, 'g'), '$1');
}
