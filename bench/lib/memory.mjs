// Inspect and diff (issue #10) on the largest fixture of the run: ours (dist/cli.js, sql.js)
// next to native sqlite3 running the same queries. Each command is a whole process; ours
// prints its answer in one piece, so its time to first result is its whole time.
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { run, settle, timed } from './proc.mjs';
import { max, median } from './stats.mjs';

const INSPECT_SQL = [
  'SELECT tier, count(*) FROM memories GROUP BY tier;',
  "SELECT CASE WHEN instr(namespace, '/') THEN substr(namespace, 1, instr(namespace, '/') - 1) ELSE namespace END AS top, count(*) FROM memories GROUP BY top;",
  'SELECT count(*) FROM memory_links;',
  'SELECT count(*) FROM archived_memories;',
  'SELECT id, title, namespace, tier, updated_at FROM memories ORDER BY updated_at DESC, id LIMIT 100;',
].join('\n');

const SEARCH_SQL = "SELECT count(*) FROM memories WHERE instr(lower(title), 'deploy') > 0 OR instr(lower(content), 'deploy') > 0 OR instr(lower(tags), 'deploy') > 0;\n"
  + "SELECT id, title, namespace, tier, updated_at FROM memories WHERE instr(lower(title), 'deploy') > 0 OR instr(lower(content), 'deploy') > 0 OR instr(lower(tags), 'deploy') > 0 ORDER BY updated_at DESC, id LIMIT 100;";

const DIFF_SQL = (other) => [
  `ATTACH '${other}' AS b;`,
  'SELECT n.id FROM b.memories n WHERE NOT EXISTS (SELECT 1 FROM main.memories m WHERE m.id = n.id);',
  "SELECT m.id, CASE WHEN EXISTS (SELECT 1 FROM b.archived_memories a WHERE a.id = m.id) THEN 'archived' ELSE 'deleted' END FROM main.memories m WHERE NOT EXISTS (SELECT 1 FROM b.memories n WHERE n.id = m.id);",
  'SELECT m.id FROM main.memories m JOIN b.memories n ON n.id = m.id WHERE m.title IS NOT n.title OR m.content IS NOT n.content OR m.tags IS NOT n.tags OR m.metadata IS NOT n.metadata OR m.namespace IS NOT n.namespace OR m.confidence IS NOT n.confidence OR m.source IS NOT n.source OR m.created_at IS NOT n.created_at OR m.tier IS NOT n.tier OR m.priority IS NOT n.priority;',
  'SELECT count(*) FROM (SELECT source_id, target_id, relation FROM b.memory_links EXCEPT SELECT source_id, target_id, relation FROM main.memory_links);',
  'SELECT count(*) FROM (SELECT source_id, target_id, relation FROM main.memory_links EXCEPT SELECT source_id, target_id, relation FROM b.memory_links);',
].join('\n');

/**
 * `fx`: the fixture (main + -wal); a snapshot of it by our backup is the "from" side, a
 * native `VACUUM INTO` copy the "to" side for the snapshot↔snapshot rows, and the fixture
 * itself (read through our WAL-consistent reader) for `diff --db`.
 */
export async function measureMemoryViews({ fx, workDir, node, cli, rounds, cold, log }) {
  const dir = join(workDir, 'memory');
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const made = await timed([node, cli, 'backup', '--db', fx.db, '--to', join(dir, 'snaps'), '--verify', 'quick', '--keep', '0', '--json']);
  if (made.code !== 0) throw new Error(`memory bench: backup failed: ${made.stderr}`);
  const snap = join(dir, 'snaps', JSON.parse(made.stdout.trim().split('\n').at(-1)).snapshot);
  const other = join(dir, 'other.db');
  // Native sqlite3 opening the fixture makes a -shm (and keeps it: no checkpoint on close, so
  // the fixture's -wal stays as generated). It is not ours: removed here, so the check at the
  // end proves that our commands (diff --db reads the live files) leave nothing beside them.
  const shmBefore = existsSync(`${fx.db}-shm`);
  run('sqlite3', ['-cmd', '.dbconfig no_ckpt_on_close on', fx.db, `VACUUM INTO '${other}'`]);
  if (!shmBefore) rmSync(`${fx.db}-shm`, { force: true });
  const commands = [
    { id: 'ours.inspect', label: 'ours: `inspect --from SNAP --json` (counts by tier/namespace, links, archived, digest, first page of 100)', argv: [node, cli, 'inspect', '--from', snap, '--json', '--limit', '100'] },
    { id: 'native.inspect', label: 'native `sqlite3`: the same counts and first page (no digest)', argv: ['sqlite3', '-readonly', snap, INSPECT_SQL] },
    { id: 'ours.search', label: 'ours: `inspect --search deploy --limit 100`', argv: [node, cli, 'inspect', '--from', snap, '--json', '--search', 'deploy', '--limit', '100'] },
    { id: 'native.search', label: 'native `sqlite3`: the same search (count + first 100)', argv: ['sqlite3', '-readonly', snap, SEARCH_SQL] },
    { id: 'ours.diff', label: 'ours: `diff --from SNAP --to COPY --json`', argv: [node, cli, 'diff', '--from', snap, '--to', other, '--json'] },
    { id: 'native.diff', label: 'native `sqlite3`: added, removed (deleted/archived), edited, links ±', argv: ['sqlite3', '-readonly', snap, DIFF_SQL(other)] },
    { id: 'ours.diffdb', label: 'ours: `diff --from SNAP --db F` (the live database, main + WAL, read consistently)', argv: [node, cli, 'diff', '--from', snap, '--db', fx.db, '--json'] },
  ];
  const results = Object.fromEntries(commands.map((c) => [c.id, []]));
  for (let round = 1; round <= rounds; round++) {
    for (const c of commands) {
      await settle({ cold, warmFiles: [snap, other] });
      const r = await timed(c.argv);
      if (r.code !== 0) throw new Error(`${c.id} failed (exit ${r.code}): ${r.stderr.slice(0, 500)}`);
      results[c.id].push({ ms: r.ms, rssKB: r.rssKB });
    }
    log(`  memory round ${round}/${rounds}: ${commands.map((c) => `${c.id} ${(results[c.id].at(-1).ms / 1000).toFixed(2)} s`).join(', ')}`);
  }
  for (const f of [`${fx.db}-shm`]) if (existsSync(f)) throw new Error(`memory bench left ${f} beside the fixture`);
  rmSync(dir, { recursive: true, force: true });
  return {
    size: fx.meta.main.bytes,
    memories: fx.meta.memories,
    rounds,
    rows: commands.map((c) => ({ id: c.id, label: c.label, ms: median(results[c.id].map((x) => x.ms)), minMs: Math.min(...results[c.id].map((x) => x.ms)), maxMs: Math.max(...results[c.id].map((x) => x.ms)), rssKB: max(results[c.id].map((x) => x.rssKB)) })),
  };
}
