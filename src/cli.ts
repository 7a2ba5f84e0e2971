/**
 * `ai-memory-backup`: the headless face of the snapshot engine, file-for-file compatible
 * with `ai-memory backup` / `ai-memory restore` (same flags, defaults, names, manifest and
 * output shapes), plus `verify` and `list`.
 */
import { runCli } from './cli/main';

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

runCli(process.argv.slice(2), {
  stdout: (s) => process.stdout.write(s),
  stderr: (s) => process.stderr.write(s),
  env: process.env,
  cwd: process.cwd(),
  signal: stop.signal,
}).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    process.stderr.write(`internal error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exitCode = 1;
  },
);
