/**
 * Parent-side API of the native SQLite writer: a separate Node process (better-sqlite3)
 * that behaves like a busy ai-memory server — WAL mode, continuous small transactions that
 * fire the FTS5 triggers, explicit PASSIVE/RESTART/TRUNCATE checkpoints interleaved with
 * automatic ones — while a test takes backups of the same file.
 *
 * It must be a separate PROCESS, not a second connection in the test process: SQLite's
 * POSIX advisory locks are per process, and a hot-backup reader has to cope with a writer
 * it cannot coordinate with in memory.
 *
 *     const w = await startWriter({ dbPath, checkpointEveryMs: 100 });
 *     await w.waitForCommits(20);
 *     const before = w.lastCommitted();   // everything ≤ before is durable in the db
 *     ... take a backup ...
 *     const summary = await w.stop();     // graceful: SIGTERM by PID, waits for exit
 *     checkSnapshotConsistency(snapshot, { minSeq: before });
 *
 * Orphans: every writer is tracked by procs.ts (SIGKILL on root after-all hook and on
 * process exit) and the child exits by itself when its IPC channel to us closes.
 */
import { ChildProcess, fork } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { isAlive, trackChild } from './procs';
import {
  CheckpointModeName, CheckpointStats, WriterChildSummary, WriterConfig, WriterMessage,
} from './writerProtocol';

export type { CheckpointModeName } from './writerProtocol';

export interface WriterOptions {
  dbPath: string;
  /** Explicit checkpoint period in ms (default 250; 0 = only automatic checkpoints). */
  checkpointEveryMs?: number;
  /** Explicit checkpoint modes, used in rotation (default PASSIVE, RESTART, TRUNCATE). */
  modes?: CheckpointModeName[];
  /** Target commit rate (default 200/s); 0 = as fast as possible. */
  txPerSecond?: number;
  /** Memories inserted per transaction vary 1..insertsPerTx (default 3). */
  insertsPerTx?: number;
  /** Embedding dimension of inserted memories (default 384; 0 = none). */
  embeddingDim?: number;
  /** Tx k deletes the memories of tx k-deleteLag (default 40, minimum 2). */
  deleteLag?: number;
  /** PRAGMA wal_autocheckpoint (default 1000, SQLite's default; lower = more frequent backfills; 0 = off). */
  walAutocheckpoint?: number;
  /** Add a 1–256 KB transcript BLOB per tx and delete the one of tx k-blobLag (default false). */
  growBlobs?: boolean;
  /** See growBlobs (default 16). */
  blobLag?: number;
  /** Run VACUUM this often (default 0 = never). VACUUM through the WAL shrinks the page count. */
  vacuumEveryMs?: number;
  /** Stop writing after this many commits but keep the db open (0 = never). With kill(): crash fixture. */
  stopWritingAfter?: number;
  /** Seed of the generated content (default 7). */
  seed?: number;
  /** Create the ai-memory schema when the file does not exist (default true). */
  createIfMissing?: boolean;
  /** Time allowed for the child to open the db and report ready (default 15000 ms). */
  startTimeoutMs?: number;
  /** The child exits on its own after this long (default 300000 ms). */
  maxLifetimeMs?: number;
}

export interface WriterSummary extends WriterChildSummary {
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  /** Exited 0 after a clean close, and reported no error. */
  clean: boolean;
  errors: string[];
  stderr: string;
}

export interface WriterKillResult {
  pid: number;
  /** Last seq the child reported. The child may have committed more before dying. */
  lastReportedSeq: number;
  signal: NodeJS.Signals | null;
}

export interface WriterHandle {
  readonly pid: number;
  /** Max writer_log seq in the database when this writer started (0 for a fresh db). */
  readonly startSeq: number;
  readonly sqliteVersion: string;
  /** Highest seq whose COMMIT the child has reported (a lower bound of what is committed). */
  lastCommitted(): number;
  /** Commits reported in this run. */
  commits(): number;
  checkpointStats(): Record<CheckpointModeName, CheckpointStats>;
  /** Resolve when at least `n` commits happened in this run; returns lastCommitted(). */
  waitForCommits(n: number, timeoutMs?: number): Promise<number>;
  /** Resolve when lastCommitted() >= seq. */
  waitForSeq(seq: number, timeoutMs?: number): Promise<number>;
  /** Resolve when every given mode has completed at least `times` explicit checkpoints. */
  waitForCheckpoints(modes: CheckpointModeName[], times?: number, timeoutMs?: number): Promise<void>;
  /** Resolve when the child reports it stopped writing (stopWritingAfter). */
  waitForIdle(timeoutMs?: number): Promise<number>;
  /** Graceful stop: SIGTERM by PID; the child finishes its transaction, closes the db, exits. */
  stop(timeoutMs?: number): Promise<WriterSummary>;
  /** SIGKILL by PID (leaves -wal/-shm like a crashed server); waits until it is reaped. */
  kill(): Promise<WriterKillResult>;
  /** True until the process has exited. */
  running(): boolean;
  /** Stderr collected so far (bounded). */
  stderr(): string;
}

