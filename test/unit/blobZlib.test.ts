/**
 * The archive's blob zlib (store/blobZlib.ts): reused zlib streams inflate byte for byte as
 * Node's one-call functions do, and deflate to streams those inflate back, blob after blob, into the caller's buffers; damaged or
 * overlong input shows as such, and the stream serves the next blob after a failure.
 */
import * as assert from 'assert';
import { randomBytes } from 'crypto';
import { deflateRawSync, inflateRawSync } from 'zlib';
import { BlobDeflater, BlobInflater, DEFLATE_OPTIONS, reusesZlibStreams } from '../../src/core/store/blobZlib';

/** A 64 KiB blob that deflates like pages do: text-ish runs and some random bytes. */
function blob(seed: number, len = 64 << 10): Buffer {
  const b = Buffer.alloc(len);
  const text = Buffer.from(`memory ${seed}: the quick brown fox `.repeat(40));
  for (let o = 0; o < len; o += 4096) {
    text.copy(b, o, 0, Math.min(2000, len - o));
    randomBytes(Math.min(300, Math.max(0, len - o - 2000))).copy(b, o + 2000);
  }
  return b;
}

describe('blobZlib: blobs deflated and inflated into our buffers', () => {
  it('reuses one zlib stream on this Node (the self-test passes)', () => {
    assert.strictEqual(reusesZlibStreams(), true);
  });

  it('round-trips many blobs: the one-call inflate reads what it deflates, and its inflate gives the bytes back', () => {
    const d = new BlobDeflater();
    const inf = new BlobInflater();
    try {
      const z = Buffer.alloc(64 << 10);
      const out = Buffer.alloc((64 << 10) + 1);
      for (let i = 0; i < 50; i++) {
        const raw = blob(i, i % 7 === 0 ? 4096 * (1 + (i % 5)) : 64 << 10);
        const n = d.deflate(raw, z.subarray(0, raw.length));
        assert.ok(n > 0 && n < raw.length, `blob ${i} shrinks`);
        // Not necessarily the one call's very bytes (blobZlib.ts: zlib's window), but its stream, about as short.
        assert.deepStrictEqual(inflateRawSync(z.subarray(0, n)), raw);
        assert.ok(Math.abs(n - deflateRawSync(raw, DEFLATE_OPTIONS).length) <= 64, `blob ${i}: ${n} bytes, about what the one call makes`);
        assert.strictEqual(inf.inflate(z.subarray(0, n), out.subarray(0, raw.length + 1)), raw.length);
        assert.deepStrictEqual(out.subarray(0, raw.length), raw);
      }
    } finally {
      d.close();
      inf.close();
    }
  });

  it('a blob that does not shrink is -1 (stored as it is)', () => {
    const d = new BlobDeflater();
    try {
      const raw = randomBytes(64 << 10);
      assert.strictEqual(d.deflate(raw, Buffer.alloc(raw.length)), -1);
      // And the stream goes on with the next blob.
      const next = blob(1);
      const z = Buffer.alloc(next.length);
      const n = d.deflate(next, z);
      assert.deepStrictEqual(inflateRawSync(z.subarray(0, n)), next);
    } finally {
      d.close();
    }
  });

  it('damaged, truncated or overlong input shows, and the next blob still inflates', () => {
    const inf = new BlobInflater();
    try {
      const raw = blob(2);
      const z = deflateRawSync(raw, DEFLATE_OPTIONS);
      const out = Buffer.alloc(raw.length + 1);
      assert.strictEqual(inf.inflate(z.subarray(0, z.length >> 1), out), -1, 'truncated');
      const bad = Buffer.from(z);
      bad[0] = 0xff; // an invalid block type
      assert.strictEqual(inf.inflate(bad, out), -1, 'damaged');
      // More than the trailer says: fills the room given, so it shows as longer.
      assert.strictEqual(inf.inflate(z, out.subarray(0, 1000)), 1000, 'overlong');
      assert.strictEqual(inf.inflate(z, out), raw.length);
      assert.deepStrictEqual(out.subarray(0, raw.length), raw);
    } finally {
      inf.close();
    }
  });
});
