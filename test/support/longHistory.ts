/**
 * Months of hourly backups, simulated: the real CLI (cliBundle()) as a separate process per
 * run, its clock set by Debian's libfaketime to the hour being simulated, a real ai-memory
 * database written between runs by native SQLite (better-sqlite3, a connection kept open like
 * the server's), a tiered policy with `--plain 3`, so the archive, its collection, repacking
 * and retention run thousands of times.
 *
 * What it checks: every snapshot a backup reports is recorded (name → sha256 of its bytes, read
 * from the plain file right after it was written); a snapshot leaves the folder only when a run
 * said it pruned it; the set a backup keeps is the one restic's rules give
 * (`applyRetention` over the snapshots we know are there); at checkpoints `list` names exactly
 * those, each with its recorded sha256, every one of them materializes (or, plain, reads) to its
 * recorded bytes, and `verify --all` finds nothing wrong. Along the way: a VACUUM now and then,
 * a schema migration, a page-size change, a restore of an old archived snapshot (the database
 * goes back in time, then moves on), a second database backing up into the same folder, a
 * `prune` by hand with another policy, a `pull` from a mirror folder into the same folder.
 *
 * It measures growth as it goes: folder size, packs, bases, index bytes, the proven-packs
 * record, and time and peak RSS (`/usr/bin/time`) of backup, list and verify --all.
 */
import { spawn } from 'child_process';
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { applyRetention, type RetentionPolicy } from '../../src/core/store/retention';
import { createAiMemoryDb, generateMemory, openLikeServer } from './aiMemoryDb';
import { trackChild } from './procs';
import { cliBundle } from './reliability';
import { type NativeDb } from './sqlite';
import { Prng } from './textGen';

export const LIBFAKETIME = '/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1';
export const GNU_TIME = '/usr/bin/time';

export interface LongHistoryOptions {
  dir: string;
  /** Hourly backups of the first database. */
  hours: number;
  /** Full checks (list, materialize every kept snapshot, verify --all) every this many hours. */
  checkEvery: number;
  /** Memories in the database at the start (default 600: a few MB). */
  memories?: number;
  seed?: number;
  /** Called with each line of progress (default: nothing). */
  log?: (line: string) => void;
  /** Stop at the first problem (default true). */
  stopAtFirst?: boolean;
}

export interface GrowthRow {
  hour: number;
  kept: number;
  archived: number;
  folderBytes: number;
  packs: number;
  packBytes: number;
  bases: number;
  baseBytes: number;
  idxBytes: number;
  provenBytes: number;
  backupMs: number;
  backupRssKb: number;
  listMs: number;
  listRssKb: number;
  verifyMs: number;
  verifyRssKb: number;
}

export interface LongHistoryReport {
  hours: number;
  backups: number;
  skipped: number;
  checks: number;
  materialized: number;
  problems: string[];
  growth: GrowthRow[];
  events: string[];
  /** Backup runs' times (ms) in order, and peak RSS (KiB). */
  backupMs: number[];
  backupRssKb: number[];
}

export const POLICY: RetentionPolicy = { hourly: 24, daily: 30, weekly: 8, monthly: 12 };
const POLICY_FLAGS = ['--keep-hourly', '24', '--keep-daily', '30', '--keep-weekly', '8', '--keep-monthly', '12', '--plain', '3'];
const SECOND_DB_FLAGS = ['--keep-last', '6', '--plain', '2'];
const HAND_PRUNE_POLICY: RetentionPolicy = { hourly: 12, daily: 10, weekly: 4, monthly: 12 };
const HAND_PRUNE_FLAGS = ['--keep-hourly', '12', '--keep-daily', '10', '--keep-weekly', '4', '--keep-monthly', '12', '--plain', '3'];
const T0 = Date.UTC(2026, 0, 5, 0, 0, 0); // a Monday

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
  rssKb: number;
}

function fakeStamp(ms: number): string {
  return `@${new Date(ms).toISOString().slice(0, 19).replace('T', ' ')}`;
}

