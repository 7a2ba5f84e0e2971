/**
 * The CLI's commands and their output. Output shapes follow ai-memory's CLI: backup prints
 * `Snapshot:`, `Manifest:`, `SHA-256 :`, `Bytes   :` (or the manifest as one JSON line with
 * --json); restore prints `Previous DB moved to …` and `Restored … → …` (or
 * `{"status":"restored","from":…,"to":…}`). Lines after those are ours.
 */
import { promises as fsp } from 'node:fs';
import { homedir } from 'node:os';
import { basename, resolve } from 'node:path';
import { DEFAULT_KEEP, runBackup } from '../core/ops/backup';
import type { Progress } from '../core/common/cancel';
import { checkLabel, type CheckMode, type VerifyMode } from '../core/common/checks';
import { listSnapshots } from '../core/store/catalog';
import { snapshotVerdict, STATE_LABEL } from '../core/store/snapshotState';
import { BackupError, errorMessage, isBackupError } from '../core/common/errors';
import { formatBytes } from '../core/common/format';
import { resolveAiMemoryDbPath } from '../core/discovery/paths';
import { describeHolders } from '../core/ops/inUse';
import { runRestore } from '../core/ops/restore';
import type { SnapshotReport } from '../core/ops/snapshotCheck';
import { TOOL_NAME, TOOL_VERSION } from '../core/common/version';
import { verifySnapshots } from '../core/ops/verify';
import { parseArgs, type Parsed } from './args';
import { diff, extract, inspectSnapshot } from '../core/memory/ops';
import { changeSummary } from '../core/memory/compare';
import { backupJson, diffJson, extractJson, importCommand, inspectJson, COMMANDS, isCommandName, listJson, progressJson, restoreJson, verifyJson, type CommandName, type CommandSpec, type ErrorLine } from './protocol';

export interface CliIO {
  stdout: (s: string) => void;
  stderr: (s: string) => void;
  env: NodeJS.ProcessEnv;
  cwd: string;
  home?: string;
  /** Aborted on SIGINT/SIGTERM: the engine stops at its next safe point and cleans up. */
  signal?: AbortSignal;
}

const USAGE = `Usage: ${TOOL_NAME} <command> [options]

Hot, verified, crash-safe snapshots of your ai-memory database,
file-for-file compatible with \`ai-memory backup\` / \`ai-memory restore\`.

Commands:
  backup   [--db PATH] [--to DIR] [--keep N] [--verify quick|full|off] [--json]
           Snapshot the database (consistent while the server writes) into DIR
           (default ./backups); keep the newest N (default ${DEFAULT_KEEP}, 0 = all).
  restore  [--db PATH] --from FILE|DIR [--skip-verify] [--skip-integrity]
           [--verify quick|full] [--force] [--dry-run] [--json]
           Check a snapshot (a folder means its newest), keep the current
           database as <stem>.pre-restore-<time>.db with its -wal/-shm, and put
           the snapshot in its place.
  verify   --from FILE|DIR [--verify quick|full] [--json]
           Check snapshots against their manifests and with PRAGMA quick_check.
  list     [--to DIR] [--json]
           List the snapshots in DIR (default ./backups), newest first.
  inspect  --from FILE|DIR | --db PATH  [--search TEXT] [--namespace NS] [--tier T]
           [--offset N] [--limit N] [--id ID] [--json]
           What a snapshot holds: counts by tier and namespace, links,
           archived, schema; a page of its memories; one memory with --id.
  diff     --from FILE|DIR [--to FILE|DIR | --db PATH] [--json]
           Memories added, removed (deleted or archived), edited (which
           fields) and links added/removed since the snapshot; recall-only
           changes are counted, not listed. Without --to: the current database.
  extract  --from FILE|DIR (--ids A,B | --namespace NS | --removed-since-db PATH)
           [--db PATH] [--out FILE] [--json]
           Write memories of a snapshot in ai-memory's import format (to
           stdout, or FILE), with their links among them and to memories that
           exist now; put them back with \`ai-memory import < FILE\`.

Without --db the database is found the way ai-memory finds it: $AI_MEMORY_DB,
then db = "…" in ~/.config/ai-memory/config.toml, then ./ai-memory.db.

Options:
  --skip-verify     restore without checking the manifest (sha256, size)
  --skip-integrity  restore without the SQLite integrity check (encrypted databases)
  --force           restore even while a process has the database open
  --dry-run         print what restore would do; change nothing
  --db PATH         (diff, extract) the current database, read consistently
                    without opening it with SQLite; never written
  --json            machine-readable output (one JSON line)
  -h, --help        this help;  --version  the version
`;

