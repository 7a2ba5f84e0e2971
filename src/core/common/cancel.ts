/** Cancellation and progress, shared by every long operation of the engine. */
import { BackupError } from './errors';

/** What a long operation reports while it runs (the CLI prints it with --progress-json). */
export interface Progress {
  phase: 'waiting' | 'reading' | 'checking' | 'publishing' | 'pruning' | 'hashing' | 'placing';
  done?: number;
  total?: number;
  message?: string;
}

/** Throws CANCELLED (with `what` as the message, e.g. "Backup cancelled; nothing was written.") once `signal` is aborted. */
export function throwIfCancelled(signal: AbortSignal | undefined, what: string): void {
  if (signal?.aborted) throw new BackupError('CANCELLED', what);
}

/**
 * Lets a signal that arrived during synchronous work (a WASM check, a long write) be
 * handled before the next decision. From the poll phase, one setImmediate runs before the
 * next poll, so two turns of the event loop are needed for the signal's handler to run.
 */
export async function letSignalsIn(): Promise<void> {
  await new Promise((r) => setImmediate(r));
  await new Promise((r) => setImmediate(r));
}