/** `node cli …` under /usr/bin/time, its clock at `atMs` (libfaketime, ticking from there). */
export async function runAt(args: string[], atMs: number, cwd: string): Promise<Run> {
  const cli = await cliBundle();
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: cwd, LANG: 'C', TZ: 'UTC', LD_PRELOAD: LIBFAKETIME, FAKETIME: fakeStamp(atMs), FAKETIME_DONT_FAKE_MONOTONIC: '1' };
  const t0 = performance.now();
  const child = spawn(GNU_TIME, ['-f', 'AIMB_RSS_KB=%M', process.execPath, cli, ...args], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
  trackChild(child, `cli ${args[0]}`);
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
  child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  const timer = setTimeout(() => child.kill('SIGKILL'), 300_000);
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (c) => resolve(c));
  });
  clearTimeout(timer);
  const ms = performance.now() - t0;
  const m = /AIMB_RSS_KB=(\d+)\s*$/.exec(stderr);
  if (m) stderr = stderr.slice(0, m.index);
  stderr = stderr.replace(/^Command exited with non-zero status \d+\n?/m, '');
  return { code, stdout, stderr, ms, rssKb: m ? Number(m[1]) : 0 };
}

const sha256 = (f: string): string => createHash('sha256').update(fs.readFileSync(f)).digest('hex');

function nameTime(name: string): number {
  const m = /^ai-memory-(\d{4})-(\d\d)-(\d\d)T(\d\d)(\d\d)(\d\d)Z\.db$/.exec(name);
  if (!m) throw new Error(`not a snapshot name: ${name}`);
  return Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6]);
}

function treeBytes(dir: string): { bytes: number; files: number } {
  let bytes = 0;
  let files = 0;
  if (!fs.existsSync(dir)) return { bytes, files };
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) {
      const t = treeBytes(p);
      bytes += t.bytes;
      files += t.files;
    } else if (e.isFile()) {
      bytes += fs.statSync(p).size;
      files++;
    }
  }
  return { bytes, files };
}

/** One database we back up: its file, its open connection, what we know of its snapshots. */
interface Tracked {
  label: string;
  db: string;
  conn?: NativeDb;
  /** Every snapshot ever reported for it: name → sha256 of its bytes when it was made. */
  made: Map<string, string>;
  /** The snapshots that should be in the folder now. */
  present: Set<string>;
  nextOrdinal: number;
}

