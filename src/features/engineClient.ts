/**
 * Runs the snapshot engine for the extension — as the bundled CLI (dist/cli.js) in a child
 * process, not in the extension host:
 *  - sql.js checks are synchronous WASM: on a large database they would freeze every
 *    extension for seconds; in a child they freeze nothing;
 *  - memory (a verified image is held whole) is returned to the OS when the child exits;
 *  - cancelling is a signal: the engine stops at its next safe point, and even a hard kill
 *    is safe because every write is temp → fsync → rename (the folder lock of a dead pid
 *    is recovered, its temp files cleaned by the next run);
 *  - the extension and the CLI cannot drift apart: they are the same code path.
 * `process.execPath` is Node in code-server and Electron in desktop VS Code, where
 * ELECTRON_RUN_AS_NODE=1 makes it behave as Node (as VS Code does for its own helpers).
 */
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import type * as vscode from 'vscode';
import * as v from 'valibot';
import type { ErrorCode } from '../core/common/errors';
import {
  engineArgv,
  ErrorJson,
  parseResult,
  policyArgs,
  ProgressJson,
  RESULT_ON_FAILURE,
  type BackupOutcome,
  type CommandArgs,
  type ProbeOutcome,
  type PullOutcome,
  type PushOutcomeJson,
  type CommandName,
  type EngineProgress,
  type ResultOf,
  type RestoreOutcome,
  type VerifyOutcome,
} from '../cli/protocol';
import type { RetentionPolicy } from '../core/store/retention';
import { extensionMessage } from './errorText';
import { endsWithKeyMaterial } from '../core/store/operatorKey';

/** The engine's arguments for the log: a key pasted into aiMemory.backup.signingKeyPath (its --sign-key) is not written out. */
function shownArgs(args: readonly string[]): string[] {
  return args.map((a, i) => (args[i - 1] === '--sign-key' && endsWithKeyMaterial(a) ? '(a key, not shown)' : a.startsWith('--sign-key=') && endsWithKeyMaterial(a.slice(11)) ? '--sign-key=(a key, not shown)' : a));
}

export type { BackupOutcome, EngineProgress, RestoreOutcome, VerifyOutcome, PushOutcomeJson, PullOutcome, ProbeOutcome } from '../cli/protocol';

/** How the engine reaches a target: `--remote` and its flags, and the credentials it gets in its environment (never on its command line, never in the log). */
export interface RemoteArgs {
  remote: string;
  endpoint?: string;
  region?: string;
  pathStyle?: boolean;
  env?: Record<string, string>;
}

function remoteFlags(r: RemoteArgs): { remote: string; endpoint?: string; region?: string; 'path-style'?: boolean } {
  return { remote: r.remote, endpoint: r.endpoint, region: r.region, 'path-style': r.pathStyle };
}

export class EngineError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly hint?: string,
    readonly state?: string,
  ) {
    super(message);
    this.name = 'EngineError';
  }
}

interface RunOptions {
  /** Added to the engine's environment (credentials for a target). */
  env?: Record<string, string>;
  token?: vscode.CancellationToken;
  onProgress?: (p: EngineProgress) => void;
  onWarning?: (w: string) => void;
  /** The engine's process started (its pid). */
  onSpawn?: (pid: number) => void;
}

export class EngineClient {
  constructor(
    private readonly cliPath: string,
    private readonly log: vscode.LogOutputChannel,
  ) {}

  static forExtension(extensionPath: string, log: vscode.LogOutputChannel): EngineClient {
    return new EngineClient(path.join(extensionPath, 'dist', 'cli.js'), log);
  }

  backup(args: CommandArgs<'backup'>, options: RunOptions = {}): Promise<BackupOutcome> {
    return this.run('backup', args, options);
  }

  /** `create`: the database may be created if it does not exist — only for a path the user named (the setting), never a discovered one. */
  restore(a: Omit<CommandArgs<'restore'>, 'no-create'> & { create?: boolean }, o: RunOptions = {}): Promise<RestoreOutcome> {
    const { create, ...rest } = a;
    return this.run('restore', { ...rest, 'no-create': !create }, o);
  }

  verify(args: CommandArgs<'verify'>, options: RunOptions = {}): Promise<VerifyOutcome> {
    return this.run('verify', args, options);
  }

  /** push exits 1 when the copy failed; its result line then carries the error. */
  push(a: { dir: string; policy: RetentionPolicy } & RemoteArgs, o: RunOptions = {}): Promise<PushOutcomeJson> {
    return this.run('push', { to: a.dir, ...policyArgs(a.policy), ...remoteFlags(a) }, { ...o, env: a.env });
  }

