/**
 * The signed payload read the way ai-memory 1.0 reads it: `serde_json::from_slice::<SignedPayload>`
 * (a `#[derive(Deserialize)]` struct of 11 fields, no `deny_unknown_fields`), so a payload
 * that verifies is "verified" here exactly when 1.0's `manifest::verify` accepts it.
 *
 * JSON.parse is not that reader. It takes the last of duplicate keys (serde refuses "duplicate
 * field"), reads `1.0`, `1e0` and `-0` as integers (serde_json reads them as floats, which an
 * i64/u64 field refuses), accepts a lone surrogate escape in a string (serde refuses it), and
 * TextDecoder drops a leading BOM (serde does not skip one). A payload signed by the operator
 * key with any of those was "verified" here and refused by 1.0. It also refuses what serde's
 * derive accepts: the struct as a JSON array of the 11 values in field order.
 *
 * serde_json's rules followed (serde_json 1.x `de.rs` / `read.rs`, serde_derive):
 *  - whitespace is space, \t, \n, \r only; nothing but whitespace after the value;
 *  - the struct is an object (every field once, unknown keys skipped whatever their value)
 *    or an array of exactly the 11 values in declaration order;
 *  - an integer field takes an integer literal only (no fraction, no exponent, not `-0`)
 *    within its type (i64: −2^63…2^63−1; u64 `bytes`: 0…2^64−1);
 *  - strings: no raw control characters, only the JSON escapes; a string that is read (a
 *    field value, any key) must be UTF-8 with every \u surrogate paired; a skipped value's
 *    strings are only scanned (serde's `ignore_str` checks neither);
 *  - a skipped number is only scanned for the JSON grammar.
 *
 * Deliberately stricter than 1.0, saying so: an integer field beyond ±2^53 (JavaScript
 * cannot hold it exactly, and no database has that many bytes or memories) is refused with
 * its own reason; ai-memory's own `restore` reads such a manifest.
 */

export interface PayloadFieldSpec {
  name: string;
  kind: 'string' | 'i64' | 'u64';
  /** `Option<T>`: absent or `null` is None (serde's derive, no `#[serde(default)]` needed). */
  optional?: boolean;
}

/** SignedPayload's fields in declaration order (= the array form's order). */
export const SIGNED_PAYLOAD_FIELDS: readonly PayloadFieldSpec[] = [
  { name: 'dst', kind: 'string' },
  { name: 'v', kind: 'i64' },
  { name: 'snapshot', kind: 'string' },
  { name: 'sha256', kind: 'string' },
  { name: 'bytes', kind: 'u64' },
  { name: 'source_db', kind: 'string' },
  { name: 'version', kind: 'string' },
  { name: 'created_at', kind: 'string' },
  { name: 'backend', kind: 'string' },
  { name: 'schema_version', kind: 'i64' },
  { name: 'memory_count', kind: 'i64' },
];

/** Refused by serde (1.0 refuses too) or, `beyondUs`, by us alone. */
export class PayloadReadError extends Error {
  constructor(message: string, readonly beyondUs = false) {
    super(message);
  }
}

const I64_MIN = -(1n << 63n);
const I64_MAX = (1n << 63n) - 1n;
const U64_MAX = (1n << 64n) - 1n;
const SAFE = BigInt(Number.MAX_SAFE_INTEGER);
const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

class Reader {
  pos = 0;
  /** An integer field serde reads but a JS number cannot hold exactly (said once the rest reads). */
  beyondUs: string | undefined;
  constructor(private readonly b: Uint8Array) {}

  fail(what: string): never {
    throw new PayloadReadError(`${what} at byte ${this.pos}`);
  }

  ws(): void {
    while (this.pos < this.b.length) {
      const c = this.b[this.pos];
      if (c !== 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d) return;
      this.pos++;
    }
  }

  peek(): number | undefined {
    return this.b[this.pos];
  }

  expect(c: number, what: string): void {
    if (this.b[this.pos] !== c) this.fail(`expected ${what}`);
    this.pos++;
  }

  literal(word: string): void {
    for (let i = 0; i < word.length; i++) if (this.b[this.pos + i] !== word.charCodeAt(i)) this.fail('expected a JSON value');
    this.pos += word.length;
  }

  private hex4(): number {
    let n = 0;
    for (let i = 0; i < 4; i++) {
      const c = this.b[this.pos++];
      const d = c >= 0x30 && c <= 0x39 ? c - 0x30 : c >= 0x61 && c <= 0x66 ? c - 0x57 : c >= 0x41 && c <= 0x46 ? c - 0x37 : -1;
      if (d < 0) this.fail('an invalid \\u escape');
      n = n * 16 + d;
    }
    return n;
  }

