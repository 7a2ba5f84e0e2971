/**
 * Minimal typed access to better-sqlite3 (the native SQLite used as the test reference).
 *
 * Why a hand-written interface: `@types/better-sqlite3` is not installed and we must not
 * edit package.json. An ambient `declare module 'better-sqlite3'` would clash with those
 * types the day someone adds them, so instead we `require()` the module and narrow it to
 * the small surface the test support code uses. Only methods we call are declared.
 */

/** Result of `Statement.run()`. */
export interface RunResult {
  changes: number;
  lastInsertRowid: number | bigint;
}

/** A prepared statement. `Row` is what `get`/`all` return (an unchecked cast, as in @types). */
export interface Statement<Row = Record<string, unknown>> {
  run(...params: unknown[]): RunResult;
  get(...params: unknown[]): Row | undefined;
  all(...params: unknown[]): Row[];
  /** Return only the first column of each row (so rows are `unknown` until the caller narrows them). */
  pluck(toggle?: boolean): Statement<unknown>;
}

/** A function wrapped by `NativeDb.transaction` (callable directly: BEGIN DEFERRED). */
export interface TransactionFn<A extends unknown[], R> {
  (...args: A): R;
  deferred(...args: A): R;
  immediate(...args: A): R;
  exclusive(...args: A): R;
}

/** An open better-sqlite3 connection. */
export interface NativeDb {
  readonly name: string;
  readonly open: boolean;
  readonly inTransaction: boolean;
  readonly readonly: boolean;
  prepare<Row = Record<string, unknown>>(sql: string): Statement<Row>;
  exec(sql: string): NativeDb;
  /** `simple: true` returns the first column of the first row. */
  pragma(source: string, options?: { simple?: boolean }): unknown;
  /** Wrap `fn` in BEGIN/COMMIT (ROLLBACK on throw). `.immediate` uses BEGIN IMMEDIATE. */
  transaction<A extends unknown[], R>(fn: (...args: A) => R): TransactionFn<A, R>;
  close(): NativeDb;
}

export interface NativeOpenOptions {
  /** Open with SQLITE_OPEN_READONLY. */
  readonly?: boolean;
  /** Fail instead of creating a new empty database. */
  fileMustExist?: boolean;
  /** Busy timeout in ms (better-sqlite3 default is 5000, like ai-memory's busy_timeout). */
  timeout?: number;
}

type NativeDbConstructor = new (filename: string, options?: NativeOpenOptions) => NativeDb;

// require() returns `any`; the cast is the single place where we trust the module shape.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const BetterSqlite3 = require('better-sqlite3') as NativeDbConstructor;

/** Open a database with better-sqlite3 (no pragmas applied). */
export function openNative(filename: string, options: NativeOpenOptions = {}): NativeDb {
  return new BetterSqlite3(filename, options);
}

/** Version of the SQLite library bundled in better-sqlite3. */
export function nativeSqliteVersion(): string {
  const db = openNative(':memory:');
  try {
    return String(db.prepare('SELECT sqlite_version()').pluck().get());
  } finally {
    db.close();
  }
}

/** Quote a string as an SQL literal ('' escaping), for the few statements that cannot bind. */
export function sqlString(value: string): string {
  return `'${value.replace(/'/g, "''")}'`;
}

/** Read an integer-valued pragma. */
export function pragmaInt(db: NativeDb, name: string): number {
  return Number(db.pragma(name, { simple: true }));
}
