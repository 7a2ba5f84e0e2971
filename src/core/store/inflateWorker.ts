/**
 * An archived snapshot's blobs read and inflated on a second thread while the main one
 * copies, hashes and writes them. A rebuild of 500 MB spends about as long in zlib as in
 * everything else together, and Node's zlib is synchronous per call: inflating on libuv's
 * thread pool (zlib's async API) costs a new zlib stream per blob and was measured no
 * faster. A worker running the same synchronous loop does it beside the main thread.
 *
 * The main thread decides everything first (planFetches): which blob each page needs, in
 * which of SLOTS buffers it is kept, and so the exact order of the blobs to fetch. The worker
 * only follows that list — read, inflate, check the length — and sends the blobs back in
 * batches through a few recycled buffers, so at most BUFFERS batches are in flight. What a
 * blob holds is still proven on the main thread: the whole rebuilt file against its
 * manifest's sha256, as without the worker.
 *
 * The worker is source text run with `eval: true`: it uses Node's built-ins only, and so
 * needs no file of its own beside the bundle (dist/ holds one bundle per entry point; tests
 * run tsc's tree in out/).
 */
import { Worker } from 'node:worker_threads';
import type { PackStore } from './archive';

/** Inflated blobs the main thread keeps (64 KiB each): what PageSource's LRU held by bytes. */
export const SLOTS = 64;
/** Bytes of one batch of inflated blobs sent back at a time, and how many such buffers circulate. */
const BATCH_BYTES = 512 << 10;
const BUFFERS = 2;

export interface FetchPlan {
  /** Per fetch, in order: its pack (index into store.packs), offset and stored length, inflated length, deflated or stored as it is. */
  pack: Int32Array;
  off: Float64Array;
  len: Int32Array;
  raw: Int32Array;
  deflated: Uint8Array;
  count: number;
  /** Per page: the slot its blob is in, and 1 where that blob is fetched (into that slot) first. */
  slotOf: Uint8Array;
  fetchAt: Uint8Array;
  /** The largest inflated blob. */
  maxRaw: number;
  /** Inflated bytes of all fetches. */
  rawBytes: number;
}

/**
 * Which blob each of `pieces` pages (store rows `rows`) needs, kept in SLOTS buffers
 * reused least recently used first: a page whose blob is in a slot is a hit, any other
 * fetches its blob into the slot used longest ago.
 */
export function planFetches(store: PackStore, rows: Int32Array, pieces: number): FetchPlan {
  const slotOf = new Uint8Array(pieces);
  const fetchAt = new Uint8Array(pieces);
  const cap = Math.max(16, pieces);
  let pack = new Int32Array(cap);
  let off = new Float64Array(cap);
  let len = new Int32Array(cap);
  let raw = new Int32Array(cap);
  let deflated = new Uint8Array(cap);
  let count = 0;
  let maxRaw = 0;
  let rawBytes = 0;
  // key → slot; a Map iterates in insertion order, so re-inserting on use makes the first key the least recently used.
  const inSlot = new Map<number, number>();
  let used = 0;
  for (let i = 0; i < pieces; i++) {
    const r = rows[i];
    const key = store.blobKey(r);
    let slot = inSlot.get(key);
    if (slot !== undefined) {
      inSlot.delete(key);
      inSlot.set(key, slot);
      slotOf[i] = slot;
      continue;
    }
    if (used < SLOTS) slot = used++;
    else {
      const [oldest, s] = inSlot.entries().next().value as [number, number];
      inSlot.delete(oldest);
      slot = s;
    }
    inSlot.set(key, slot);
    slotOf[i] = slot;
    fetchAt[i] = 1;
    if (count === pack.length) {
      const grow = <T extends Int32Array | Float64Array | Uint8Array>(a: T): T => {
        const b = new (a.constructor as new (n: number) => T)(a.length * 2);
        b.set(a);
        return b;
      };
      [pack, off, len, raw, deflated] = [grow(pack), grow(off), grow(len), grow(raw), grow(deflated)];
    }
    const row = store.rowAt(r);
    pack[count] = row.pack;
    off[count] = row.off;
    len[count] = row.len;
    raw[count] = row.blobRaw;
    deflated[count] = store.deflated(r) ? 1 : 0;
    maxRaw = Math.max(maxRaw, row.blobRaw);
    rawBytes += row.blobRaw;
    count++;
  }
  return { pack, off, len, raw, deflated, count, slotOf, fetchAt, maxRaw, rawBytes };
}

