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

/** An integer literal too large for a double, kept as written. */
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

/** JSON.parse, with integers beyond 2^53 kept exactly as {@link JsonInteger}. Throws as JSON.parse does. */
export function parseExact(raw: string): unknown {
  const plain: unknown = JSON.parse(raw);
  if (!hasUnsafeInteger(raw) || raw.includes(MARK)) return plain;
  TOKEN.lastIndex = 0;
  const marked = raw.replace(TOKEN, (t) => (t[0] !== '"' && !/[.eE]/.test(t) && !Number.isSafeInteger(Number(t)) ? `"${MARK}${t}"` : t));
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
  return text.replace(new RegExp(`"${esc}(-?\\d+)"`, 'g'), '$1');
}
