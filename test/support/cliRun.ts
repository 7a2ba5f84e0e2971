/**
 * Runs the CLI in-process (the same `runCli` that dist/cli.js calls) with captured output,
 * like the reference's `TestEnv` + `CliOutput`, and an isolated home so no real config is read.
 */
import { runCli } from '../../src/cli/main';

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
  /** stdout parsed as one JSON line (throws when it is not). */
  json<T = Record<string, unknown>>(): T;
}

export async function cli(args: string[], opts: { cwd: string; env?: NodeJS.ProcessEnv; home?: string }): Promise<CliResult> {
  let stdout = '';
  let stderr = '';
  const code = await runCli(args, {
    stdout: (s) => {
      stdout += s;
    },
    stderr: (s) => {
      stderr += s;
    },
    env: opts.env ?? {},
    cwd: opts.cwd,
    home: opts.home ?? opts.cwd,
  });
  return {
    code,
    stdout,
    stderr,
    json<T>() {
      return JSON.parse(stdout.trim()) as T;
    },
  };
}