/** Why the worker could not deliver fetch `fetch`: the caller names the pack and page. */
export class FetchFailed extends Error {
  constructor(
    readonly fetch: number,
    readonly kind: 'gone' | 'io' | 'short' | 'inflate' | 'length',
    readonly detail: string,
    readonly errno: string | undefined,
  ) {
    super(`fetch ${fetch}: ${kind} ${detail}`);
  }
}

/** The worker itself stopped (could not start, ran out of memory, crashed): the caller rebuilds without it. */
export class WorkerStopped extends Error {}

const WORKER_SOURCE = String.raw`
'use strict';
const { parentPort, workerData } = require('node:worker_threads');
const fs = require('node:fs');
const { join } = require('node:path');
const { inflateRawSync } = require('node:zlib');
let gc = null;
try {
  require('node:v8').setFlagsFromString('--expose-gc');
  const f = require('node:vm').runInNewContext('gc');
  if (typeof f === 'function') gc = f;
} catch {}
const { dir, packs, pack, off, len, raw, deflated, count, batchBytes, buffers } = workerData;
const fds = new Map();
const free = [];
for (let b = 0; b < buffers; b++) free.push(new ArrayBuffer(batchBytes));
let read = Buffer.allocUnsafe(64 << 10);
let next = 0;
let inflated = 0;
let stopped = false;
function fdOf(p) {
  let fd = fds.get(p);
  if (fd !== undefined) return fd;
  if (fds.size >= 8) {
    const [k, old] = fds.entries().next().value;
    fds.delete(k);
    fs.closeSync(old);
  }
  fd = fs.openSync(join(dir, packs[p]), 'r');
  fds.set(p, fd);
  return fd;
}
function closeAll() {
  for (const fd of fds.values()) {
    try { fs.closeSync(fd); } catch {}
  }
  fds.clear();
}
function pump() {
  while (!stopped && free.length && next < count) {
    const ab = free.pop();
    const out = Buffer.from(ab);
    const first = next;
    let used = 0;
    let error;
    while (next < count && used + raw[next] <= out.length) {
      error = fetchInto(next, out, used);
      if (error) break;
      used += raw[next];
      next++;
    }
    // The blobs before a failed one still go first: the main thread takes them in order.
    if (next > first) parentPort.postMessage({ buf: ab, first, count: next - first }, [ab]);
    if (error) {
      stopped = true;
      closeAll();
      parentPort.postMessage({ error: Object.assign({ fetch: next }, error) });
    }
  }
  if (next >= count) closeAll();
}
/** Fetch k's inflated bytes into out at used; an error description instead when it cannot. */
function fetchInto(k, out, used) {
  let fd;
  try {
    fd = fdOf(pack[k]);
  } catch (e) {
    return { kind: e && e.code === 'ENOENT' ? 'gone' : 'io', detail: String(e && e.message), errno: e && e.code };
  }
  if (read.length < len[k]) read = Buffer.allocUnsafe(len[k]);
  let got = 0;
  try {
    while (got < len[k]) {
      const n = fs.readSync(fd, read, got, len[k] - got, off[k] + got);
      if (n === 0) break;
      got += n;
    }
  } catch (e) {
    return { kind: 'io', detail: String(e && e.message), errno: e && e.code };
  }
  if (got < len[k]) return { kind: 'short', detail: String(got) };
  const stored = read.subarray(0, len[k]);
  if (!deflated[k]) {
    stored.copy(out, used);
    return undefined;
  }
  let r;
  try {
    r = inflateRawSync(stored, { chunkSize: raw[k] + 64, maxOutputLength: raw[k] });
  } catch {
    return { kind: 'inflate', detail: '' };
  }
  if (r.length !== raw[k]) return { kind: 'length', detail: String(r.length) };
  r.copy(out, used);
  inflated += r.length;
  // zlib's own output Buffers die at once; let them go before tens of MB pile up (common/gc.ts).
  if (gc && inflated >= 8 << 20) {
    inflated = 0;
    gc({ type: 'minor' });
  }
  return undefined;
}
parentPort.on('message', (ab) => {
  free.push(ab);
  pump();
});
pump();
`;

