/**
 * `ai-memory-backup`: the headless face of the snapshot engine, file-for-file compatible
 * with `ai-memory backup` / `ai-memory restore` (same flags, defaults, names, manifest and
 * output shapes), plus `verify` and `list`.
 */
import { runCli } from './cli/main';

runCli(process.argv.slice(2), {
  stdout: (s) => process.stdout.write(s),
  stderr: (s) => process.stderr.write(s),
  env: process.env,
  cwd: process.cwd(),
}).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    process.stderr.write(`internal error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exitCode = 1;
  },
);