  pull(a: { dir: string; snapshot: string } & RemoteArgs, o: RunOptions = {}): Promise<PullOutcome> {
    return this.run('pull', { to: a.dir, snapshot: a.snapshot, ...remoteFlags(a) }, { ...o, env: a.env });
  }

  /** The connection test: list, then write and delete a probe object. */
  async probe(a: RemoteArgs, o: RunOptions = {}): Promise<ProbeOutcome> {
    const r = await this.run('list', { probe: true, ...remoteFlags(a) }, { ...o, env: a.env });
    if (Array.isArray(r) || r.status !== 'ok') throw new EngineError('IO', 'The engine answered the connection test with a listing, not a test result.');
    return r;
  }

  /** Runs one engine command; resolves with its parsed --json result, rejects with an EngineError. */
  run<C extends CommandName>(command: C, a: CommandArgs<C>, o: RunOptions = {}): Promise<ResultOf<C>> {
    const args = engineArgv(command, a);
    // verify exits 1 when a snapshot fails; that is a result, not an error.
    const resultOnFailure = RESULT_ON_FAILURE.has(command);
    const full = [this.cliPath, ...args];
    this.log.debug(`engine: ${shownArgs(args).join(' ')}`);
    const started = Date.now();
    return new Promise<ResultOf<C>>((resolve, reject) => {
      const child = spawn(process.execPath, full, {
        env: { ...process.env, ...o.env, ELECTRON_RUN_AS_NODE: '1' },
        stdio: ['ignore', 'pipe', 'pipe'],
        windowsHide: true,
      });
      if (child.pid !== undefined) o.onSpawn?.(child.pid);
      let stdout = '';
      let stderrBuf = '';
      let errorJson: v.InferOutput<typeof ErrorJson> | undefined;
      const stderrOther: string[] = [];
      child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
      child.stderr.setEncoding('utf8').on('data', (d: string) => {
        stderrBuf += d;
        let nl;
        while ((nl = stderrBuf.indexOf('\n')) >= 0) {
          const line = stderrBuf.slice(0, nl);
          stderrBuf = stderrBuf.slice(nl + 1);
          if (!line.trim()) continue;
          if (line.startsWith('{')) {
            let value: unknown;
            try {
              value = JSON.parse(line);
            } catch {
              value = undefined; // not ours: kept as text below
            }
            const progress = v.safeParse(ProgressJson, value);
            if (progress.success) {
              o.onProgress?.(progress.output.progress);
              continue;
            }
            const error = v.safeParse(ErrorJson, value);
            if (error.success) {
              errorJson = error.output;
              continue;
            }
          }
          if (line.startsWith('warning: ')) {
            this.log.warn(extensionMessage(line.slice(9))); // the CLI's flags in VS Code's words
            o.onWarning?.(line.slice(9));
          } else {
            stderrOther.push(line);
          }
        }
      });
      const cancel = o.token?.onCancellationRequested(() => {
        this.log.info(`engine: cancelling ${args[0]} (pid ${child.pid})`);
        child.kill('SIGTERM');
      });
      child.on('error', (e) => {
        cancel?.dispose();
        reject(new EngineError('IO', `Could not start the backup engine (${this.cliPath}): ${e.message}`, 'Reinstall the extension.'));
      });
      child.on('close', (code, signal) => {
        cancel?.dispose();
        const ms = Date.now() - started;
        let parsed: ResultOf<C> | undefined;
        let shapeError: string | undefined;
        try {
          parsed = stdout.trim() ? parseResult(command, JSON.parse(stdout.trim().split('\n').pop() as string)) : undefined;
        } catch (e) {
          parsed = undefined;
          shapeError = e instanceof Error ? e.message : String(e);
        }
        if (code === 0 || (resultOnFailure && code === 1 && parsed)) {
          this.log.debug(`engine: ${args[0]} finished in ${ms} ms`);
          if (parsed) resolve(parsed);
          else reject(new EngineError('IO', `The backup engine printed no usable result for ${args[0]}${shapeError ? ` (${shapeError})` : ''}.`, 'Reinstall the extension if this persists; Show Log has the details.'));
          return;
        }
        for (const l of stderrOther) this.log.error(`engine: ${l}`);
        if (errorJson) {
          reject(new EngineError(errorJson.code, errorJson.error, errorJson.hint, errorJson.state));
        } else {
          const why = signal ? `was stopped (${signal})` : `exited with code ${code}`;
          reject(new EngineError(o.token?.isCancellationRequested ? 'CANCELLED' : 'IO', `The backup engine ${why}${stderrOther.length ? `: ${stderrOther.slice(-3).join(' ')}` : ''}.`));
        }
      });
    });
  }
}
