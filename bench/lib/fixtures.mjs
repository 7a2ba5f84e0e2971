// ai-memory-shaped databases with a live WAL, generated once and cached under
// bench/.cache/fixtures/<key>/ (the key holds every generation parameter).
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync, createReadStream } from 'node:fs';
import { join } from 'node:path';
import { run } from './proc.mjs';

/**
 * The sizes. Every fixture's WAL holds its last 2,000 commits, two kinds of what
 * ai-memory's server writes:
 * - stores (2 % of the memories): insert a memory (FTS5 trigger, 8 indexes) and touch an
 *   older one (access_count: the FTS5 update trigger re-indexes it), ~25 pages of WAL each;
 * - recalls (the rest of the 2,000): touch one memory, ~10 pages of WAL each.
 * So the WAL is ~80 MB whatever the size: 16× the 5 MB main file, 40 % of the 500 MB one.
 */
export const WAL_COMMITS = 2000;
export const SIZES = [
  { label: '5 MB', memories: 900, walCommits: 18 },
  { label: '50 MB', memories: 9000, walCommits: 180 },
  { label: '500 MB', memories: 92000, walCommits: 1840 },
  // Above the 1.5 GiB the checker could open before it read pages lazily (issue 12).
  { label: '1.9 GB', memories: 350000, walCommits: 1840 },
].map((s) => ({ ...s, recalls: WAL_COMMITS - s.walCommits }));

export const FIXTURE_VERSION = 2;
const SEED = 20261124;
const EMBEDDING_DIM = 384;

export function fixtureKey(size) {
  return `aimem-v${FIXTURE_VERSION}-m${size.memories}-wal${size.walCommits}r${size.recalls}-e${EMBEDDING_DIM}-s${SEED}`;
}

async function sha256File(path) {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) h.update(chunk);
  return h.digest('hex');
}

function stamp(path) {
  const st = statSync(path);
  return { bytes: st.size, mtimeMs: st.mtimeMs };
}

/** Throws unless the fixture's files are exactly as generated (size and mtime; sha256 with `deep`). */
export async function checkFixture(fx, { deep = false } = {}) {
  for (const [path, want] of [[fx.db, fx.meta.main], [fx.wal, fx.meta.wal]]) {
    const got = stamp(path);
    if (got.bytes !== want.bytes || got.mtimeMs !== want.mtimeMs) {
      throw new Error(`fixture ${path} changed (size ${got.bytes}/${want.bytes}, mtime ${got.mtimeMs}/${want.mtimeMs}); delete ${fx.dir} to regenerate`);
    }
    if (deep && (await sha256File(path)) !== want.sha256) throw new Error(`fixture ${path} changed (sha256); delete ${fx.dir} to regenerate`);
  }
  for (const extra of [`${fx.db}-shm`, `${fx.db}-journal`]) {
    if (existsSync(extra)) throw new Error(`unexpected ${extra} beside the fixture`);
  }
}

/** The cached fixture for `size`, generated (in a child process) when missing. */
export async function ensureFixture({ repoRoot, cacheDir, size, log }) {
  const key = fixtureKey(size);
  const dir = join(cacheDir, 'fixtures', key);
  const db = join(dir, 'ai-memory.db');
  const metaFile = join(dir, 'meta.json');
  if (existsSync(metaFile)) {
    const fx = { key, dir, db, wal: `${db}-wal`, meta: JSON.parse(readFileSync(metaFile, 'utf8')), cached: true };
    await checkFixture(fx);
    return fx;
  }
  log(`generating fixture ${key} (cached in ${dir})`);
  rmSync(dir, { recursive: true, force: true });
  const tmp = `${dir}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  const t0 = Date.now();
  const out = run(process.execPath, [
    join(repoRoot, 'bench', 'lib', 'gen-fixture.cjs'),
    join(repoRoot, 'out', 'test', 'support', 'aiMemoryDb.js'),
    join(tmp, 'ai-memory.db'),
    JSON.stringify({ memories: size.memories, leaveWalCommits: size.walCommits, tailRecalls: size.recalls, seed: SEED, embeddingDim: EMBEDDING_DIM, batchSize: 500 }),
  ]);
  const gen = JSON.parse(out.trim().split('\n').at(-1));
  renameSync(tmp, dir);
  const meta = {
    key,
    ...gen,
    main: { ...stamp(db), sha256: await sha256File(db) },
    wal: { ...stamp(`${db}-wal`), sha256: await sha256File(`${db}-wal`) },
    generatedAt: new Date().toISOString(),
    generationSeconds: (Date.now() - t0) / 1000,
  };
  writeFileSync(metaFile, `${JSON.stringify(meta, null, 2)}\n`);
  log(`  ${(meta.main.bytes / 1e6).toFixed(1)} MB + WAL ${(meta.wal.bytes / 1e6).toFixed(1)} MB in ${meta.generationSeconds.toFixed(1)} s`);
  return { key, dir, db, wal: `${db}-wal`, meta, cached: false };
}
