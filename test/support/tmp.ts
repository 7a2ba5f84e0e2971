/**
 * Unique temporary directories for tests, removed after each test.
 *
 * Usage in a mocha file:
 *
 *     const tmp = useTempDir();           // at describe() level
 *     it('...', () => { const p = tmp.join('ai-memory.db'); ... });
 *
 * Set AIMB_KEEP_TMP=1 to keep the directories (their paths are printed) when debugging.
 * Directories that a hook could not remove (e.g. the test process is exiting) are removed
 * by a process 'exit' handler, so a failing run does not litter os.tmpdir().
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

const created = new Set<string>();
let exitHookInstalled = false;

function keepRequested(): boolean {
  return process.env.AIMB_KEEP_TMP === '1';
}

function installExitHook(): void {
  if (exitHookInstalled) {
    return;
  }
  exitHookInstalled = true;
  process.on('exit', () => {
    if (keepRequested()) {
      return;
    }
    for (const dir of created) {
      try {
        fs.rmSync(dir, { recursive: true, force: true });
      } catch {
        // Best effort at exit: nothing sensible to do with the error here.
      }
    }
  });
}

/** Create a fresh, unique directory under os.tmpdir(). */
export function makeTempDir(prefix = 'aimb-test-'): string {
  installExitHook();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  created.add(dir);
  return dir;
}

/** Remove a directory made by makeTempDir (no-op when AIMB_KEEP_TMP=1). */
export function removeTempDir(dir: string): void {
  if (keepRequested()) {
    console.log(`[tmp] kept ${dir}`);
    return;
  }
  // maxRetries covers transient EBUSY/ENOTEMPTY (e.g. Windows virus scanners).
  fs.rmSync(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 50 });
  created.delete(dir);
}

/** Run `fn` with a temporary directory that is removed afterwards, even on failure. */
export async function withTempDir<T>(fn: (dir: string) => T | Promise<T>, prefix?: string): Promise<T> {
  const dir = makeTempDir(prefix);
  try {
    return await fn(dir);
  } finally {
    removeTempDir(dir);
  }
}

/** Synchronous variant of {@link withTempDir}. */
export function withTempDirSync<T>(fn: (dir: string) => T, prefix?: string): T {
  const dir = makeTempDir(prefix);
  try {
    return fn(dir);
  } finally {
    removeTempDir(dir);
  }
}

export interface TempDirHandle {
  /** The current test's directory (throws outside a test). */
  readonly path: string;
  /** path.join(current dir, ...parts). */
  join(...parts: string[]): string;
}

/**
 * Register mocha beforeEach/afterEach hooks giving every test its own directory.
 * Call it inside a describe() callback (or at file top level for all tests of the file).
 */
export function useTempDir(prefix = 'aimb-test-'): TempDirHandle {
  let current: string | undefined;
  beforeEach(() => {
    current = makeTempDir(prefix);
  });
  afterEach(() => {
    if (current !== undefined) {
      const dir = current;
      current = undefined;
      removeTempDir(dir);
    }
  });
  return {
    get path(): string {
      if (current === undefined) {
        throw new Error('useTempDir: no test is running (the directory exists only inside a test)');
      }
      return current;
    },
    join(...parts: string[]): string {
      return path.join(this.path, ...parts);
    },
  };
}
