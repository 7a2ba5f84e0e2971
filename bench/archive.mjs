#!/usr/bin/env node
// The page-dedup archive, measured: N hourly snapshots of a fixture database with an hour of
// an ai-memory server's writes between them (stores and recalls; an FTS5 merge now and then),
// kept with `--keep-last N --plain P`, against N plain copies (ai-memory's default: 48 hourly
// full copies). Times each backup and, separately, the archiving of the snapshot that left
// the newest P (`prune`, which archives exactly that one and collects packs), then a restore
// of the oldest archived snapshot against a restore of the newest plain one; peak RSS of each
// process (GNU time). Results → bench/results-archive.md (or --out).
//
//   node bench/archive.mjs                      500 MB fixture, 48 hours (the full run)
//   node bench/archive.mjs --size "50 MB"       the 50 MB fixture (what a shared 2-core machine manages quickly)
//   node bench/archive.mjs --hours 12 --stores 40 --recalls 400 --merge-every 12 --plain 3 --no-build
import { existsSync, mkdirSync, readdirSync, rmSync, statSync, writeFileSync, copyFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureFixture, SIZES } from './lib/fixtures.mjs';
import { run, timed } from './lib/proc.mjs';
import { fmt, mb as mbRaw, mbFromKiB, median, table } from './lib/stats.mjs';

const mb = (bytes) => fmt(mbRaw(bytes), 1);
const rssMb = (kib) => fmt(mbFromKiB(kib), 0);

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i === -1 ? dflt : args[i + 1];
};
if (args.includes('--help')) {
  console.log('node bench/archive.mjs [--size "500 MB"|"50 MB"|"5 MB"] [--hours 48] [--plain 3] [--stores 40] [--recalls 400] [--merge-every 12] [--out FILE] [--no-build] [--keep-work] [--cli FILE] [--cache-dir DIR]');
  process.exit(0);
}
const sizeLabel = opt('size', '500 MB');
const size = SIZES.find((s) => s.label === sizeLabel);
if (!size) throw new Error(`--size must be one of ${SIZES.map((s) => s.label).join(', ')}`);
const HOURS = Number(opt('hours', 48));
const PLAIN = Number(opt('plain', 3));
const STORES = Number(opt('stores', 40));
const RECALLS = Number(opt('recalls', 400));
const MERGE_EVERY = Number(opt('merge-every', 12));
const OUT = resolve(opt('out', join(REPO, 'bench', 'results-archive.md')));
const log = (s) => console.log(`[archive-bench] ${s}`);

if (!args.includes('--no-build')) {
  log('building (tsc, esbuild)');
  run('npx', ['tsc', '-p', '.'], { cwd: REPO });
  run(process.execPath, ['esbuild.mjs'], { cwd: REPO });
}
const CLI = opt('cli') ? resolve(opt('cli')) : join(REPO, 'dist', 'cli.js');
const SUPPORT = join(REPO, 'out', 'test', 'support', 'aiMemoryDb.js');
const cacheDir = opt('cache-dir') ? resolve(opt('cache-dir')) : join(REPO, 'bench', '.cache');
const fx = await ensureFixture({ repoRoot: REPO, cacheDir, size, log });

const work = join(cacheDir, `archive-work-${process.pid}`);
rmSync(work, { recursive: true, force: true });
mkdirSync(join(work, 'db'), { recursive: true });
const db = join(work, 'db', 'ai-memory.db');
copyFileSync(fx.db, db);
copyFileSync(fx.wal, `${db}-wal`);
const backups = join(work, 'backups');
const cleanup = () => {
  if (!args.includes('--keep-work')) rmSync(work, { recursive: true, force: true });
};
process.on('SIGINT', () => {
  cleanup();
  process.exit(130);
});

function duBytes(dir) {
  let n = 0;
  for (const d of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, d.name);
    n += d.isDirectory() ? duBytes(p) : statSync(p).size;
  }
  return n;
}

async function cli(argv, what) {
  const r = await timed([process.execPath, CLI, ...argv], { cwd: work });
  if (r.code !== 0) throw new Error(`${what} failed (exit ${r.code}): ${r.stderr}`);
  return { ...r, json: JSON.parse(r.stdout.trim().split('\n').at(-1)) };
}

