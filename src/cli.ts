/**
 * `ai-memory-backup`: the headless face of the snapshot engine, file-for-file compatible
 * with `ai-memory backup` / `ai-memory restore` (same flags, defaults, names, manifest and
 * output shapes), plus `verify` and `list`.
 */
import { setFlagsFromString } from 'node:v8';
import { runCli } from './cli/main';

// V8 doubles its young generation (up to 16 MB a semi-space, three of them committed) each
// time enough objects have survived scavenges since it last grew: in a long run, sooner or
// later, whatever the work. Our data lives outside V8's heap (Buffers, typed arrays, WASM
// memory), and what V8 holds is small. Kept at its first size (500 MB, GNU time, before →
// after): `verify --all` of 24 snapshots 138 → 103 MiB (its heap went 16 → 41 MB mid-run),
// `backup --verify quick` 88–89 → 83–85 MiB, at 50 MB 86 → 80 MiB; none slower. Set here,
// in the engine's own process (the CLI, which the extension runs as a child), never in a
// host we share.
try {
  setFlagsFromString('--semi-space-growth-factor=1');
} catch {
  // an engine without the flag: its default growth
}

// SIGINT/SIGTERM ask the engine to stop at its next safe point (it removes its temp files
// and releases its lock; a restore past the point of no return finishes first). A second
// signal exits at once: still safe, since every write is temp + rename.
const stop = new AbortController();
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    if (stop.signal.aborted) process.exit(130);
    stop.abort();
  });
}

// Output errors never abort an operation or leave state behind: a reader that went away
// (`… | head -1`: EPIPE), a closed terminal. The work goes on to its end (or its next safe
// point), cleans up, and exits with its own status; only the words are lost.
for (const stream of [process.stdout, process.stderr]) stream.on('error', () => undefined);
const write = (stream: NodeJS.WriteStream, s: string) => {
  try {
    if (!stream.destroyed && stream.writable) stream.write(s);
  } catch {
    // see above
  }
};

/** Resolves once stdout has taken what it was given (a large export must not pile up in memory), or is gone. */
const drained = (stream: NodeJS.WriteStream): Promise<void> | undefined =>
  stream.destroyed || !stream.writable || !stream.writableNeedDrain
    ? undefined
    : new Promise<void>((resolve) => {
        const done = () => {
          for (const ev of ['drain', 'close', 'error'] as const) stream.off(ev, done);
          resolve();
        };
        for (const ev of ['drain', 'close', 'error'] as const) stream.once(ev, done);
      });

runCli(process.argv.slice(2), {
  stdout: (s) => write(process.stdout, s),
  stdoutDrained: () => drained(process.stdout),
  stderr: (s) => write(process.stderr, s),
  env: process.env,
  cwd: process.cwd(),
  signal: stop.signal,
}).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    write(process.stderr, `internal error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exitCode = 1;
  },
);
