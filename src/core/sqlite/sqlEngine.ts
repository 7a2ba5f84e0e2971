/**
 * The only module that touches sql.js (SQLite compiled to WASM). It loads once, lazily,
 * from the `sql-wasm.wasm` beside the bundle (dist/) or from node_modules in tests, and
 * passes `wasmBinary` so the loader never tries to fetch() a path
 * (raycast/extensions#2483).
 *
 * It only ever sees bytes we hand it (a snapshot image in memory). It never opens the
 * live database: WASM SQLite cannot take the file locks the running server relies on.
 */
import { errorMessage } from '../common/errors';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import initSqlJs from 'sql.js';
import { OFFSET_READ_VERSION, OFFSET_WRITE_VERSION } from './sqliteFormat';

type SqlJs = Awaited<ReturnType<typeof initSqlJs>>;

let engine: Promise<SqlJs> | undefined;

/**
 * sql.js is built with SQLITE_DISABLE_LFS: offsets are 32-bit, so images from 2 GiB on
 * cannot be opened. We stay well below, since the image is also held twice in memory
 * (ours, and the copy sql.js makes into its in-memory file system).
 */
export const MAX_CHECKABLE_BYTES = 1536 * 1024 * 1024;

/** dist/sql-wasm.wasm beside the bundle; from compiled tests (out/…), node_modules' copy up the tree. */
export function wasmPath(): string {
  const beside = join(__dirname, 'sql-wasm.wasm');
  if (existsSync(beside)) return beside;
  for (let dir = __dirname; ; dir = dirname(dir)) {
    const candidate = join(dir, 'node_modules', 'sql.js', 'dist', 'sql-wasm.wasm');
    if (existsSync(candidate)) return candidate;
    if (dirname(dir) === dir) break;
  }
  throw new Error(`sql-wasm.wasm not found beside ${__dirname}: the installation is incomplete; reinstall the extension or CLI.`);
}

/**
 * V8 runs WASM first with its baseline compiler (Liftoff) and recompiles the hot functions
 * with TurboFan on background threads. Our processes run one check each: on 2 cores the
 * recompiling costs more than it saves (first quick_check of a 50 MB image: 150–210 ms
 * with tier-up, 85 ms Liftoff-only; 5 MB: 47 → 34 ms; 500 MB: 727 → 628 ms; a 500 MB
 * integrity_check: the same either way). Set before the module is compiled; it only
 * changes which compiler V8 uses for WebAssembly in this process.
 */
function preferBaselineWasm(): void {
  try {
    setFlagsFromString('--liftoff-only');
  } catch {
    // an engine without the flag: the default tiering is fine too
  }
}

export function loadSqlEngine(): Promise<SqlJs> {
  if (!engine) preferBaselineWasm();
  engine ??= initSqlJs({ wasmBinary: readFileSync(wasmPath()) as unknown as ArrayBuffer }).catch((e: unknown) => {
    engine = undefined;
    throw e;
  });
  return engine;
}

import type { CheckMode } from '../common/checks';

export type { CheckMode } from '../common/checks';

export interface ImageCheck {
  ok: boolean;
  /** 'ok', or the first lines SQLite reported. */
  result: string;
  pageSize?: number;
  pages?: number;
  memories?: number;
  schemaVersion?: number;
  sqliteVersion: string;
}

/**
 * Emscripten's MEMFS copies a new file's content with `buffer.slice()` when the file is
 * written in one piece at position 0 — which is how sql.js's `new Database(bytes)` fills
 * its in-memory file. Answering `slice` with a view lets MEMFS use our bytes in place:
 * the image is held once instead of twice (600 MB instead of 1.2 GB for a 600 MB
 * database). Nothing writes to the file (the checks are read-only), and if a future
 * sql.js stops calling `slice`, it simply copies again.
 */
class AdoptableBytes extends Uint8Array {
  override slice(start?: number, end?: number): Uint8Array<ArrayBuffer> {
    // A plain Uint8Array view, not one of this subclass: MEMFS reads every page through
    // `contents.subarray()`, and a subclass instance makes each of those go through the
    // species constructor (a 50 MB quick_check spent more time there than in SQLite).
    return new Uint8Array(this.buffer as ArrayBuffer, this.byteOffset, this.length).subarray(start, end);
  }
}

/**
 * Runs `PRAGMA quick_check` or `integrity_check` on an in-memory image and reads a few
 * facts for the manifest. `image` is shared with sql.js during the check and left as it
 * was afterwards (bytes 18–19 are set to rollback mode while sql.js looks at a WAL-mode
 * image, so SQLite does not go looking for a `-wal` that cannot exist in its file system).
 */
export async function checkImage(image: Uint8Array, mode: CheckMode): Promise<ImageCheck> {
  const SQL = await loadSqlEngine();
  const saved = [image[OFFSET_WRITE_VERSION], image[OFFSET_READ_VERSION]];
  if (saved[0] === 2 || saved[1] === 2) {
    image[OFFSET_WRITE_VERSION] = 1;
    image[OFFSET_READ_VERSION] = 1;
  }
  let db: InstanceType<SqlJs['Database']> | undefined;
  try {
    db = new SQL.Database(new AdoptableBytes(image.buffer as ArrayBuffer, image.byteOffset, image.length));
    return runChecks(db, mode);
  } finally {
    db?.close(); // unlinks the in-memory file: sql.js lets go of the bytes
    image[OFFSET_WRITE_VERSION] = saved[0];
    image[OFFSET_READ_VERSION] = saved[1];
  }
}

function runChecks(db: InstanceType<SqlJs['Database']>, mode: CheckMode): ImageCheck {
  const one = (sql: string): unknown => {
    const r = db.exec(sql);
    return r.length && r[0].values.length ? r[0].values[0][0] : undefined;
  };
  const sqliteVersion = String(one('select sqlite_version()'));
  let lines: string[];
  try {
    const r = db.exec(mode === 'full' ? 'PRAGMA integrity_check(20)' : 'PRAGMA quick_check(20)');
    lines = r.length ? r[0].values.map((v) => String(v[0])) : ['no result'];
  } catch (e) {
    return { ok: false, result: errorMessage(e), sqliteVersion };
  }
  const ok = lines.length === 1 && lines[0] === 'ok';
  const check: ImageCheck = { ok, result: ok ? 'ok' : lines.slice(0, 5).join('; '), sqliteVersion };
  if (!ok) return check;
  const num = (sql: string): number | undefined => {
    try {
      const v = one(sql);
      return typeof v === 'number' ? v : undefined;
    } catch {
      return undefined; // table absent in a non-ai-memory database: the fact is simply unknown
    }
  };
  check.pageSize = num('PRAGMA page_size');
  check.pages = num('PRAGMA page_count');
  check.memories = num('SELECT count(*) FROM memories');
  check.schemaVersion = num('SELECT max(version) FROM schema_version');
  return check;
}