const SPECS: CommandSpec[] = Object.values(COMMANDS);
const ALL = {
  values: [...new Set(SPECS.flatMap((c) => c.values))],
  switches: [...new Set(SPECS.flatMap((c) => c.switches)), 'help', 'version'],
};

function json(v: unknown): string {
  return `${JSON.stringify(v)}\n`;
}

function verifyMode(p: Parsed, allowOff: true): VerifyMode;
function verifyMode(p: Parsed, allowOff: false): CheckMode;
function verifyMode(p: Parsed, allowOff: boolean): VerifyMode {
  const v = p.values.get('verify') ?? 'quick';
  if (v === 'quick' || v === 'full' || (allowOff && v === 'off')) return v;
  throw new BackupError('USAGE', `--verify must be quick, full${allowOff ? ' or off' : ''}; got "${v}".`);
}

/** Adds how the database path was chosen to a "not found" error, so the user knows what to change. */
function explainDb(e: unknown, db: { path: string; detail: string; source: string }): never {
  if (db.source !== 'flag' && e instanceof BackupError && (e.code === 'DB_NOT_FOUND' || e.code === 'DB_IS_DIRECTORY' || e.code === 'NOT_A_DATABASE' || e.code === 'DB_EMPTY')) {
    throw new BackupError(e.code, `${e.message} (database path from ${db.detail})`, { hint: e.hint, state: e.state, cause: e });
  }
  throw e;
}

async function dbPath(p: Parsed, io: CliIO): Promise<{ path: string; detail: string; source: string }> {
  const r = await resolveAiMemoryDbPath({
    flag: p.values.get('db'),
    env: io.env,
    home: io.home ?? homedir(),
    cwd: io.cwd,
    readFile: async (f) => fsp.readFile(f, 'utf8').catch((e: NodeJS.ErrnoException) => (e.code === 'ENOENT' ? undefined : Promise.reject(e))),
  });
  for (const w of r.warnings) io.stderr(`warning: ${w}\n`);
  return { path: r.path, detail: r.detail, source: r.source };
}

function progressPrinter(p: Parsed, io: CliIO): ((x: Progress) => void) | undefined {
  if (!p.switches.has('progress-json')) return undefined;
  let last = 0;
  return (x) => {
    const now = Date.now();
    if (x.done !== undefined && x.total && x.done < x.total && now - last < 100) return; // at most 10 lines a second
    last = now;
    io.stderr(json(progressJson(x)));
  };
}

