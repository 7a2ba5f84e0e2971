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
import { verifyFolderOrFile } from '../core/ops/verify';
import { runMaterialize } from '../core/ops/archived';
import { DEFAULT_PLAIN, planRetention, runPrune } from '../core/ops/prune';
import { BUCKETS, type RetentionPolicy } from '../core/store/retention';
import { parseArgs, type Parsed } from './args';
import { backupJson, COMMANDS, isCommandName, listJson, materializeJson, progressJson, pruneJson, restoreJson, verifyJson, type CommandName, type CommandSpec, type ErrorLine } from './protocol';

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
  backup   [--db PATH] [--to DIR] [--keep N | --keep-* N …] [--plain N]
           [--verify quick|full|off] [--json]
           Snapshot the database (consistent while the server writes) into DIR
           (default ./backups), then apply the retention policy (below) and
           archive kept snapshots older than the newest --plain N (default ${DEFAULT_PLAIN}).
  prune    [--to DIR] [--keep N | --keep-* N …] [--plain N] [--dry-run] [--json]
           Apply the retention policy and archiving now; print what is kept and why.
  materialize --from DIR/ai-memory-<time>.db --out FILE|DIR [--verify quick|full]
           [--skip-integrity] [--json]
           Rebuild an archived snapshot as a plain file with its manifest
           (restorable by ai-memory's own CLI); checked before it gets its name.
  restore  [--db PATH] --from FILE|DIR [--skip-verify] [--skip-integrity]
           [--verify quick|full] [--force] [--dry-run] [--json]
           Check a snapshot (a folder means its newest), keep the current
           database as <stem>.pre-restore-<time>.db with its -wal/-shm, and put
           the snapshot in its place.
  verify   --from FILE|DIR [--all] [--verify quick|full] [--json]
           Check snapshots against their manifests and with PRAGMA quick_check.
           --all: archived snapshots too (each rebuilt to its sha256) and every
           pack of the archive, naming the snapshots a damaged pack affects.
  list     [--to DIR] [--keep-* N …] [--json]
           List the snapshots in DIR (default ./backups), newest first, with
           why the retention policy keeps each.

Archived snapshots live in DIR/.ai-memory-archive/ (pages stored once, compressed);
restore, verify and materialize take them by the path their plain file would have.

Retention (restic's rules: the newest snapshot of each period is kept, the
tiers combine with OR, periods in local time, ISO weeks from Monday):
  --keep-last N  --keep-hourly N  --keep-daily N  --keep-weekly N
  --keep-monthly N  --keep-yearly N      (N = all or -1: every period)
  --keep N is --keep-last N (0 = keep all); with no --keep* flag: --keep-last ${DEFAULT_KEEP}.
  Never deleted: the newest snapshot, the one just written, one a restore is
  reading, pre-restore copies, files not named ai-memory-<time>.db.

Without --db the database is found the way ai-memory finds it: $AI_MEMORY_DB,
then db = "…" in ~/.config/ai-memory/config.toml, then ./ai-memory.db.

Options:
  --skip-verify     restore without checking the manifest (sha256, size)
  --skip-integrity  restore without the SQLite integrity check (encrypted databases)
  --force           restore even while a process has the database open
  --dry-run         print what restore would do; change nothing
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

/**
 * The retention policy from the flags: `--keep-last/-hourly/-daily/-weekly/-monthly/-yearly N`
 * (N ≥ 0, or -1 / "all" for unlimited); `--keep N` is `--keep-last N` (0 = keep all, as
 * ai-memory's flag); neither: `--keep-last 48`.
 */
export function policyFromFlags(p: Parsed): RetentionPolicy {
  const policy: RetentionPolicy = {};
  let tiers = false;
  for (const b of BUCKETS) {
    const raw = p.values.get(`keep-${b}`);
    if (raw === undefined) continue;
    tiers = true;
    if (raw === 'all' || raw === '-1') policy[b] = -1;
    else if (/^\d+$/.test(raw)) policy[b] = Number(raw);
    else throw new BackupError('USAGE', `--keep-${b} must be a whole number ≥ 0, or all (-1); got "${raw}".`);
  }
  const keep = p.values.get('keep');
  if (keep !== undefined) {
    if (!/^\d+$/.test(keep)) throw new BackupError('USAGE', `--keep must be a whole number ≥ 0; got "${keep}".`);
    if (p.values.has('keep-last')) throw new BackupError('USAGE', '--keep is --keep-last; give one of them.');
    if (Number(keep) === 0) {
      if (tiers) throw new BackupError('USAGE', '--keep 0 keeps everything; it cannot be combined with other --keep-* flags.');
      return {};
    }
    policy.last = Number(keep);
    tiers = true;
  }
  return tiers ? policy : { last: DEFAULT_KEEP };
}

/** `--plain N`: the newest N kept snapshots stay plain files (default 3); older ones are archived. */
function plainFromFlags(p: Parsed): number {
  const raw = p.values.get('plain') ?? String(DEFAULT_PLAIN);
  if (!/^\d+$/.test(raw) || Number(raw) < 1) throw new BackupError('USAGE', `--plain must be a whole number ≥ 1; got "${raw}".`);
  return Number(raw);
}

async function cmdMaterialize(p: Parsed, io: CliIO): Promise<number> {
  const from = p.values.get('from');
  const out = p.values.get('out');
  if (!from || !out) throw new BackupError('USAGE', 'materialize needs --from SNAPSHOT and --out FILE|DIR.', { hint: `Run \`${TOOL_NAME} list\` to see the snapshots, archived ones included.` });
  const mode = p.switches.has('skip-integrity') ? 'off' : verifyMode(p, false);
  const r = await runMaterialize({ from: resolve(io.cwd, from), out: /[\\/]$/.test(out) ? `${resolve(io.cwd, out)}/` : resolve(io.cwd, out), integrity: mode, signal: io.signal });
  if (p.switches.has('json')) {
    io.stdout(json(materializeJson(r)));
    return 0;
  }
  io.stdout(`Materialized ${r.from} → ${r.out}\nManifest: ${r.manifest}\nSHA-256 : ${r.sha256}\nBytes   : ${r.bytes}\n`);
  io.stdout(`Checked : rebuilt page by page from the archive; sha256 matches; ${mode === 'off' ? 'integrity check skipped' : `${checkLabel(mode)} ok`}\n`);
  return 0;
}

async function cmdBackup(p: Parsed, io: CliIO): Promise<number> {
  const policy = policyFromFlags(p);
  const plain = plainFromFlags(p);
  const recent = p.values.get('skip-if-recent');
  if (recent !== undefined && !/^\d+$/.test(recent)) throw new BackupError('USAGE', `--skip-if-recent must be a number of seconds; got "${recent}".`);
  const db = await dbPath(p, io);
  const r = await runBackup({
    dbPath: db.path,
    backupDir: resolve(io.cwd, p.values.get('to') ?? './backups'),
    policy,
    plain,
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
  if (r.archived.length) io.stdout(`Archived: ${r.archived.join(', ')} (page-dedup archive; \`materialize\` gives a plain file back)\n`);
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
  const all = p.switches.has('all');
  const { reports, packs } = await verifyFolderOrFile({ from: resolve(io.cwd, from), integrity: mode, all, signal: io.signal });
  const failed = reports.filter((r) => r.problems.length).length;
  if (p.switches.has('json')) {
    io.stdout(json(verifyJson(reports, mode, all ? packs : undefined)));
  } else {
    for (const r of reports) io.stdout(`${reportLine(r, mode)}\n`);
    for (const b of packs) io.stdout(`FAIL  pack ${b.pack}: ${b.problem}; ${b.snapshots.length ? `used by ${b.snapshots.join(', ')}` : 'no kept snapshot uses it'}\n`);
    io.stdout(`${reports.length - failed} of ${reports.length} snapshot${reports.length === 1 ? '' : 's'} ok${all ? `; ${packs.length ? `${packs.length} damaged pack${packs.length === 1 ? '' : 's'}` : 'every pack intact'}` : ''}\n`);
  }
  return failed || packs.length ? 1 : 0;
}

function localWhen(t: number): string {
  const d = new Date(t);
  const p2 = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p2(d.getMonth() + 1)}-${p2(d.getDate())} ${p2(d.getHours())}:${p2(d.getMinutes())}:${p2(d.getSeconds())}`;
}

async function cmdPrune(p: Parsed, io: CliIO): Promise<number> {
  const policy = policyFromFlags(p);
  const dir = resolve(io.cwd, p.values.get('to') ?? './backups');
  const dryRun = p.switches.has('dry-run');
  const r = await runPrune({ backupDir: dir, policy, plain: plainFromFlags(p), dryRun, signal: io.signal });
  for (const w of r.warnings) io.stderr(`warning: ${w}\n`);
  const pruned = new Set(r.pruned);
  if (p.switches.has('json')) {
    io.stdout(json(pruneJson(r, dryRun)));
    return 0;
  }
  const kept = r.decisions.filter((d) => d.keep);
  io.stdout(`${dryRun ? 'Dry run: nothing was deleted. ' : ''}Policy: ${r.policy}. ${kept.length} kept, ${dryRun ? `${r.decisions.length - kept.length} would be deleted` : `${r.pruned.length} deleted`}.\n`);
  const archiving = new Set(dryRun ? (r.wouldArchive ?? []) : (r.archive?.archived ?? []));
  for (const d of r.decisions) {
    const mark = d.keep ? 'keep  ' : dryRun ? 'delete' : pruned.has(d.name) ? 'deleted' : 'kept  ';
    const form = d.keep ? (archiving.has(d.name) ? (dryRun ? ' [would be archived]' : ' [archived now]') : d.entry.archived ? ' [archived]' : '') : '';
    io.stdout(`  ${mark}  ${localWhen(d.time)}  ${d.name}${d.keep ? `  ${d.why}` : ''}${form}\n`);
  }
  if (r.archive && (r.archive.gc.deletedPacks.length || r.archive.gc.repacked.length)) {
    io.stdout(`Archive: ${r.archive.gc.deletedPacks.length} unused pack(s) deleted, ${r.archive.gc.repacked.length} repacked, ${formatBytes(r.archive.gc.freedBytes)} freed\n`);
  }
  return 0;
}

async function cmdList(p: Parsed, io: CliIO): Promise<number> {
  const dir = resolve(io.cwd, p.values.get('to') ?? './backups');
  const entries = await listSnapshots(dir, { archived: true });
  const decisions = new Map((await planRetention(dir, policyFromFlags(p), { entries })).map((d) => [d.name, d]));
  const retention = (name: string) => {
    const d = decisions.get(name);
    return d ? (d.keep ? d.why : 'not kept by the policy: the next backup or prune deletes it') : undefined;
  };
  if (p.switches.has('json')) {
    io.stdout(json(listJson(entries, retention)));
    return 0;
  }
  io.stdout(`${dir}: ${entries.length} snapshot${entries.length === 1 ? '' : 's'}\n`);
  for (const e of entries) {
    const when = new Date(e.time).toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC');
    const verdict = snapshotVerdict(e);
    const memories = e.manifest?.memories !== undefined ? `, ${e.manifest.memories} memories` : '';
    const state = `${STATE_LABEL[verdict.state]}: ${verdict.detail}${memories}${e.archived ? ', archived (materialize gives a plain file)' : ''}`;
    const why = retention(e.name);
    io.stdout(`  ${when}  ${e.name}  ${formatBytes(e.size)}  ${state}${why ? `  [${why}]` : ''}\n`);
  }
  return 0;
}

const HANDLERS: Record<CommandName, (p: Parsed, io: CliIO) => Promise<number>> = {
  backup: cmdBackup,
  restore: cmdRestore,
  verify: cmdVerify,
  list: cmdList,
  prune: cmdPrune,
  materialize: cmdMaterialize,
};

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