const ALL_MODES: CheckpointModeName[] = ['PASSIVE', 'RESTART', 'TRUNCATE'];
/** Writers started and not yet exited, for {@link killAllWriters}. */
const liveWriters = new Set<WriterHandle>();
const STDERR_LIMIT = 64 * 1024;

/** Path of the compiled child entry (out/test/support/nativeWriterProcess.js). */
export function writerEntryPath(): string {
  const p = path.join(__dirname, 'nativeWriterProcess.js');
  if (!fs.existsSync(p)) {
    throw new Error(`native writer entry not found at ${p}: run the tests from compiled output (npm run compile)`);
  }
  return p;
}

function resolveConfig(o: WriterOptions): WriterConfig {
  const deleteLag = o.deleteLag ?? 40;
  if (deleteLag < 2) {
    throw new Error('deleteLag must be >= 2 (tx k touches the rows of tx k-1)');
  }
  return {
    dbPath: path.resolve(o.dbPath),
    seed: o.seed ?? 7,
    txPerSecond: o.txPerSecond ?? 200,
    insertsPerTx: Math.max(1, o.insertsPerTx ?? 3),
    embeddingDim: o.embeddingDim ?? 384,
    deleteLag,
    checkpointEveryMs: o.checkpointEveryMs ?? 250,
    modes: o.modes ?? ALL_MODES,
    walAutocheckpoint: o.walAutocheckpoint ?? 1000,
    growBlobs: o.growBlobs ?? false,
    blobLag: Math.max(1, o.blobLag ?? 16),
    vacuumEveryMs: o.vacuumEveryMs ?? 0,
    stopWritingAfter: o.stopWritingAfter ?? 0,
    createIfMissing: o.createIfMissing ?? true,
    maxLifetimeMs: o.maxLifetimeMs ?? 300_000,
  };
}

interface Waiter {
  done: () => boolean;
  resolve: () => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

/** Start a writer process and wait until it has opened the database. */
export async function startWriter(options: WriterOptions): Promise<WriterHandle> {
  const config = resolveConfig(options);
  const child: ChildProcess = fork(writerEntryPath(), [JSON.stringify(config)], {
    stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
    // No inherited --inspect/--require flags from mocha: the child is plain Node.
    execArgv: [],
  });
  trackChild(child, `native-writer ${config.dbPath}`);
  const pid = child.pid;
  if (pid === undefined) {
    throw new Error('failed to spawn the native writer process');
  }

  let stderr = '';
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (d: string) => {
    if (stderr.length < STDERR_LIMIT) {
      stderr += d;
    }
  });

  let ready: Extract<WriterMessage, { type: 'ready' }> | undefined;
  let last = 0;
  let startSeq = 0;
  let idleSeq: number | undefined;
  let summary: WriterChildSummary | undefined;
  const errors: string[] = [];
  const ckpt: Record<CheckpointModeName, CheckpointStats> = {
    PASSIVE: { runs: 0, busy: 0 }, FULL: { runs: 0, busy: 0 }, RESTART: { runs: 0, busy: 0 }, TRUNCATE: { runs: 0, busy: 0 },
  };
  let exitInfo: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  const waiters = new Set<Waiter>();

  function settleWaiters(): void {
    for (const w of waiters) {
      if (w.done()) {
        clearTimeout(w.timer);
        waiters.delete(w);
        w.resolve();
      } else if (exitInfo) {
        clearTimeout(w.timer);
        waiters.delete(w);
        w.reject(new Error(`native writer ${pid} exited (code ${exitInfo.code}, signal ${exitInfo.signal}) before the condition was met` +
          `${errors.length ? `: ${errors.join('; ')}` : ''}${stderr ? `\nstderr: ${stderr}` : ''}`));
      }
    }
  }