async function cmdBackup(p: Parsed, io: CliIO): Promise<number> {
  const keepRaw = p.values.get('keep') ?? String(DEFAULT_KEEP);
  if (!/^\d+$/.test(keepRaw)) throw new BackupError('USAGE', `--keep must be a whole number ≥ 0; got "${keepRaw}".`);
  const recent = p.values.get('skip-if-recent');
  if (recent !== undefined && !/^\d+$/.test(recent)) throw new BackupError('USAGE', `--skip-if-recent must be a number of seconds; got "${recent}".`);
  const db = await dbPath(p, io);
  const r = await runBackup({
    dbPath: db.path,
    backupDir: resolve(io.cwd, p.values.get('to') ?? './backups'),
    keep: Number(keepRaw),
    verify: verifyMode(p, true),
    onProgress: progressPrinter(p, io),
    skipIfRunWithinMs: recent === undefined ? undefined : Number(recent) * 1000,
    signal: io.signal,
  }).catch((e: unknown) => explainDb(e, db));
  for (const w of r.warnings) io.stderr(`warning: ${w}\n`);
  if (p.switches.has('json')) {
    io.stdout(json(backupJson(r)));
    return 0;
  }
  const m = r.manifest;
  if (r.status === 'unchanged') {
    io.stdout(`Unchanged since ${r.unchangedSince}: the database is identical to the snapshot ${basename(r.snapshotPath)}; no new snapshot written.\n`);
  } else if (r.status === 'skipped') {
    io.stdout(`Skipped: a backup of this folder finished less than ${recent} s ago.\n`);
  }
  io.stdout(`Snapshot: ${r.snapshotPath}\nManifest: ${r.manifestPath}\nSHA-256 : ${m.sha256}\nBytes   : ${m.bytes}\n`);
  if (r.status === 'created') {
    const facts: string[] = [];
    if (m.integrity === 'ok') facts.push(`${checkLabel(m.check === 'full' ? 'full' : 'quick')} ok`);
    else if (m.integrity === 'encrypted') facts.push('NOT verified: the database is encrypted (not plain SQLite)');
    else facts.push('NOT verified (--verify off)');
    if (m.memories !== undefined) facts.push(`${m.memories} memories`);
    if (m.schema_version !== undefined) facts.push(`schema ${m.schema_version}`);
    if (m.wal_frames) facts.push(`WAL merged up to frame ${m.wal_frames}`);
    io.stdout(`Checked : ${facts.join(', ')}\n`);
  }
  if (r.pruned.length) io.stdout(`Pruned  : ${r.pruned.join(', ')}\n`);
  return 0;
}

async function cmdRestore(p: Parsed, io: CliIO): Promise<number> {
  const from = p.values.get('from');
  if (!from) throw new BackupError('USAGE', 'restore needs --from FILE|DIR.', { hint: `Run \`${TOOL_NAME} list\` to see your snapshots.` });
  const db = await dbPath(p, io);
  const verify = verifyMode(p, false);
  const r = await runRestore({
    dbPath: db.path,
    from: resolve(io.cwd, from),
    skipVerify: p.switches.has('skip-verify'),
    skipIntegrity: p.switches.has('skip-integrity'),
    verify,
    force: p.switches.has('force'),
    dryRun: p.switches.has('dry-run'),
    onProgress: progressPrinter(p, io),
    signal: io.signal,
  }).catch((e: unknown) => explainDb(e, db));
  for (const w of r.warnings) io.stderr(`warning: ${w}\n`);
  // A dry run that the real restore would refuse exits 1, like the restore itself would.
  const refused = r.status === 'dry-run' && r.plan.wouldRefuse ? 1 : 0;
  if (p.switches.has('json')) {
    io.stdout(json(restoreJson(r)));
    return refused;
  }
  if (r.status === 'dry-run') {
    const lines = [`Dry run: nothing was changed.`, `Would restore ${r.from}`, ...r.plan.checks.map((c) => `  checked: ${c}`), `into ${r.to}`];
    if (r.plan.keep.length) {
      lines.push('keeping the current files as:');
      for (const k of r.plan.keep) lines.push(`  ${k.from} → ${k.to}`);
    } else {
      lines.push('(no database there yet: nothing to keep)');
    }
    if (r.plan.consolidate) lines.push("the current -wal holds committed transactions: they stay in the kept copy and are folded in before it is replaced");
    if (r.plan.wouldRefuse) lines.push(`would refuse: in use by ${describeHolders(r.plan.holders)}`, `  ${r.plan.wouldRefuse.hint}`);
    io.stdout(`${lines.join('\n')}\n`);
    return refused;
  }
  if (r.previous) io.stdout(`Previous DB moved to ${r.previous}\n`);
  io.stdout(`Restored ${r.from} → ${r.to}\n`);
  io.stdout(`Checked : ${r.plan.checks.join('; ')}; placed file sha256 ${r.sha256}\n`);
  return 0;
}

function reportLine(r: SnapshotReport, mode: CheckMode): string {
  if (r.problems.length) return `FAIL  ${r.name}  ${r.problems.map((x) => x.message).join(' | ')}`;
  const facts = [r.manifestState === 'ok' ? 'sha256 matches manifest' : 'no manifest check'];
  if (r.integrity?.ok) facts.push(`${checkLabel(mode)} ok${r.integrity.memories !== undefined ? ` (${r.integrity.memories} memories)` : ''}`);
  for (const n of r.notes) facts.push(n);
  return `ok    ${r.name}  ${facts.join(', ')}`;
}