/**
 * The blobs of a FetchPlan, in order, from the worker: `take(k)` resolves to fetch k's bytes
 * (valid until the next take). Close it on every path.
 */
export class InflatingReader {
  private readonly worker: Worker | undefined;
  private readonly batches: { buf: Buffer; ab: ArrayBuffer; first: number; count: number }[] = [];
  private waiting: { resolve: () => void } | undefined;
  private failure: Error | undefined;
  private cur: { buf: Buffer; ab: ArrayBuffer; first: number; count: number; at: number } | undefined;
  private closed = false;

  constructor(
    packsDir: string,
    packs: readonly string[],
    private readonly plan: FetchPlan,
  ) {
    const p = plan;
    const workerData = {
      dir: packsDir,
      packs: [...packs],
      pack: p.pack.subarray(0, p.count),
      off: p.off.subarray(0, p.count),
      len: p.len.subarray(0, p.count),
      raw: p.raw.subarray(0, p.count),
      deflated: p.deflated.subarray(0, p.count),
      count: p.count,
      batchBytes: Math.max(BATCH_BYTES, p.maxRaw),
      buffers: BUFFERS,
    };
    try {
      this.worker = new Worker(WORKER_SOURCE, { eval: true, workerData });
    } catch (e) {
      this.failure = new WorkerStopped(`the inflating thread could not start: ${e instanceof Error ? e.message : String(e)}`);
      return;
    }
    this.worker.on('message', (m: { buf?: ArrayBuffer; first?: number; count?: number; error?: { fetch: number; kind: FetchFailed['kind']; detail: string; errno?: string } }) => {
      if (m.error) this.failure ??= new FetchFailed(m.error.fetch, m.error.kind, m.error.detail, m.error.errno);
      else if (m.buf) this.batches.push({ buf: Buffer.from(m.buf), ab: m.buf, first: m.first as number, count: m.count as number });
      this.wake();
    });
    this.worker.on('error', (e: Error) => {
      this.failure ??= new WorkerStopped(`the inflating thread failed: ${e.message}`);
      this.wake();
    });
    this.worker.on('exit', (code) => {
      if (!this.closed) this.failure ??= new WorkerStopped(`the inflating thread exited (${code})`);
      this.wake();
    });
  }

  private wake(): void {
    const w = this.waiting;
    this.waiting = undefined;
    w?.resolve();
  }

  /** Fetch k's bytes: fetches must be taken in order, 0, 1, 2… */
  async take(k: number): Promise<Buffer> {
    for (;;) {
      const c = this.cur;
      if (c && k < c.first + c.count) {
        const start = c.at;
        c.at += this.plan.raw[k];
        return c.buf.subarray(start, c.at);
      }
      if (c) {
        // Every blob of this batch was taken (and copied by the caller): back to the worker.
        this.cur = undefined;
        this.worker?.postMessage(c.ab, [c.ab]);
      }
      const b = this.batches.shift();
      if (b) {
        this.cur = { ...b, at: 0 };
        continue;
      }
      if (this.failure) {
        // A fetch the worker could not make is reported once every fetch before it was taken.
        if (!(this.failure instanceof FetchFailed) || this.failure.fetch <= k) throw this.failure;
      }
      await new Promise<void>((resolve) => {
        this.waiting = { resolve };
      });
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.worker?.terminate().catch(() => undefined);
  }
}