const keep = ['--keep-last', String(HOURS)];
const rows = [];
let plainBytes = 0;
const t0 = Date.now();
for (let h = 0; h < HOURS; h++) {
  if (h > 0) {
    run(process.execPath, [join(REPO, 'bench', 'lib', 'hourly-change.cjs'), SUPPORT, db, JSON.stringify({ hour: h, stores: STORES, recalls: RECALLS, merge: MERGE_EVERY > 0 && h % MERGE_EVERY === 0, seed: 7 })]);
  }
  // The backup as a user's runs (the default check, `--verify quick`, and the facts; nothing
  // archived: --plain above the count), then the archiving alone. And the copy alone
  // (`--verify off`, into a scratch folder, dropped): the stricter yardstick.
  const b = await cli(['backup', '--db', db, '--to', backups, ...keep, '--plain', String(HOURS + 1), '--json'], 'backup');
  plainBytes += b.json.bytes;
  const copyDir = join(work, 'copy-only');
  const c = await cli(['backup', '--db', db, '--to', copyDir, '--keep', '1', '--verify', 'off', '--json'], 'backup --verify off');
  rmSync(copyDir, { recursive: true, force: true });
  const a = await cli(['prune', '--db', db, '--to', backups, ...keep, '--plain', String(PLAIN), '--json'], 'prune');
  const archived = a.json.archived ?? [];
  const row = { hour: h, backupMs: b.ms, backupRss: b.rssKB, copyMs: c.ms, copyRss: c.rssKB, archiveMs: a.ms, archiveRss: a.rssKB, archived: archived.length, dbBytes: b.json.bytes, folderBytes: duBytes(backups) };
  rows.push(row);
  log(`hour ${h + 1}/${HOURS}: db ${mb(row.dbBytes)} MB, backup ${(b.ms / 1000).toFixed(2)} s (copy alone ${(c.ms / 1000).toFixed(2)} s), archive ${archived.length ? `${(a.ms / 1000).toFixed(2)} s` : '-'} (${rssMb(a.rssKB)} MB RSS), folder ${mb(row.folderBytes)} MB`);
}

// Restore: the oldest and the newest archived snapshot vs the newest plain one, into a fresh
// path each. The oldest's pages are mostly in the base's packs; the newest's are spread over
// a pack per archiving run since (the harder read).
const list = (await cli(['list', '--db', db, '--to', backups, ...keep, '--json'], 'list')).json;
const oldest = list.filter((e) => e.archived).at(-1);
const newestArchived = list.find((e) => e.archived);
const newestPlain = list.find((e) => !e.archived);
const restores = [];
for (let round = 0; round < 3; round++) {
  for (const [label, e] of [['plain (newest)', newestPlain], ['archived (oldest)', oldest], ['archived (newest)', newestArchived]]) {
    if (!e) continue;
    const target = join(work, `restore-${round}-${label.replace(/\W+/g, '-')}`, 'ai-memory.db');
    mkdirSync(dirname(target), { recursive: true });
    const r = await cli(['restore', '--db', target, '--from', e.path, '--skip-integrity', '--json'], `restore ${label}`);
    restores.push({ label, ms: r.ms, rss: r.rssKB, round });
    rmSync(dirname(target), { recursive: true, force: true });
  }
}
const verifyAll = await timed([process.execPath, CLI, 'verify', '--from', backups, '--all', '--verify', 'quick', '--json'], { cwd: work });
const verifyOut = JSON.parse(verifyAll.stdout);

const archivedRows = rows.filter((r) => r.archived > 0);
const steady = archivedRows.slice(1); // the first archive writes the whole base
const ratio = median(steady.map((r) => r.archiveMs / r.backupMs));
const copyRatio = median(steady.map((r) => r.archiveMs / r.copyMs));
const restoreMs = (l) => median(restores.filter((r) => r.label === l).map((r) => r.ms));
const restoreRatio = restoreMs('archived (oldest)') / restoreMs('plain (newest)');
const restoreRatioNewest = restoreMs('archived (newest)') / restoreMs('plain (newest)');
const final = rows.at(-1);
const archiveBytes = duBytes(join(backups, '.ai-memory-archive'));
// The archive's parts: packs (the pages), page indexes (and the manifests beside them), bases (shared page lists).
const partBytes = (sub, suffix) => {
  const d = join(backups, '.ai-memory-archive', sub);
  return existsSync(d) ? readdirSync(d).filter((n) => n.endsWith(suffix)).reduce((a, n) => a + statSync(join(d, n)).size, 0) : 0;
};
const parts = { packs: partBytes('packs', '.pack'), indexes: partBytes('snapshots', '.idx'), bases: partBytes('bases', '.base'), manifests: partBytes('snapshots', '.manifest.json') };
const baseCount = existsSync(join(backups, '.ai-memory-archive', 'bases')) ? readdirSync(join(backups, '.ai-memory-archive', 'bases')).filter((n) => n.endsWith('.base')).length : 0;
const peakRss = Math.max(...rows.map((r) => r.archiveRss));
const restoreRss = Math.max(...restores.map((r) => r.rss));