async function cmdVerify(p: Parsed, io: CliIO): Promise<number> {
  const from = p.values.get('from');
  if (!from) throw new BackupError('USAGE', 'verify needs --from FILE|DIR.');
  const mode = verifyMode(p, false);
  const reports = await verifySnapshots({ from: resolve(io.cwd, from), integrity: mode, signal: io.signal });
  const failed = reports.filter((r) => r.problems.length).length;
  if (p.switches.has('json')) {
    io.stdout(json(verifyJson(reports, mode)));
  } else {
    for (const r of reports) io.stdout(`${reportLine(r, mode)}\n`);
    io.stdout(`${reports.length - failed} of ${reports.length} snapshot${reports.length === 1 ? '' : 's'} ok\n`);
  }
  return failed ? 1 : 0;
}

async function cmdList(p: Parsed, io: CliIO): Promise<number> {
  const dir = resolve(io.cwd, p.values.get('to') ?? './backups');
  const entries = await listSnapshots(dir);
  if (p.switches.has('json')) {
    io.stdout(json(listJson(entries)));
    return 0;
  }
  io.stdout(`${dir}: ${entries.length} snapshot${entries.length === 1 ? '' : 's'}\n`);
  for (const e of entries) {
    const when = new Date(e.time).toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC');
    const verdict = snapshotVerdict(e);
    const memories = e.manifest?.memories !== undefined ? `, ${e.manifest.memories} memories` : '';
    const state = `${STATE_LABEL[verdict.state]}: ${verdict.detail}${memories}`;
    io.stdout(`  ${when}  ${e.name}  ${formatBytes(e.size)}  ${state}\n`);
  }
  return 0;
}

const HANDLERS: Record<CommandName, (p: Parsed, io: CliIO) => Promise<number>> = {
  backup: cmdBackup,
  restore: cmdRestore,
  verify: cmdVerify,
  list: cmdList,
  inspect: cmdInspect,
  diff: cmdDiff,
  extract: cmdExtract,
};

function wholeNumber(p: Parsed, flag: string): number | undefined {
  const raw = p.values.get(flag);
  if (raw === undefined) return undefined;
  if (!/^\d+$/.test(raw)) throw new BackupError('USAGE', `--${flag} must be a whole number; got "${raw}".`);
  return Number(raw);
}

function fromFlag(p: Parsed, io: CliIO, command: string): string {
  const from = p.values.get('from');
  if (!from) throw new BackupError('USAGE', `${command} needs --from FILE|DIR (a snapshot, or a folder for its newest).`, { hint: `Run \`${TOOL_NAME} list\` to see your snapshots.` });
  return resolve(io.cwd, from);
}

