/**
 * Strict base64, as Rust's `base64` crate decodes it (its `STANDARD` and `URL_SAFE_NO_PAD`
 * engines): only the flavour's alphabet, padding exactly as the engine requires, no
 * whitespace, and zero trailing bits. Node's `Buffer.from(s, 'base64')` accepts all of that
 * and more (it skips junk), so a manifest ai-memory refuses would pass it. Decoding and
 * encoding again must give back the input: that one comparison enforces the canonical form.
 */

/** `general_purpose::STANDARD`: `+/`, canonical `=` padding required. */
export function decodeBase64Standard(s: string): Buffer | undefined {
  if (s.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(s)) return undefined;
  const b = Buffer.from(s, 'base64');
  return b.toString('base64') === s ? b : undefined;
}

/** `general_purpose::URL_SAFE_NO_PAD`: `-_`, no padding at all. */
export function decodeBase64UrlNoPad(s: string): Buffer | undefined {
  if (s.length % 4 === 1 || !/^[A-Za-z0-9_-]*$/.test(s)) return undefined;
  const b = Buffer.from(s, 'base64url');
  return b.toString('base64url') === s ? b : undefined;
}

export function encodeBase64Standard(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.length).toString('base64');
}

export function encodeBase64UrlNoPad(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.length).toString('base64url');
}

/** Rust's `str::trim`: Unicode White_Space (unlike JS `trim`, U+FEFF is not trimmed). */
export function rustTrim(s: string): string {
  return s.replace(/^[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+|[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+$/g, '');
}
