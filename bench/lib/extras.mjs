// The measurements beside backup and restore: process start, sql.js init, catalog load.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { run, settle, timed } from './proc.mjs';
import { median } from './stats.mjs';

/** A compiled core module in a checkout: src/core/<room>/<file> since the core was grouped in folders, src/core/<file> before (for before/after rounds against older commits). */
function coreModule(root, room, file) {
  const grouped = join(root, 'out', 'src', 'core', room, file);
  return existsSync(grouped) ? grouped : join(root, 'out', 'src', 'core', file);
}

const require = createRequire(import.meta.url);

async function probe(argv, cold) {
  await settle({ cold });
  const r = await timed(argv);
  if (r.code !== 0) throw new Error(`${argv.join(' ')} failed: ${r.stderr}`);
  return { ...JSON.parse(r.stdout.trim().split('\n').at(-1) || '{}'), processMs: r.ms, rssKB: r.rssKB };
}

async function wall(argv, cold) {
  await settle({ cold });
  const r = await timed(argv);
  if (r.code !== 0) throw new Error(`${argv.join(' ')} failed: ${r.stderr}`);
  return r.ms;
}

/** `node dist/cli.js --version` and `node -e 0`: what any of our commands pays before doing anything. */
export async function measureProcessStart({ repoRoot, runs, cold }) {
  const out = { cli: [], node: [], cliCold: [] };
  const cli = [process.execPath, join(repoRoot, 'dist', 'cli.js'), '--version'];
  for (let i = 0; i < runs; i++) {
    out.node.push(await wall([process.execPath, '-e', '0'], false));
    out.cli.push(await wall(cli, false));
    if (cold) out.cliCold.push(await wall(cli, true));
  }
  return { nodeMs: median(out.node), cliMs: median(out.cli), cliColdMs: median(out.cliCold), runs };
}

export async function measureSqlJsInit({ repoRoot, runs, cold }) {
  const argv = [process.execPath, join(repoRoot, 'bench', 'lib', 'probe-sqljs.cjs'), coreModule(repoRoot, 'sqlite', 'sqlEngine.js')];
  const warm = [];
  for (let i = 0; i < runs; i++) warm.push(await probe(argv, false));
  const coldRun = cold ? await probe(argv, true) : undefined;
  return {
    runs,
    initMs: median(warm.map((r) => r.initMs)),
    initMsAll: warm.map((r) => r.initMs),
    requireMs: median(warm.map((r) => r.requireMs)),
    coldInitMs: coldRun?.initMs,
  };
}

/** A folder of `count` snapshots (small real SQLite files) with realistic manifests, cached. */
export function ensureCatalogFolder({ repoRoot, cacheDir, count = 1000 }) {
  const dir = join(cacheDir, `catalog-${count}`);
  const done = join(dir, '.complete');
  if (existsSync(done)) return dir;
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const { serializeManifest, rfc3339, OUR_TOOL } = require(coreModule(repoRoot, 'store', 'manifest.js'));
  const { formatStamp, snapshotName, manifestNameFor } = require(coreModule(repoRoot, 'store', 'naming.js'));
  const { TOOL_VERSION } = require(coreModule(repoRoot, 'common', 'version.js'));
  const tpl = join(dir, '.template.db');
  run('sqlite3', [tpl, 'PRAGMA page_size=4096; CREATE TABLE memories(id TEXT PRIMARY KEY, content TEXT); INSERT INTO memories VALUES (1, "x");']);
  const bytes = readFileSync(tpl);
  rmSync(tpl);
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  const t0 = Date.UTC(2026, 0, 1);
  for (let i = 0; i < count; i++) {
    const created = new Date(t0 + i * 3_600_000);
    const name = snapshotName(formatStamp(created));
    writeFileSync(join(dir, name), bytes);
    const manifest = {
      snapshot: name,
      sha256,
      bytes: bytes.length,
      source_db: '/home/user/.local/share/ai-memory/ai-memory.db',
      version: TOOL_VERSION,
      created_at: rfc3339(new Date(created.getTime() + 1234)),
      tool: `${OUR_TOOL} ${TOOL_VERSION}`,
      integrity: 'ok',
      check: 'quick',
      page_size: 4096,
      pages: bytes.length / 4096,
      memories: 20_000 + i * 7,
      schema_version: 28,
      wal_frames: 1000 + (i % 500),
      sqlite: '3.49.1',
    };
    writeFileSync(join(dir, manifestNameFor(name)), serializeManifest(manifest));
  }
  writeFileSync(done, `${count}\n`);
  return dir;
}

export async function measureCatalog({ repoRoot, cacheDir, runs, cold, repeats = 20, baselineDir }) {
  const dir = ensureCatalogFolder({ repoRoot, cacheDir });
  const argvFor = (root) => [process.execPath, join(repoRoot, 'bench', 'lib', 'probe-catalog.cjs'), coreModule(root, 'store', 'catalog.js'), dir, String(repeats)];
  const argv = argvFor(repoRoot);
  const inProcess = [];
  const base = [];
  for (let i = 0; i < runs; i++) {
    inProcess.push(await probe(argv, false));
    if (baselineDir) base.push(await probe(argvFor(baselineDir), false));
  }
  if (inProcess.some((r) => r.count !== 1000 || r.manifestsOk !== 1000)) throw new Error(`catalog probe saw ${inProcess[0].count} snapshots / ${inProcess[0].manifestsOk} manifests ok`);
  const coldInProcess = cold ? await probe(argv, true) : undefined;
  const cliArgv = [process.execPath, join(repoRoot, 'dist', 'cli.js'), 'list', '--to', dir, '--json'];
  const cli = [];
  for (let i = 0; i < runs; i++) {
    await settle({ cold: false });
    const r = await timed(cliArgv);
    if (r.code !== 0) throw new Error(`list failed: ${r.stderr}`);
    cli.push(r);
  }
  let cliCold;
  if (cold) {
    await settle({ cold: true });
    cliCold = await timed(cliArgv);
  }
  return {
    dir,
    runs,
    repeats,
    firstMs: median(inProcess.map((r) => r.firstMs)),
    firstMsAll: inProcess.map((r) => r.firstMs),
    repeatMs: median(inProcess.flatMap((r) => r.repeatMs)),
    coldFirstMs: coldInProcess?.firstMs,
    cliMs: median(cli.map((r) => r.ms)),
    cliRssKB: Math.max(...cli.map((r) => r.rssKB)),
    cliColdMs: cliCold?.ms,
    baseline: baselineDir ? { firstMs: median(base.map((r) => r.firstMs)), repeatMs: median(base.flatMap((r) => r.repeatMs)) } : undefined,
  };
}