  /** A string; `read` false: only scanned, as serde's ignore_str does. */
  string(read: boolean): string | undefined {
    this.expect(0x22, 'a string');
    const parts: Buffer[] = [];
    let start = this.pos;
    for (;;) {
      if (this.pos >= this.b.length) this.fail('an unterminated string');
      const c = this.b[this.pos];
      if (c === 0x22) {
        if (read) parts.push(Buffer.from(this.b.subarray(start, this.pos)));
        this.pos++;
        break;
      }
      if (c < 0x20) this.fail('a control character in a string');
      if (c !== 0x5c) {
        this.pos++;
        continue;
      }
      if (read) parts.push(Buffer.from(this.b.subarray(start, this.pos)));
      this.pos++;
      const e = this.b[this.pos++];
      const simple: Record<number, string> = { 0x22: '"', 0x5c: '\\', 0x2f: '/', 0x62: '\b', 0x66: '\f', 0x6e: '\n', 0x72: '\r', 0x74: '\t' };
      if (e in simple) {
        if (read) parts.push(Buffer.from(simple[e], 'utf8'));
      } else if (e === 0x75) {
        const u = this.hex4();
        if (read) {
          let cp = u;
          if (u >= 0xdc00 && u <= 0xdfff) this.fail('a lone surrogate escape');
          if (u >= 0xd800 && u <= 0xdbff) {
            if (this.b[this.pos] !== 0x5c || this.b[this.pos + 1] !== 0x75) this.fail('a lone surrogate escape');
            this.pos += 2;
            const lo = this.hex4();
            if (lo < 0xdc00 || lo > 0xdfff) this.fail('a lone surrogate escape');
            cp = 0x10000 + ((u - 0xd800) << 10) + (lo - 0xdc00);
          }
          parts.push(Buffer.from(String.fromCodePoint(cp), 'utf8'));
        }
      } else {
        this.pos--;
        this.fail('an invalid escape');
      }
      start = this.pos;
    }
    if (!read) return undefined;
    try {
      return UTF8.decode(Buffer.concat(parts));
    } catch {
      return this.fail('a string that is not UTF-8');
    }
  }

  /** A number's text by the JSON grammar; `integer` when it has no fraction and no exponent. */
  number(): { text: string; integer: boolean } {
    const start = this.pos;
    let integer = true;
    if (this.b[this.pos] === 0x2d) this.pos++;
    const digit = () => this.b[this.pos] >= 0x30 && this.b[this.pos] <= 0x39;
    if (this.b[this.pos] === 0x30) {
      this.pos++;
      if (digit()) this.fail('a number with a leading zero');
    } else if (digit()) {
      while (digit()) this.pos++;
    } else this.fail('an invalid number');
    if (this.b[this.pos] === 0x2e) {
      integer = false;
      this.pos++;
      if (!digit()) this.fail('an invalid number');
      while (digit()) this.pos++;
    }
    if (this.b[this.pos] === 0x65 || this.b[this.pos] === 0x45) {
      integer = false;
      this.pos++;
      if (this.b[this.pos] === 0x2b || this.b[this.pos] === 0x2d) this.pos++;
      if (!digit()) this.fail('an invalid number');
      while (digit()) this.pos++;
    }
    return { text: Buffer.from(this.b.subarray(start, this.pos)).toString('latin1'), integer };
  }

  /** serde_json's ignore_value: any JSON value, scanned (iteratively: no depth limit). */
  skipValue(): void {
    const stack: number[] = [];
    for (;;) {
      this.ws();
      const c = this.peek();
      if (c === 0x7b || c === 0x5b) {
        this.pos++;
        this.ws();
        const close = c === 0x7b ? 0x7d : 0x5d;
        if (this.peek() === close) {
          this.pos++;
        } else {
          stack.push(close);
          if (close === 0x7d) this.objectKey(false);
          continue;
        }
      } else if (c === 0x22) this.string(false);
      else if (c === 0x74) this.literal('true');
      else if (c === 0x66) this.literal('false');
      else if (c === 0x6e) this.literal('null');
      else if (c === 0x2d || (c !== undefined && c >= 0x30 && c <= 0x39)) this.number();
      else this.fail('expected a JSON value');
      // After a value: close or continue the enclosing containers.
      for (;;) {
        if (!stack.length) return;
        this.ws();
        const top = stack[stack.length - 1];
        if (this.peek() === 0x2c) {
          this.pos++;
          if (top === 0x7d) {
            this.ws();
            this.objectKey(false);
          }
          break;
        }
        this.expect(top, top === 0x7d ? '"," or "}"' : '"," or "]"');
        stack.pop();
      }
    }
  }