export async function runLongHistory(opts: LongHistoryOptions): Promise<LongHistoryReport> {
  const log = opts.log ?? (() => undefined);
  const stopAtFirst = opts.stopAtFirst ?? true;
  const rng = new Prng(opts.seed ?? 7);
  const dir = opts.dir;
  const backups = path.join(dir, 'backups');
  const mirror = path.join(dir, 'mirror');
  const work = path.join(dir, 'work');
  fs.mkdirSync(work, { recursive: true });
  fs.mkdirSync(mirror, { recursive: true });
  const report: LongHistoryReport = { hours: opts.hours, backups: 0, skipped: 0, checks: 0, materialized: 0, problems: [], growth: [], events: [], backupMs: [], backupRssKb: [] };
  const problem = (s: string): void => {
    report.problems.push(s);
    log(`PROBLEM ${s}`);
    if (stopAtFirst) throw new Error(`long history: ${s}`);
  };
  const event = (hour: number, s: string): void => {
    report.events.push(`hour ${hour}: ${s}`);
    log(`hour ${hour}: ${s}`);
  };

  const memories = opts.memories ?? 600;
  const first: Tracked = { label: 'db1', db: path.join(dir, 'ai-memory.db'), made: new Map(), present: new Set(), nextOrdinal: memories };
  createAiMemoryDb(first.db, { memories, seed: 11, embeddingDim: 384, linksPerMemory: 0.3 });
  const second: Tracked = { label: 'db2', db: path.join(dir, 'other', 'ai-memory.db'), made: new Map(), present: new Set(), nextOrdinal: 150 };
  fs.mkdirSync(path.dirname(second.db), { recursive: true });
  createAiMemoryDb(second.db, { memories: 150, seed: 12, embeddingDim: 0 });
  const open = (t: Tracked): NativeDb => (t.conn ??= openLikeServer(t.db));
  const close = (t: Tracked): void => {
    t.conn?.close();
    t.conn = undefined;
  };

  // Events, as fractions of the run.
  const at = (f: number): number => Math.max(2, Math.floor(opts.hours * f));
  const vacuums = new Set([at(0.15), at(0.33), at(0.52), at(0.71), at(0.9)]);
  const migrateAt = at(0.4);
  const pageSizeAt = at(0.6);
  const restoreAt = at(0.45);
  const secondFrom = at(0.2);
  const handPruneAt = at(0.75);
  const pushAt = at(0.3);
  const pullAt = at(0.85);
  let migrated = false;

  const insert = (t: Tracked, n: number): void => {
    const c = open(t);
    const stmt = c.prepare(
      `INSERT INTO memories (id, tier, namespace, title, content, tags, priority, confidence, source, access_count, created_at, updated_at, last_accessed_at, expires_at, metadata, embedding, embedding_dim)
       VALUES (@id, @tier, @namespace, @title, @content, @tags, @priority, @confidence, @source, @access_count, @created_at, @updated_at, @last_accessed_at, @expires_at, @metadata, @embedding, @embedding_dim)`,
    );
    c.transaction(() => {
      for (let i = 0; i < n; i++) stmt.run(generateMemory(t === first ? 11 : 12, t.nextOrdinal++, t === first ? 384 : 0) as unknown as Record<string, unknown>);
    })();
  };
  /** An hour of use: some new memories, recalls, edits, deletes; quiet hours change nothing. */
  const mutate = (t: Tracked, hour: number): void => {
    const c = open(t);
    const hod = hour % 24;
    if (hod < 6 && rng.chance(0.8)) return; // night: nothing, the backup is skipped ("unchanged")
    insert(t, rng.int(0, 4));
    c.transaction(() => {
      for (let i = rng.int(0, 8); i > 0; i--) c.prepare('UPDATE memories SET access_count = access_count + 1, last_accessed_at = ? WHERE rowid = (SELECT rowid FROM memories ORDER BY random() LIMIT 1)').run(new Date(T0 + hour * 3600_000).toISOString());
      for (let i = rng.int(0, 2); i > 0; i--) c.prepare("UPDATE memories SET content = content || ' (edited)', updated_at = ? WHERE rowid = (SELECT rowid FROM memories ORDER BY random() LIMIT 1)").run(new Date(T0 + hour * 3600_000).toISOString());
      if (rng.chance(0.3)) c.prepare('DELETE FROM memories WHERE rowid = (SELECT rowid FROM memories ORDER BY random() LIMIT 1)').run();
      if (migrated && t === first) c.prepare('INSERT INTO longrun_notes (hour, note) VALUES (?, ?)').run(hour, `hour ${hour}`);
    })();
    // Keep the database a few MB: drop the oldest when it grows past 1.5× the start.
    const count = (c.prepare('SELECT count(*) AS n FROM memories').get() as { n: number }).n;
    if (count > memories * 1.5) c.prepare('DELETE FROM memories WHERE rowid IN (SELECT rowid FROM memories ORDER BY rowid LIMIT ?)').run(count - memories);
  };

  const policyFor = (t: Tracked): RetentionPolicy => (t === first ? POLICY : { last: 6 });
  const flagsFor = (t: Tracked): string[] => (t === first ? POLICY_FLAGS : SECOND_DB_FLAGS);

  /** What restic's rules keep of `names` (the newest and the one just written protected). */
  const expectedKeep = (names: Iterable<string>, policy: RetentionPolicy, justWritten?: string): Set<string> => {
    const items = [...names].map((name) => ({ name, time: nameTime(name) }));
    items.sort((a, b) => b.time - a.time);
    const protect = new Map<string, string>();
    if (items.length) protect.set(items[0].name, 'newest');
    if (justWritten) protect.set(justWritten, 'just written');
    return new Set(applyRetention(items, policy, { protect, zone: 'UTC' }).filter((d) => d.keep).map((d) => d.item.name));
  };

  const backup = async (t: Tracked, hour: number, atMs: number): Promise<void> => {
    const r = await runAt(['backup', '--db', t.db, '--to', backups, ...flagsFor(t), '--json'], atMs, work);
    report.backupMs.push(r.ms);
    report.backupRssKb.push(r.rssKb);
    if (r.code !== 0) return problem(`${t.label} hour ${hour}: backup exit ${r.code}: ${r.stderr.trim()} ${r.stdout.trim()}`);
    const out = JSON.parse(r.stdout.trim()) as { status: string; snapshot: string; sha256: string; pruned?: string[]; archived?: string[]; warnings?: string[] };
    if (out.warnings?.length) log(`${t.label} hour ${hour} warnings: ${out.warnings.join(' | ')}`);
    const before = new Set(t.present);
    if (out.status === 'created') {
      report.backups++;
      const file = path.join(backups, out.snapshot);
      const plainSha = fs.existsSync(file) ? sha256(file) : undefined;
      if (plainSha !== out.sha256) problem(`${t.label} hour ${hour}: ${out.snapshot} reported sha256 ${out.sha256}, its file has ${plainSha}`);
      if (t.made.has(out.snapshot) && t.made.get(out.snapshot) !== out.sha256) problem(`${t.label} hour ${hour}: ${out.snapshot} made again with other bytes`);
      t.made.set(out.snapshot, out.sha256);
      t.present.add(out.snapshot);
    } else report.skipped++;
    for (const p of out.pruned ?? []) {
      const name = path.basename(p);
      if (!t.present.has(name)) problem(`${t.label} hour ${hour}: pruned ${name}, which we did not know was there`);
      t.present.delete(name);
    }
    const want = expectedKeep(t.present.size ? [...before, ...(out.status === 'created' ? [out.snapshot] : [])] : [], policyFor(t), out.status === 'created' ? out.snapshot : undefined);
    const got = t.present;
    const lost = [...want].filter((n) => !got.has(n));
    const extra = [...got].filter((n) => !want.has(n));
    if (lost.length) problem(`${t.label} hour ${hour}: the policy keeps ${lost.join(', ')} but the backup pruned it`);
    if (extra.length) problem(`${t.label} hour ${hour}: the policy drops ${extra.join(', ')} but the backup kept it`);
  };

  const growthRow = async (hour: number, kept: number, archived: number, listRun: Run, verifyRun: Run): Promise<GrowthRow> => {
    const arch = path.join(backups, '.ai-memory-archive');
    const packs = treeBytes(path.join(arch, 'packs'));
    const bases = treeBytes(path.join(arch, 'bases'));
    const snaps = fs.existsSync(path.join(arch, 'snapshots')) ? fs.readdirSync(path.join(arch, 'snapshots')).filter((f) => f.endsWith('.idx')) : [];
    const idxBytes = snaps.reduce((s, f) => s + fs.statSync(path.join(arch, 'snapshots', f)).size, 0);
    const proven = path.join(arch, 'proven-packs');
    return {
      hour,
      kept,
      archived,
      folderBytes: treeBytes(backups).bytes,
      packs: packs.files,
      packBytes: packs.bytes,
      bases: bases.files,
      baseBytes: bases.bytes,
      idxBytes,
      provenBytes: fs.existsSync(proven) ? fs.statSync(proven).size : 0,
      backupMs: Math.round(report.backupMs.at(-1) ?? 0),
      backupRssKb: report.backupRssKb.at(-1) ?? 0,
      listMs: Math.round(listRun.ms),
      listRssKb: listRun.rssKb,
      verifyMs: Math.round(verifyRun.ms),
      verifyRssKb: verifyRun.rssKb,
    };
  };

  /** list, materialize every kept snapshot of both databases, verify --all. */
  const check = async (hour: number, atMs: number, full: boolean): Promise<void> => {
    report.checks++;
    let listRun: Run | undefined;
    let kept = 0;
    let archived = 0;
    for (const t of [first, second]) {
      const r = await runAt(['list', '--to', backups, '--db', t.db, ...flagsFor(t).slice(0, -2), '--json'], atMs, work);
      if (t === first) listRun = r;
      if (r.code !== 0) return problem(`hour ${hour}: list exit ${r.code}: ${r.stderr.trim()}`);
      const rows = (JSON.parse(r.stdout.trim()) as { name: string; sha256?: string; archived: boolean; this_db?: boolean; manifest: string }[]).filter((x) => x.this_db);
      const names = new Set(rows.map((x) => x.name));
      for (const n of t.present) if (!names.has(n)) problem(`${t.label} hour ${hour}: ${n} is gone (never reported pruned)`);
      for (const row of rows) {
        if (!t.present.has(row.name)) problem(`${t.label} hour ${hour}: list shows ${row.name}, which should not be there`);
        const want = t.made.get(row.name);
        if (row.sha256 !== want) problem(`${t.label} hour ${hour}: ${row.name} lists sha256 ${row.sha256}, made as ${want}`);
        if (row.manifest !== 'ok') problem(`${t.label} hour ${hour}: ${row.name} manifest ${row.manifest}`);
        if (t === first) {
          kept++;
          if (row.archived) archived++;
        }
        if (!full || !want) continue;
        const plain = path.join(backups, row.name);
        let got: string | undefined;
        if (!row.archived) got = fs.existsSync(plain) ? sha256(plain) : undefined;
        else {
          const out = path.join(dir, 'materialized');
          fs.rmSync(out, { recursive: true, force: true });
          fs.mkdirSync(out);
          const m = await runAt(['materialize', '--from', plain, '--out', out + '/', '--json'], atMs, work);
          if (m.code !== 0) {
            problem(`${t.label} hour ${hour}: materialize ${row.name} exit ${m.code}: ${m.stderr.trim()}`);
            continue;
          }
          report.materialized++;
          const f = path.join(out, row.name);
          got = fs.existsSync(f) ? sha256(f) : undefined;
        }
        if (got !== want) problem(`${t.label} hour ${hour}: ${row.name} rebuilds to ${got}, made as ${want}`);
      }
    }
    const v = await runAt(['verify', '--from', backups, '--all', '--json'], atMs, work);
    if (v.code !== 0) problem(`hour ${hour}: verify --all exit ${v.code}: ${v.stdout.slice(0, 2000)} ${v.stderr.trim()}`);
    const row = await growthRow(hour, kept, archived, listRun!, v);
    report.growth.push(row);
    log(`hour ${hour}: ${JSON.stringify(row)}`);
  };

  for (let hour = 0; hour < opts.hours; hour++) {
    const atMs = T0 + hour * 3600_000;
    if (hour > 0) mutate(first, hour);
    if (vacuums.has(hour)) {
      open(first).exec('VACUUM');
      event(hour, 'VACUUM of db1 (every page moves)');
    }
    if (hour === migrateAt) {
      open(first).exec('CREATE TABLE longrun_notes (id INTEGER PRIMARY KEY, hour INTEGER NOT NULL, note TEXT NOT NULL); CREATE INDEX longrun_notes_hour ON longrun_notes(hour);');
      migrated = true;
      event(hour, 'schema migration of db1 (a table and an index added)');
    }
    if (hour === pageSizeAt) {
      const c = open(first);
      c.exec("PRAGMA journal_mode = DELETE; PRAGMA page_size = 8192; VACUUM; PRAGMA journal_mode = WAL;");
      event(hour, `page size of db1 now ${(c.prepare('PRAGMA page_size').get() as { page_size: number }).page_size}`);
    }
    if (hour === restoreAt) {
      // Back in time: the oldest archived snapshot kept, restored over the live database.
      const archivedNow = [...first.present].sort().slice(0, -3);
      const pick = archivedNow[Math.floor(archivedNow.length / 3)];
      close(first);
      const r = await runAt(['restore', '--db', first.db, '--from', backups, '--snapshot', pick, '--yes', '--json'], atMs - 1800_000, work);
      if (r.code !== 0) problem(`hour ${hour}: restore of ${pick} exit ${r.code}: ${r.stderr.trim()}`);
      else if (sha256(first.db) !== first.made.get(pick)) problem(`hour ${hour}: restored ${pick} is not its bytes`);
      migrated = open(first).prepare("SELECT 1 FROM sqlite_master WHERE name = 'longrun_notes'").get() !== undefined;
      event(hour, `restored db1 to ${pick} (archived); the next backup has the same content`);
      // The next backup, before any write, is of exactly that content.
      await backup(first, hour, atMs);
      await check(hour, atMs, true);
      continue;
    }
    await backup(first, hour, atMs);
    if (hour >= secondFrom && hour % 6 === 3) {
      mutate(second, hour);
      await backup(second, hour, atMs + 1800_000);
    }
    if (hour === pushAt) {
      const r = await runAt(['push', '--to', backups, '--remote', mirror, ...POLICY_FLAGS.slice(0, -2), '--json'], atMs + 600_000, work);
      if (r.code !== 0) problem(`hour ${hour}: push exit ${r.code}: ${r.stderr.trim()}`);
      event(hour, `pushed to the mirror folder: ${fs.readdirSync(mirror).filter((f) => f.endsWith('.db')).length} snapshots there`);
    }
    if (hour === pullAt) {
      const r = await runAt(['pull', '--remote', mirror, '--to', backups, '--all', '--json'], atMs + 600_000, work);
      if (r.code !== 0) problem(`hour ${hour}: pull exit ${r.code}: ${r.stderr.trim()} ${r.stdout.slice(0, 1000)}`);
      const pulled = (JSON.parse(r.stdout.trim()) as { snapshots: { name: string; status: string }[] }).snapshots;
      let back = 0;
      for (const p of pulled) {
        if (p.status === 'downloaded') {
          const owner = [first, second].find((t) => t.made.has(p.name));
          if (!owner) problem(`hour ${hour}: pulled ${p.name}, which was never made here`);
          owner?.present.add(p.name);
          back++;
        }
      }
      event(hour, `pulled ${back} snapshots back from the mirror (${pulled.map((p) => p.status).join(',')})`);
      await check(hour, atMs + 700_000, true);
      // The next backup applies the policy to them again.
    }
    if (hour === handPruneAt) {
      const r = await runAt(['prune', '--to', backups, '--db', first.db, ...HAND_PRUNE_FLAGS, '--json'], atMs + 900_000, work);
      if (r.code !== 0) problem(`hour ${hour}: prune exit ${r.code}: ${r.stderr.trim()}`);
      else {
        const out = JSON.parse(r.stdout.trim()) as { deleted?: string[] };
        const want = expectedKeep(first.present, HAND_PRUNE_POLICY);
        for (const p of out.deleted ?? []) first.present.delete(path.basename(p));
        const lost = [...want].filter((n) => !first.present.has(n));
        const extra = [...first.present].filter((n) => !want.has(n));
        if (lost.length || extra.length) problem(`hour ${hour}: prune by hand (${r.stdout.slice(0, 3000)}): lost ${lost.join(',')} kept ${extra.join(',')}`);
        event(hour, `prune by hand with ${HAND_PRUNE_FLAGS.join(' ')}: ${(out.deleted ?? []).length} pruned, ${first.present.size} kept`);
      }
      await check(hour, atMs + 900_000, true);
    }
    if (hour > 0 && hour % opts.checkEvery === 0) await check(hour, atMs + 1200_000, true);
    else if (hour > 0 && hour % Math.max(1, Math.floor(opts.checkEvery / 4)) === 0) await check(hour, atMs + 1200_000, false);
  }
  close(first);
  close(second);
  await check(opts.hours, T0 + opts.hours * 3600_000, true);
  return report;
}
