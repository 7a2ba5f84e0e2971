/**
 * Raw deflate and inflate of the archive's blobs into buffers we own, through one zlib
 * stream reused for every blob.
 *
 * Node's one-call zlib (`deflateRawSync`, `inflateRawSync`) sets up a new zlib stream for
 * every call and returns its output in a new Buffer: per 64 KiB blob, a 64 KiB Buffer (and,
 * deflating, ~270 KiB of zlib state). A rebuild of a 500 MB snapshot inflates ~8,000 blobs,
 * `verify --all` of a folder ~50,000: GBs of Buffers that V8 frees only when it next
 * collects, and that, freed among longer-lived memory, left the process's heap ever larger
 * (`verify --all` of 9 snapshots at 500 MB climbed ~12 MB of RSS a snapshot, to 186 MB,
 * while what it held stayed ~30 MB).
 *
 * Node has no public way to hand zlib an output buffer, but its zlib streams' handle takes
 * one: `_handle.writeSync(flush, in, inOff, inLen, out, outOff, outLen)` is the call Node's
 * own one-call functions make, and it leaves (avail out, avail in) in `_writeState`; the
 * stream's `reset()` (public) readies it for the next blob. We use that only after a
 * self-test of the very stream against the one-call functions (once per process): should
 * a Node or Electron ever change it, the self-test fails and we fall back to the one-call
 * functions, copying their output (with a scavenge every few MB for the dead Buffers,
 * common/gc.ts), as before.
 */
import { constants as zc, createDeflateRaw, createInflateRaw, deflateRawSync, inflateRawSync, type DeflateRaw, type InflateRaw } from 'node:zlib';
import { collectYoung } from '../common/gc';

/** zlib's raw deflate settings for blobs: level 1 compresses ai-memory's pages nearly as well as 6, several times faster. */
export const DEFLATE_OPTIONS = { level: 1, strategy: zc.Z_DEFAULT_STRATEGY };

/** The fallback's dead output: a scavenge after this many bytes of it. */
const GARBAGE_PER_SCAVENGE = 8 << 20;

interface ZlibHandle {
  writeSync(flush: number, input: Uint8Array, inOff: number, inLen: number, out: Uint8Array, outOff: number, outLen: number): void;
}

type ZStream = (InflateRaw | DeflateRaw) & { _handle?: ZlibHandle | null; _writeState?: Uint32Array };

/**
 * One zlib stream (its handle), for one call after another. `run` feeds it all of `input`
 * with Z_FINISH and returns the bytes written to `out`, or -1 when zlib reported an error
 * (the stream is then closed: a new one serves the next call).
 */
class ReusedStream {
  private stream: ZStream | undefined;

  constructor(private readonly make: () => ZStream) {}

  run(input: Uint8Array, out: Uint8Array): number {
    const s = (this.stream ??= this.open());
    s.reset();
    // The handle after the reset: a stream a failed reset destroyed has none, and writing
    // through a closed handle would abort the process.
    const handle = s._handle;
    if (s.destroyed || !handle) {
      this.stream = undefined;
      return -1;
    }
    handle.writeSync(zc.Z_FINISH, input, 0, input.length, out, 0, out.length);
    // An error (bad data) calls the handle's onerror before writeSync returns, which
    // destroys the stream; its 'error' event, a tick later, meets our listener.
    if (s.destroyed || !s._handle) {
      this.stream = undefined;
      return -1;
    }
    return out.length - (s._writeState as Uint32Array)[0];
  }

  private open(): ZStream {
    const s = this.make();
    s.on('error', () => undefined);
    return s;
  }

  close(): void {
    this.stream?.close();
    this.stream = undefined;
  }
}

const openInflate = (): ZStream => createInflateRaw() as ZStream;
const openDeflate = (): ZStream => createDeflateRaw(DEFLATE_OPTIONS) as ZStream;

let handleWorks: boolean | undefined;

/** `n` bytes of `z` are a raw deflate stream of `raw`, about as long as zlib's one call made it (`expected`). */
function deflatesBack(n: number, z: Buffer, raw: Buffer, expected: number): boolean {
  if (n <= 0 || n >= z.length || Math.abs(n - expected) > 64) return false;
  try {
    return inflateRawSync(z.subarray(0, n)).equals(raw);
  } catch {
    return false;
  }
}