  function waitFor(done: () => boolean, timeoutMs: number, what: string): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const w: Waiter = {
        done,
        resolve,
        reject,
        timer: setTimeout(() => {
          waiters.delete(w);
          reject(new Error(`native writer ${pid}: timed out after ${timeoutMs} ms waiting for ${what} (last seq ${last})`));
        }, timeoutMs),
      };
      waiters.add(w);
      settleWaiters();
    });
  }

  let handleRef: WriterHandle | undefined;
  const exited = new Promise<void>((resolve) => {
    child.once('exit', (code, signal) => {
      exitInfo = { code, signal };
      if (handleRef) {
        liveWriters.delete(handleRef);
      }
      settleWaiters();
      resolve();
    });
  });

  child.on('message', (raw: unknown) => {
    const m = raw as WriterMessage; // the child only ever sends WriterMessage objects
    switch (m.type) {
      case 'ready':
        ready = m;
        startSeq = m.startSeq;
        last = m.startSeq;
        break;
      case 'committed':
        last = Math.max(last, m.seq);
        break;
      case 'checkpoint':
        ckpt[m.mode].runs++;
        if (m.busy) {
          ckpt[m.mode].busy++;
        }
        break;
      case 'idle':
        idleSeq = m.seq;
        last = Math.max(last, m.seq);
        break;
      case 'summary':
        summary = m.summary;
        last = Math.max(last, m.summary.lastSeq);
        break;
      case 'error':
        errors.push(m.message);
        break;
      case 'vacuum':
        break;
    }
    settleWaiters();
  });

  try {
    await waitFor(() => ready !== undefined, options.startTimeoutMs ?? 15_000, 'ready');
  } catch (err) {
    if (!exitInfo) {
      child.kill('SIGKILL');
      await exited;
    }
    throw err;
  }

  const handle: WriterHandle = {
    pid,
    startSeq,
    sqliteVersion: ready?.sqliteVersion ?? '',
    lastCommitted: () => last,
    commits: () => last - startSeq,
    checkpointStats: () => JSON.parse(JSON.stringify(ckpt)) as Record<CheckpointModeName, CheckpointStats>,
    async waitForCommits(n: number, timeoutMs = 15_000): Promise<number> {
      await waitFor(() => last - startSeq >= n, timeoutMs, `${n} commits`);
      return last;
    },
    async waitForSeq(seq: number, timeoutMs = 15_000): Promise<number> {
      await waitFor(() => last >= seq, timeoutMs, `seq ${seq}`);
      return last;
    },
    async waitForCheckpoints(modes: CheckpointModeName[], times = 1, timeoutMs = 15_000): Promise<void> {
      await waitFor(() => modes.every((m) => ckpt[m].runs >= times), timeoutMs, `checkpoints ${modes.join(',')} x${times}`);
    },
    async waitForIdle(timeoutMs = 15_000): Promise<number> {
      await waitFor(() => idleSeq !== undefined, timeoutMs, 'idle');
      return idleSeq ?? last;
    },
    async stop(timeoutMs = 15_000): Promise<WriterSummary> {
      if (!exitInfo) {
        try {
          if (process.platform === 'win32') {
            // Windows has no catchable SIGTERM (process.kill terminates): ask over IPC instead.
            child.send({ type: 'stop' });
          } else {
            process.kill(pid, 'SIGTERM');
          }
        } catch {
          // Already gone: fall through to the exit bookkeeping.
        }
        const timedOut = await Promise.race([
          exited.then(() => false),
          new Promise<boolean>((r) => setTimeout(() => r(true), timeoutMs).unref()),
        ]);
        if (timedOut) {
          child.kill('SIGKILL');
          await exited;
          throw new Error(`native writer ${pid} did not stop within ${timeoutMs} ms (killed). stderr: ${stderr}`);
        }
      }
      const code = exitInfo?.code ?? null;
      const signal = exitInfo?.signal ?? null;
      const base: WriterChildSummary = summary ?? {
        pid, startSeq, lastSeq: last, commits: last - startSeq, checkpoints: ckpt, vacuums: 0,
        pageCountMin: 0, pageCountMax: 0, finalPageCount: 0, freelistCount: 0, walBytesAtStop: 0, durationMs: 0, closed: false,
      };
      return {
        ...base,
        exitCode: code,
        signal,
        clean: code === 0 && errors.length === 0 && summary !== undefined && summary.closed,
        errors: [...errors],
        stderr,
      };
    },
    async kill(): Promise<WriterKillResult> {
      if (!exitInfo) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // Already gone.
        }
        await exited;
      }
      // 'exit' fired, so the child has been reaped; double-check nothing is left.
      if (isAlive(pid)) {
        throw new Error(`native writer ${pid} still alive after SIGKILL`);
      }
      return { pid, lastReportedSeq: last, signal: exitInfo?.signal ?? null };
    },
    running: () => exitInfo === undefined,
    stderr: () => stderr,
  };
  if (!exitInfo) {
    handleRef = handle;
    liveWriters.add(handle);
  }
  return handle;
}

/** SIGKILL every writer still running and wait until each is reaped. */
export async function killAllWriters(): Promise<number> {
  const handles = [...liveWriters];
  await Promise.all(handles.map((h) => h.kill()));
  return handles.length;
}

/**
 * Register a mocha afterEach hook that SIGKILLs any writer a test left running (e.g. when
 * an assertion failed before `stop()`). Call inside describe().
 */
export function useWriterCleanup(): void {
  afterEach(async () => {
    await killAllWriters();
  });
}
