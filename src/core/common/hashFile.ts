/** The sha256 of a file, read with read-ahead (the next block is read while this one is hashed). */
import { createHash } from 'node:crypto';
import { BackupError, ioError } from './errors';
import { largeBuffers } from './largeBuffer';
import { openRegular } from './regularFile';

/** SHA-256 of a file, streamed. */
export async function hashFile(path: string, signal?: AbortSignal, onBytes?: (done: number) => void): Promise<{ sha256: string; bytes: number }> {
  // Regular files only, never blocking on the open (regularFile.ts).
  const { fh } = await openRegular(path).catch((e: unknown) => {
    throw ioError('opening', path, e);
  });
  try {
    const hash = createHash('sha256');
    const bufs = largeBuffers(2, 1 << 20); // freed without a trace in malloc (largeBuffer.ts)
    let pos = 0;
    let k = 0;
    let pending = fh.read(bufs[0], 0, bufs[0].length, 0);
    // Never leave a read in flight when we stop: the handle is closed right after.
    pending.catch(() => undefined);
    for (;;) {
      const { bytesRead, buffer } = await pending;
      if (bytesRead === 0) break;
      if (signal?.aborted) throw new BackupError('CANCELLED', 'Cancelled.');
      pos += bytesRead;
      k ^= 1;
      pending = fh.read(bufs[k], 0, bufs[k].length, pos); // read ahead while hashing
      pending.catch(() => undefined);
      hash.update(buffer.subarray(0, bytesRead));
      onBytes?.(pos);
    }
    return { sha256: hash.digest('hex'), bytes: pos };
  } catch (e) {
    throw ioError('reading', path, e);
  } finally {
    await fh.close();
  }
}
