/**
 * Asking V8 to collect now, where we know a lot of external memory just died.
 *
 * Buffers live outside V8's heap; V8 frees one when a collection finds its (small) wrapper
 * dead, and it schedules collections by how much its own heap grows. Work that churns
 * through big Buffers while allocating little else on the heap — inflating blobs, reading
 * one rebuilt snapshot after another — can so pile up tens of MB of dead buffers before V8
 * looks. Node exposes no way to hint it but `gc`, which `--expose-gc` installs in contexts
 * created afterwards; we set the flag when first needed (as sqlEngine sets `--liftoff-only`).
 * Where an engine refuses it, nothing changes but the peak.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

type Gc = (o: { type: 'minor' | 'major'; execution?: 'sync' | 'async' }) => Promise<void> | undefined;
let gc: Gc | null | undefined;

function collector(): Gc | null {
  if (gc === undefined) {
    try {
      setFlagsFromString('--expose-gc');
      const f = runInNewContext('gc') as unknown;
      gc = typeof f === 'function' ? (f as Gc) : null;
    } catch {
      gc = null;
    }
  }
  return gc;
}

/** A scavenge of the young generation: for buffers that died young (well under a millisecond). */
export function collectYoung(): void {
  collector()?.({ type: 'minor' });
}

/**
 * A full collection: between large units of work whose buffers lived long enough to be
 * promoted (a few ms). It runs as a task of its own (`execution: 'async'`), with none of
 * our frames on the stack: run from inside our code, a full collection freed none of the
 * dead buffers of the work just done (four archived rebuilds in a row, each followed by
 * one: +14.5 MB of ArrayBuffers each, 68 MB in all; as a task: back to the 10 MB held).
 * Reproduced without any I/O: 10 MB of promoted Buffers, dropped, survive any number of
 * synchronous full collections and go with the first one run as a task.
 */
export async function collectAll(): Promise<void> {
  await collector()?.({ type: 'major', execution: 'async' });
}