async function cmdInspect(p: Parsed, io: CliIO): Promise<number> {
  const jsonOut = p.switches.has('json');
  const id = p.values.get('id');
  const dbFlag = p.values.get('db');
  if (dbFlag !== undefined && p.values.has('from')) throw new BackupError('USAGE', 'inspect takes --from SNAP or --db PATH, not both.');
  const r = await inspectSnapshot({
    ...(dbFlag !== undefined ? { db: resolve(io.cwd, dbFlag) } : { from: fromFlag(p, io, 'inspect') }),
    id,
    query: id === undefined ? { text: p.values.get('search'), namespace: p.values.get('namespace'), tier: p.values.get('tier'), offset: wholeNumber(p, 'offset'), limit: wholeNumber(p, 'limit') ?? (jsonOut ? 100 : 20) } : undefined,
    signal: io.signal,
  });
  if (jsonOut) {
    io.stdout(json(inspectJson(r)));
    return 0;
  }
  const s = r.snapshot;
  for (const w of s.warnings) io.stderr(`warning: ${w}\n`);
  const lines = [`Snapshot: ${s.path}`, `Bytes   : ${s.bytes}`];
  if (s.sha256) lines.push(`SHA-256 : ${s.sha256}`);
  if (s.created_at) lines.push(`Created : ${s.created_at}`);
  const o = r.overview;
  if (o.kind !== 'ai-memory') {
    lines.push(`Not an ai-memory database (no memories table). Tables:`);
    for (const t of o.tables ?? []) lines.push(`  ${t.table}  ${t.rows} rows`);
    io.stdout(`${lines.join('\n')}\n`);
    return 0;
  }
  const f = o.facts;
  if (o.schema_version !== undefined) lines.push(`Schema  : ${o.schema_version}`);
  if (f) {
    const list = (c: Record<string, number>): string => Object.entries(c).map(([k, n]) => `${k || '(none)'} ${n}`).join(', ');
    lines.push(`Memories: ${f.memories} (${list(f.memories_by_tier)})`, `Spaces  : ${list(f.memories_by_namespace)}`, `Links   : ${f.links}`, `Archived: ${f.archived}`);
  }
  if (r.memory) {
    const m = r.memory.memory;
    lines.push('');
    for (const [k, v] of Object.entries(m)) if (k !== 'content') lines.push(`${k.padEnd(16)} ${v === null ? '—' : String(v)}`);
    lines.push('', String(m.content ?? ''), '');
    for (const l of r.memory.links) lines.push(`${l.direction === 'out' ? '→' : '←'} ${l.relation} ${l.other_title ?? '(not in this snapshot)'} [${l.other_id}]`);
  } else if (r.page) {
    const pg = r.page;
    lines.push('', `${pg.total} matching; showing ${pg.rows.length ? `${pg.offset + 1}–${pg.offset + pg.rows.length}` : 'none'}:`);
    for (const row of pg.rows) lines.push(`  ${row.id}  ${row.tier.padEnd(5)}  ${row.namespace}  ${row.title}`);
  }
  io.stdout(`${lines.join('\n')}\n`);
  return 0;
}

async function cmdDiff(p: Parsed, io: CliIO): Promise<number> {
  const from = fromFlag(p, io, 'diff');
  const to = p.values.get('to');
  if (to !== undefined && p.values.has('db')) throw new BackupError('USAGE', 'diff takes --to SNAP or --db PATH, not both.');
  const side = to !== undefined ? { snapshot: resolve(io.cwd, to) } : { db: (await dbPath(p, io)).path };
  const c = await diff({ from, to: side, signal: io.signal });
  if (p.switches.has('json')) {
    io.stdout(json(diffJson(c)));
    return 0;
  }
  if (c.schema.note) io.stderr(`note: ${c.schema.note}\n`);
  const MAX = 50;
  const lines = [`From: ${c.from.label} (${c.from.memories} memories)`, `To  : ${c.to.label} (${c.to.memories} memories)`, `${changeSummary(c)}  (${c.recall_only} only recalled, ${c.unchanged} unchanged; links +${c.links_added.length} −${c.links_removed.length})`];
  const section = <T>(title: string, items: T[], line: (x: T) => string): void => {
    if (!items.length) return;
    lines.push('', `${title} (${items.length}):`);
    for (const x of items.slice(0, MAX)) lines.push(`  ${line(x)}`);
    if (items.length > MAX) lines.push(`  … and ${items.length - MAX} more (--json lists all)`);
  };
  section('Added', c.added, (m) => `+ ${m.id}  ${m.namespace}  ${m.title}`);
  section('Removed', c.removed, (m) => `− ${m.id}  ${m.namespace}  ${m.title}  (${m.how === 'archived' ? `archived${m.archive_reason ? `: ${m.archive_reason}` : ''}` : 'deleted'})`);
  section('Edited', c.edited, (m) => `~ ${m.id}  ${m.namespace}  ${m.title}  [${m.fields.join(', ')}]`);
  section('Links added', c.links_added, (l) => `+ ${l.source_id} —${l.relation}→ ${l.target_id}`);
  section('Links removed', c.links_removed, (l) => `− ${l.source_id} —${l.relation}→ ${l.target_id}`);
  io.stdout(`${lines.join('\n')}\n`);
  return 0;
}