  /** A key and its colon: read (to match a field) at the top, only scanned inside a skipped value. */
  objectKey(read = true): string {
    this.ws();
    if (this.peek() !== 0x22) this.fail('expected a key');
    const k = this.string(read) ?? '';
    this.ws();
    this.expect(0x3a, '":"');
    return k;
  }

  field(spec: PayloadFieldSpec): string | number | null {
    this.ws();
    if (spec.optional && this.peek() === 0x6e) {
      this.literal('null');
      return null;
    }
    if (spec.kind === 'string') {
      if (this.peek() !== 0x22) this.fail(`"${spec.name}" is not a string`);
      return this.string(true) as string;
    }
    const c = this.peek();
    if (c !== 0x2d && !(c !== undefined && c >= 0x30 && c <= 0x39)) this.fail(`"${spec.name}" is not an integer`);
    const { text, integer } = this.number();
    // serde_json reads a fraction, an exponent and `-0` as a float, which an integer field refuses.
    if (!integer || text === '-0') this.fail(`"${spec.name}" is ${text}, a float, not an integer`);
    const n = BigInt(text);
    const [lo, hi] = spec.kind === 'u64' ? [0n, U64_MAX] : [I64_MIN, I64_MAX];
    if (n < lo || n > hi) this.fail(`"${spec.name}" is ${text}, outside ${spec.kind === 'u64' ? 'u64' : 'i64'}`);
    if ((n > SAFE || n < -SAFE) && !this.beyondUs) this.beyondUs = `"${spec.name}" is ${text}, beyond what this tool holds exactly (±2^53)`;
    return Number(n);
  }
}

/**
 * `serde_json::from_slice` into a `#[derive(Deserialize)]` struct of `fields` (see the top of
 * this file): the fields it has, by name (None and absent fields left out). `sequence`: the
 * struct may also be a JSON array of its fields in declaration order, as serde reads it (for
 * SignedPayload, whose order is pinned; a manifest's order is not known here, so an array
 * manifest stays refused). Throws PayloadReadError.
 */
export function readSerdeStruct(bytes: Uint8Array, fields: readonly PayloadFieldSpec[], opts: { sequence: boolean }): Record<string, string | number> {
  const r = new Reader(bytes);
  const out: Record<string, string | number | null> = {};
  r.ws();
  const open = r.peek();
  if (open === 0x7b) {
    r.pos++;
    r.ws();
    if (r.peek() === 0x7d) r.pos++;
    else {
      for (;;) {
        const key = r.objectKey();
        const spec = fields.find((f) => f.name === key);
        if (spec) {
          if (Object.prototype.hasOwnProperty.call(out, key)) r.fail(`duplicate field "${key}"`);
          out[key] = r.field(spec);
        } else r.skipValue();
        r.ws();
        if (r.peek() === 0x2c) {
          r.pos++;
          continue;
        }
        r.expect(0x7d, '"," or "}"');
        break;
      }
    }
    for (const f of fields) if (!f.optional && !Object.prototype.hasOwnProperty.call(out, f.name)) throw new PayloadReadError(`missing field "${f.name}"`);
  } else if (open === 0x5b && opts.sequence) {
    // serde's derive reads a struct from a sequence too: every field in declaration order
    // (an Option as well: only #[serde(default)] would let it be left out), nothing after.
    r.pos++;
    fields.forEach((f, i) => {
      r.ws();
      if (r.peek() === 0x5d) throw new PayloadReadError(`an array of ${i} values, not the ${fields.length} fields`);
      if (i > 0) {
        r.expect(0x2c, '","');
        r.ws();
      }
      out[f.name] = r.field(f);
    });
    r.ws();
    r.expect(0x5d, `"]" after the ${fields.length} fields`);
  } else {
    r.fail('expected a JSON object');
  }
  r.ws();
  if (r.pos !== bytes.length) r.fail('trailing characters');
  if (r.beyondUs) throw new PayloadReadError(r.beyondUs, true);
  const present: Record<string, string | number> = {};
  for (const [k, v] of Object.entries(out)) if (v !== null) present[k] = v;
  return present;
}

/** `serde_json::from_slice::<SignedPayload>` (see the top of this file). Throws PayloadReadError. */
export function readSignedPayload(bytes: Uint8Array): Record<string, string | number> {
  return readSerdeStruct(bytes, SIGNED_PAYLOAD_FIELDS, { sequence: true });
}