/**
 * Whether reused streams work as the one-call functions do (tested once per process):
 * inflating gives exactly their bytes; deflating gives a stream they inflate back to the
 * input. Not their very bytes: zlib's deflate may read a few bytes of its window past the
 * input while it looks for matches (its result checks them), so what a previous blob, or
 * an allocation, left there can pick another, equally valid match near the end
 * (zlib-ng/zlib-ng#2100, trifectatechfoundation/zlib-rs#459).
 */
function reuseWorks(): boolean {
  if (handleWorks !== undefined) return handleWorks;
  let ok = false;
  const inflate = new ReusedStream(openInflate);
  const deflate = new ReusedStream(openDeflate);
  try {
    const s = openInflate();
    const usable = typeof s._handle?.writeSync === 'function' && s._writeState instanceof Uint32Array && s._writeState.length >= 2;
    s.close();
    if (usable) {
      const sample = Buffer.alloc(3000);
      for (let i = 0; i < sample.length; i++) sample[i] = (i * 7) % 251 < 40 ? i & 0xff : 0;
      const z = deflateRawSync(sample, DEFLATE_OPTIONS);
      const out = Buffer.alloc(sample.length + 1);
      const zOut = Buffer.alloc(z.length + 128);
      ok = true;
      for (let round = 0; round < 2 && ok; round++) {
        ok =
          inflate.run(z, out) === sample.length &&
          out.subarray(0, sample.length).equals(sample) &&
          deflatesBack(deflate.run(sample, zOut), zOut, sample, z.length) &&
          // Too little room must show as a full output, not as a shorter result.
          inflate.run(z, out.subarray(0, 100)) === 100 &&
          // Damaged input must show as an error.
          inflate.run(z.subarray(0, z.length >> 1), out) === -1;
      }
    }
  } catch {
    ok = false;
  } finally {
    inflate.close();
    deflate.close();
  }
  handleWorks = ok;
  return ok;
}

/** Inflates raw-deflate blobs into the caller's buffers. Close it when done (it holds a zlib stream). */
export class BlobInflater {
  private readonly reused = reuseWorks() ? new ReusedStream(openInflate) : undefined;
  private garbage = 0;

  /**
   * Inflates all of `src` into `out`; returns the bytes it inflated to, or -1 when `src`
   * is not a whole raw-deflate stream. A result of `out.length` means it may be longer:
   * give `out` a byte more than expected to tell.
   */
  inflate(src: Uint8Array, out: Buffer): number {
    if (this.reused) return this.reused.run(src, out);
    let raw: Buffer;
    try {
      // zlib takes no chunk under 64 bytes (RangeError, which would read as "longer").
      raw = inflateRawSync(src, { chunkSize: Math.max(64, out.length), maxOutputLength: out.length });
    } catch (e) {
      if (e instanceof RangeError) return out.length; // longer than `out`
      return -1;
    }
    raw.copy(out);
    this.dead(raw.length);
    return raw.length;
  }

  private dead(bytes: number): void {
    this.garbage += bytes;
    if (this.garbage >= GARBAGE_PER_SCAVENGE) {
      this.garbage = 0;
      collectYoung(); // zlib's Buffers, each dead as soon as copied
    }
  }

  close(): void {
    this.reused?.close();
  }
}

/** Deflates blobs into the caller's buffer. Close it when done (it holds a zlib stream). */
export class BlobDeflater {
  private readonly reused = reuseWorks() ? new ReusedStream(openDeflate) : undefined;
  private garbage = 0;

  /** Deflates `src` into `out`; returns the deflated length, or -1 when it is not shorter than `out`. */
  deflate(src: Uint8Array, out: Buffer): number {
    if (this.reused) {
      const n = this.reused.run(src, out);
      if (n < 0) throw new Error('zlib failed to deflate a blob');
      // Room left means zlib finished (with Z_FINISH it stops early only when out is full).
      return n < out.length ? n : -1;
    }
    const z = deflateRawSync(src, { ...DEFLATE_OPTIONS, chunkSize: src.length + 1024 });
    this.garbage += z.length;
    if (this.garbage >= GARBAGE_PER_SCAVENGE) {
      this.garbage = 0;
      collectYoung();
    }
    if (z.length >= out.length) return -1;
    z.copy(out);
    return z.length;
  }

  close(): void {
    this.reused?.close();
  }
}

/** For tests: whether this process reuses zlib streams (false: the one-call fallback). */
export function reusesZlibStreams(): boolean {
  return reuseWorks();
}