async function cmdExtract(p: Parsed, io: CliIO): Promise<number> {
  const from = fromFlag(p, io, 'extract');
  const ids = p.values.get('ids');
  const ns = p.values.get('namespace');
  const removed = p.values.get('removed-since-db');
  if ([ids, ns, removed].filter((x) => x !== undefined).length !== 1) {
    throw new BackupError('USAGE', 'extract needs exactly one of --ids A,B, --namespace NS or --removed-since-db PATH.');
  }
  if (removed !== undefined && p.values.has('db')) throw new BackupError('USAGE', '--removed-since-db already names the current database; leave out --db.');
  const outRaw = p.values.get('out');
  if (p.switches.has('json') && outRaw === undefined) throw new BackupError('USAGE', 'extract --json prints a summary; give --out FILE for the memories (without --out they go to stdout).');
  const idList = ids?.split(',').map((x) => x.trim()).filter(Boolean);
  if (idList && !idList.length) throw new BackupError('USAGE', '--ids needs at least one id.');
  const select = idList ? { ids: idList } : ns !== undefined ? { namespace: ns } : { removedSinceDb: resolve(io.cwd, removed as string) };
  const dbFlag = p.values.get('db');
  const out = outRaw === undefined ? undefined : resolve(io.cwd, outRaw);
  const r = await extract({ from, select, db: dbFlag === undefined ? undefined : resolve(io.cwd, dbFlag), out, signal: io.signal });
  if (out && p.switches.has('json')) {
    io.stdout(json(extractJson({ ...r, out })));
    return 0;
  }
  for (const w of r.warnings) io.stderr(`warning: ${w}\n`);
  if (r.missing.length) io.stderr(`warning: not in the snapshot: ${r.missing.join(', ')}\n`);
  if (r.expiryCleared.length) io.stderr(`note: ${r.expiryCleared.length} memor${r.expiryCleared.length === 1 ? 'y had' : 'ies had'} expired; written without expires_at so ai-memory's gc does not remove them again at once\n`);
  if (!out) {
    io.stdout(json(r.document));
    return 0;
  }
  io.stdout(`Wrote ${r.document.count} memor${r.document.count === 1 ? 'y' : 'ies'} and ${r.links} link${r.links === 1 ? '' : 's'} to ${out}\nPut them back with: ${importCommand(out)}\n`);
  return 0;
}

export async function runCli(argv: string[], io: CliIO): Promise<number> {
  const jsonOut = argv.includes('--json');
  try {
    const p = parseArgs(argv, ALL);
    if (p.switches.has('version')) {
      io.stdout(`${TOOL_NAME} ${TOOL_VERSION}\n`);
      return 0;
    }
    if (p.switches.has('help') || !p.command) {
      (p.command || p.switches.has('help') ? io.stdout : io.stderr)(USAGE);
      return p.command || p.switches.has('help') ? 0 : 2;
    }
    if (!isCommandName(p.command)) throw new BackupError('USAGE', `Unknown command "${p.command}".`, { hint: `Commands: ${Object.keys(COMMANDS).join(', ')}.` });
    const spec: CommandSpec = COMMANDS[p.command];
    for (const k of p.values.keys()) if (!spec.values.includes(k)) throw new BackupError('USAGE', `${p.command} does not take --${k}.`);
    for (const k of p.switches) if (!spec.switches.includes(k)) throw new BackupError('USAGE', `${p.command} does not take --${k}.`);
    if (p.positionals.length) throw new BackupError('USAGE', `Unexpected argument "${p.positionals[0]}".`);
    return await HANDLERS[p.command](p, io);
  } catch (e) {
    const err = isBackupError(e) ? e : new BackupError('IO', errorMessage(e));
    if (jsonOut) {
      const line: ErrorLine = { status: 'error', code: err.code, error: err.message, hint: err.hint, state: err.state };
      io.stderr(json(line));
    } else {
      io.stderr(`error: ${err.message}\n`);
      if (err.state) io.stderr(`  ${err.state}\n`);
      if (err.hint) io.stderr(`  ${err.hint}\n`);
      if (err.code === 'USAGE') io.stderr(`  Run \`${TOOL_NAME} --help\` for usage.\n`);
    }
    return err.code === 'USAGE' ? 2 : 1;
  }
}
