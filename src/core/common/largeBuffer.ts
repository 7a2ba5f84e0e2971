/**
 * Transient buffers of 128 KiB to 32 MiB, allocated so that freeing them leaves glibc's
 * malloc as it was.
 *
 * glibc serves a request of its mmap threshold (128 KiB at start) or more with an mmap of its
 * own, and when such a chunk is freed it raises the threshold to the chunk's size, and its trim
 * threshold to twice that, up to 32 MiB (malloc(3): M_MMAP_THRESHOLD is dynamic unless set).
 * From then on every allocation below that size comes from malloc's heaps, and up to twice that
 * much freed memory stays in each of the process's arenas: the main one and one per thread
 * that allocates (V8's compiler and garbage collector, libuv's pool). Node frees ArrayBuffers
 * on V8's threads, so any buffer of ours can be that chunk. One 4 MiB hash buffer freed was
 * enough: `verify --all` of 500 MB snapshots went from 98 to 106 MB of RSS over the first eight
 * (114 MB at the end of 24); with the buffers below it stays at 94 MB, flat. glibc's own knobs
 * (MALLOC_MMAP_THRESHOLD_, MALLOC_ARENA_MAX) are environment variables read at process start,
 * out of reach of a process already running, and re-executing Node would add a second process.
 *
 * A chunk above 32 MiB leaves the thresholds as they are, and pages never written are never
 * resident: so a buffer of this range is a view of one allocation just above 32 MiB, of which
 * only the bytes used count. Only where the C library is glibc (Linux); elsewhere, and below
 * the range, a plain `Buffer.allocUnsafe`; in Electron too (VS Code's extension host), whose
 * ArrayBuffers come from its own allocator.
 */
import { closeSync, fstatSync, openSync, readFileSync, readSync } from 'node:fs';

/** glibc's default mmap threshold: smaller requests come from the heap and never move it. */
const GLIBC_MMAP_THRESHOLD = 128 << 10;
/** DEFAULT_MMAP_THRESHOLD_MAX on 64-bit: a freed chunk above it leaves the threshold alone. */
const GLIBC_DYNAMIC_MAX = 32 << 20;

let glibc: boolean | undefined;

/** glibc's C library as /proc/self/maps names it: libc.so.6 (2.34 on), libc-2.NN.so before. */
export const GLIBC_MAPPED = /\/libc(?:\.so\.6|-\d+\.\d+\.so)$/m;

function isGlibc(): boolean {
  if (glibc === undefined) {
    try {
      // The mapped C library: glibc's is libc.so.6, or libc-2.31.so and the like before glibc
      // 2.34 (musl's is ld-musl-*.so.1 or libc.musl-*.so.1). 1 ms, where
      // process.report.getReport() takes 8.
      // Plain Node only: Electron (VS Code's extension host) gives ArrayBuffers its own allocator.
      glibc = process.platform === 'linux' && !process.versions.electron && GLIBC_MAPPED.test(readFileSync('/proc/self/maps', 'utf8'));
    } catch {
      glibc = false;
    }
  }
  return glibc;
}

/** An uninitialized buffer of `bytes` (see the file comment for why it may be a view of a larger allocation). */
export function largeBuffer(bytes: number): Buffer {
  if (bytes < GLIBC_MMAP_THRESHOLD - 64 || bytes > GLIBC_DYNAMIC_MAX || !isGlibc()) return Buffer.allocUnsafe(bytes);
  return Buffer.allocUnsafe(GLIBC_DYNAMIC_MAX + (64 << 10)).subarray(0, bytes);
}

/** `count` buffers of `bytes` each, views of one allocation when that is what {@link largeBuffer} would do. */
export function largeBuffers(count: number, bytes: number): Buffer[] {
  const whole = largeBuffer(count * bytes);
  return Array.from({ length: count }, (_, i) => whole.subarray(i * bytes, (i + 1) * bytes));
}

/**
 * A whole file read straight into an ArrayBuffer of its own size, for data kept for the
 * process's life (the sql.js wasm, 688 KB: sql.js keeps `wasmBinary` and makes a view of an
 * ArrayBuffer, where it would copy a Buffer). readFileSync's buffer, and that copy, were
 * chunks whose free raised the threshold.
 */
export function readFileToArrayBuffer(path: string): ArrayBuffer {
  const fd = openSync(path, 'r');
  try {
    const size = fstatSync(fd).size;
    const out = new ArrayBuffer(size);
    const view = new Uint8Array(out);
    let done = 0;
    while (done < size) {
      const n = readSync(fd, view, done, size - done, done);
      if (n === 0) throw new Error(`${path} shrank while it was read`);
      done += n;
    }
    return out;
  } finally {
    closeSync(fd);
  }
}