const md = `# Page-dedup archive benchmark

${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC · \`node bench/archive.mjs${args.length ? ` ${args.filter((a) => a !== '--no-build').join(' ')}` : ''}\` · ${((Date.now() - t0) / 60000).toFixed(1)} min
· fixture ${size.label} (${mb(fx.meta.main.bytes)} MB main + ${mb(fx.meta.wal.bytes)} MB WAL)

${HOURS} hourly snapshots; between two, one hour of an ai-memory server's writes: ${STORES} stores and
${RECALLS} recalls (one transaction each)${MERGE_EVERY > 0 ? `, and every ${MERGE_EVERY}th hour an FTS5 segment merge` : ''}.
Kept with \`--keep-last ${HOURS} --plain ${PLAIN}\`: the newest ${PLAIN} plain, the rest in the archive.
Each hour, each its own process: \`backup --plain ${HOURS + 1}\` (as a user's backup runs: \`--verify quick\`,
the default, and the memories' facts; nothing archived), \`backup --verify off\` of the same state into a
scratch folder (the copy alone, dropped), then \`prune --plain ${PLAIN}\` (archives the one snapshot that left
the newest ${PLAIN}, collects packs). Page cache warm, as it is an hour after a backup on a machine with RAM to spare.

## Space

| | bytes on disk |
| --- | --- |
| ${HOURS} plain copies (ai-memory's default, \`--keep ${HOURS}\`) | ${mb(plainBytes)} MB |
| this folder: ${PLAIN} plain + ${HOURS - PLAIN} archived | **${mb(final.folderBytes)} MB** (archive ${mb(archiveBytes)} MB) |
| ratio | ${fmt(final.folderBytes / plainBytes, 3)} |

The archive's ${mb(archiveBytes)} MB: packs ${mb(parts.packs)} MB; page indexes ${mb(parts.indexes)} MB and bases (shared page lists) ${mb(parts.bases)} MB in ${baseCount} — ${fmt((100 * (parts.indexes + parts.bases)) / archiveBytes, 1)} % of the archive; manifests ${mb(parts.manifests)} MB.

## Time and memory

| | median s | max s | peak RSS MB |
| --- | --- | --- | --- |
| backup (default: \`--verify quick\` and the facts) | ${fmt(median(rows.map((r) => r.backupMs)) / 1000)} | ${fmt(Math.max(...rows.map((r) => r.backupMs)) / 1000)} | ${rssMb(Math.max(...rows.map((r) => r.backupRss)))} |
| the copy alone (\`backup --verify off\`) | ${fmt(median(rows.map((r) => r.copyMs)) / 1000)} | ${fmt(Math.max(...rows.map((r) => r.copyMs)) / 1000)} | ${rssMb(Math.max(...rows.map((r) => r.copyRss)))} |
| archiving the first snapshot (whole base written) | ${archivedRows[0] ? fmt(archivedRows[0].archiveMs / 1000) : '-'} | | ${archivedRows[0] ? rssMb(archivedRows[0].archiveRss) : '-'} |
| archiving one snapshot (steady state) | ${fmt(median(steady.map((r) => r.archiveMs)) / 1000)} | ${fmt(Math.max(...steady.map((r) => r.archiveMs)) / 1000)} | ${rssMb(peakRss)} |
| restore of the newest plain snapshot (\`--skip-integrity\`) | ${fmt(restoreMs('plain (newest)') / 1000)} | | ${rssMb(Math.max(...restores.filter((r) => r.label.startsWith('plain')).map((r) => r.rss)))} |
| restore of the oldest archived snapshot (\`--skip-integrity\`) | ${fmt(restoreMs('archived (oldest)') / 1000)} | | ${rssMb(Math.max(...restores.filter((r) => r.label === 'archived (oldest)').map((r) => r.rss)))} |
| restore of the newest archived snapshot (\`--skip-integrity\`) | ${fmt(restoreMs('archived (newest)') / 1000)} | | ${rssMb(Math.max(...restores.filter((r) => r.label === 'archived (newest)').map((r) => r.rss)))} |
| \`verify --all\` (${verifyOut.snapshots.length} snapshots rebuilt/hashed + quick_check, every pack) | ${fmt(verifyAll.ms / 1000)} | | ${rssMb(verifyAll.rssKB)} |

- archiving ÷ the backup that made it (median of the per-hour ratios, steady state): **${fmt(ratio)}** (target ≤ 1.0)
- archiving ÷ the copy alone (\`--verify off\`), the stricter yardstick: ${fmt(copyRatio)}
- restore archived ÷ restore plain: **${fmt(restoreRatio)}** for the oldest (target ≤ 1.5); ${fmt(restoreRatioNewest)} for the newest archived
- peak RSS of archiving: ${rssMb(peakRss)} MB; of restores: ${rssMb(restoreRss)} MB (target ≤ 100 MB)
- \`verify --all\`: ${verifyOut.status}${verifyOut.damaged_packs?.length ? `, ${verifyOut.damaged_packs.length} damaged packs` : ''}

Restores are timed with \`--skip-integrity\` (the sql.js check is the same for both kinds and is
timed by \`npm run bench\`); the archived restore still checks the whole rebuilt file against its
manifest's sha256 (and each page's hash when that fails, to name the damaged pack).

## Per hour

${table(
  ['hour', 'db MB', 'backup s', 'copy alone s', 'archive s', 'archive RSS MB', 'folder MB'],
  rows.map((r) => [r.hour + 1, mb(r.dbBytes), fmt(r.backupMs / 1000), fmt(r.copyMs / 1000), r.archived ? fmt(r.archiveMs / 1000) : '-', rssMb(r.archiveRss), mb(r.folderBytes)]),
  ['--:', '--:', '--:', '--:', '--:', '--:', '--:'],
)}
`;
writeFileSync(OUT, md);
log(`wrote ${OUT}`);
cleanup();
if (existsSync(work) && !args.includes('--keep-work')) rmSync(work, { recursive: true, force: true });
