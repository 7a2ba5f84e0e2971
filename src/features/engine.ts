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
import type { Manifest } from '../core/store/manifest';

export interface EngineProgress {
  phase: string;
  done?: number;
  total?: number;
  message?: string;
}

export class EngineError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly hint?: string,
    readonly state?: string,
  ) {
    super(message);
    this.name = 'EngineError';
  }
}

export type BackupOutcome = Manifest & { status: 'created' | 'unchanged' | 'skipped'; unchanged_since?: string; pruned?: string[] };

export interface RestoreOutcome {
  status: 'restored' | 'dry-run';
  from: string;
  to: string;
  previous?: string;
  sha256: string;
  bytes: number;
  created?: boolean;
  kept_aside?: string[];
  damaged?: string;
}

export interface VerifyOutcome {
  status: 'ok' | 'failed';
  snapshots: { name: string; path: string; ok: boolean; bytes: number; sha256?: string; manifest: string; integrity?: string; memories?: number; problems: string[]; notes: string[] }[];
}

interface RunOptions {
  token?: vscode.CancellationToken;
  onProgress?: (p: EngineProgress) => void;
  onWarning?: (w: string) => void;
}

export class EngineClient {
  constructor(
    private readonly cliPath: string,
    private readonly log: vscode.LogOutputChannel,
  ) {}

  static forExtension(extensionPath: string, log: vscode.LogOutputChannel): EngineClient {
    return new EngineClient(path.join(extensionPath, 'dist', 'cli.js'), log);
  }

  backup(a: { db: string; dir: string; keep: number; verify: string; skipIfRecentSeconds?: number }, o: RunOptions = {}): Promise<BackupOutcome> {
    const args = ['backup', '--db', a.db, '--to', a.dir, '--keep', String(a.keep), '--verify', a.verify];
    if (a.skipIfRecentSeconds !== undefined) args.push('--skip-if-recent', String(Math.max(0, Math.floor(a.skipIfRecentSeconds))));
    return this.run<BackupOutcome>(args, o);
  }

  /** `create`: the database may be created if it does not exist (only for a path the user named: the setting). */
  restore(a: { db: string; from: string; force?: boolean; create?: boolean }, o: RunOptions = {}): Promise<RestoreOutcome> {
    const args = ['restore', '--db', a.db, '--from', a.from];
    if (a.force) args.push('--force');
    if (!a.create) args.push('--no-create');
    return this.run<RestoreOutcome>(args, o);
  }

  verify(a: { from: string }, o: RunOptions = {}): Promise<VerifyOutcome> {
    // verify exits 1 when a snapshot fails; that is a result, not an error.
    return this.run<VerifyOutcome>(['verify', '--from', a.from], o, true);
  }

  private run<T>(args: string[], o: RunOptions, resultOnFailure = false): Promise<T> {
    const full = [this.cliPath, ...args, '--json', '--progress-json'];
    this.log.debug(`engine: ${args.join(' ')}`);
    const started = Date.now();
    return new Promise<T>((resolve, reject) => {
      const child = spawn(process.execPath, full, {
        env: { ...process.env, ELECTRON_RUN_AS_NODE: '1' },
        stdio: ['ignore', 'pipe', 'pipe'],
        windowsHide: true,
      });
      let stdout = '';
      let stderrBuf = '';
      let errorJson: { code?: string; error?: string; hint?: string; state?: string } | undefined;
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
            try {
              const v = JSON.parse(line) as { progress?: EngineProgress; status?: string };
              if (v.progress) o.onProgress?.(v.progress);
              else if (v.status === 'error') errorJson = v as typeof errorJson;
              continue;
            } catch {
              // not ours: fall through and keep it as text
            }
          }
          if (line.startsWith('warning: ')) {
            this.log.warn(line.slice(9));
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
        let parsed: T | undefined;
        try {
          parsed = stdout.trim() ? (JSON.parse(stdout.trim().split('\n').pop() as string) as T) : undefined;
        } catch {
          parsed = undefined;
        }
        if (code === 0 || (resultOnFailure && code === 1 && parsed)) {
          this.log.debug(`engine: ${args[0]} finished in ${ms} ms`);
          if (parsed) resolve(parsed);
          else reject(new EngineError('IO', `The backup engine printed no result for ${args[0]}.`, 'Show the log for details.'));
          return;
        }
        for (const l of stderrOther) this.log.error(`engine: ${l}`);
        if (errorJson) {
          reject(new EngineError(errorJson.code ?? 'IO', errorJson.error ?? 'unknown error', errorJson.hint, errorJson.state));
        } else {
          const why = signal ? `was stopped (${signal})` : `exited with code ${code}`;
          reject(new EngineError(o.token?.isCancellationRequested ? 'CANCELLED' : 'IO', `The backup engine ${why}${stderrOther.length ? `: ${stderrOther.slice(-3).join(' ')}` : ''}.`));
        }
      });
    });
  }
}
