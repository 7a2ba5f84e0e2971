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
import { listSnapshots, type SnapshotEntry } from '../core/store/catalog';
import { signatureLine, snapshotVerdict, STATE_LABEL } from '../core/store/snapshotState';
import { ownerKey, ownerName, withOwners, type OwnerInfo } from '../core/store/ownership';
import { resolveDbPath } from '../core/sqlite/dbFiles';
import { BackupError, errorMessage, isBackupError } from '../core/common/errors';
import { readSmallRegular } from '../core/common/regularFile';
import { formatBytes } from '../core/common/format';
import { resolveAiMemoryDbPath } from '../core/discovery/paths';
import { describeHolders } from '../core/ops/inUse';
import { runRestore } from '../core/ops/restore';
import type { SnapshotReport } from '../core/ops/snapshotCheck';
import { TOOL_NAME, TOOL_VERSION } from '../core/common/version';
import { verifyFolderOrFile } from '../core/ops/verify';
import { runMaterialize } from '../core/ops/archived';
import { DEFAULT_PLAIN, planRetention, runPrune, type PruneDecision } from '../core/ops/prune';
import { BUCKETS, type RetentionPolicy } from '../core/store/retention';
import { resolveOperatorPublicKey, type KeyContext, type OperatorPublicKey } from '../core/store/operatorKey';
import { parseArgs, type Parsed } from './args';
import { targetFromCli } from '../core/remote/targets';
import { listRemote, pushToTarget, type PushOutcome, type SyncProgress } from '../core/remote/sync';
import { pullFromTarget, type PullRefused } from '../core/ops/pull';
import type { RemoteTarget } from '../core/remote/target';
import { backupJson, diffJson, extractJson, importCommand, inspectJson, COMMANDS, isCommandName, listJson, materializeJson, probeJson, progressJson, pruneJson, pullJson, pushJson, remoteListJson, restoreJson, verifyJson, type CommandName, type CommandSpec, type ErrorLine } from './protocol';
import { diff, extract, inspectSnapshot } from '../core/ops/memory';
import { changeSummary } from '../core/memory/compare';

export interface CliIO {
  stdout: (s: string) => void;
  stderr: (s: string) => void;
  /** When stdout holds written text it has not passed on yet: resolves once it has (or is gone). */
  stdoutDrained?: () => Promise<void> | undefined;
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
           [--verify quick|full|off] [--sign-key PATH] [--json]
           Snapshot the database (consistent while the server writes) into DIR
           (default ./backups), then apply the retention policy (below) and
           archive kept snapshots older than the newest --plain N (default ${DEFAULT_PLAIN}).
           The manifest is signed for ai-memory 1.0 with the operator key
           (where ai-memory keeps it, or --sign-key).
  prune    [--to DIR] [--db PATH] [--keep N | --keep-* N …] [--plain N] [--dry-run] [--json]
           Apply the retention policy and archiving to the database's snapshots
           now; print what is kept and why.
  materialize --from DIR/ai-memory-<time>.db --out FILE|DIR [--verify quick|full]
           [--skip-integrity] [--json]
           Rebuild an archived snapshot as a plain file with its manifest
           (restorable by ai-memory's own CLI); checked before it gets its name.
  restore  [--db PATH] --from FILE|DIR [--snapshot NAME | --latest]
           [--allow-unsigned-manifest] [--skip-verify] [--skip-integrity]
           [--verify quick|full] [--force] [--dry-run] [--yes] [--json]
           Check a snapshot (a folder means its newest), keep the current
           database as <stem>.pre-restore-<time>.db (other extensions kept:
           foo.pre-restore-<time>.sqlite) with its -wal/-shm, and put
           the snapshot in its place.
  verify   --from FILE|DIR [--all] [--verify quick|full] [--json]
           Check snapshots against their manifests and with PRAGMA quick_check.
           --all: archived snapshots too (each rebuilt to its sha256) and every
           pack of the archive, naming the snapshots a damaged pack affects.
  list     [--to DIR] [--db PATH] [--keep-* N …] [--json]
           List the snapshots in DIR (default ./backups), newest first, with the
           database each was taken of (with --db: this database's, then others')
           and why the retention policy keeps each.
  list     --remote s3://BUCKET/PREFIX|DIR [S3 options] [--json]
           List the snapshots on an off-machine target.
  push     [--to DIR] --remote s3://BUCKET/PREFIX|DIR [--keep N | --keep-* N …]
           [S3 options] [--json]
           Copy every verified snapshot in DIR (default ./backups; archived ones
           are rebuilt and checked first) to the target (each file checked
           against its manifest; the manifest goes last) and apply the retention
           policy there to what both hold (below; the newest always stays).
  pull     --remote s3://BUCKET/PREFIX|DIR --to DIR [--snapshot NAME | --all]
           [--verify quick|full|off] [S3 options] [--json]
           Download snapshots (default: the newest) into DIR: each is checked
           against its manifest (sha256, size) and with quick_check before it
           gets its name. Then \`restore --from DIR\`. --all passes over (and
           names) a snapshot whose copy is damaged, foreign or refused: exit 1.
  backup   … --remote s3://BUCKET/PREFIX|DIR
           After the backup, push to the target (which then keeps what the same
           retention policy keeps). A failed copy never fails the
           backup: the exit code is then 3 and the next run finishes the copy.
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

Archived snapshots live in DIR/.ai-memory-archive/ (pages stored once, compressed);
restore, verify and materialize take them by the path their plain file would have.

Retention (restic's rules: the newest snapshot of each period is kept, the
tiers combine with OR, periods in local time, ISO weeks from Monday):
  --keep-last N  --keep-hourly N  --keep-daily N  --keep-weekly N
  --keep-monthly N  --keep-yearly N      (N = all or -1: every period)
  --keep N is --keep-last N (0 = keep all); with no --keep* flag: --keep-last ${DEFAULT_KEEP}.
  Only the database's own snapshots count (their manifest's source_db).
  Never deleted: the newest snapshot, the one just written, one a restore is
  reading, pre-restore copies, another database's snapshots, files not named
  ai-memory-<time>.db.

Off-machine targets: a folder (a NAS mount, a synced folder; it must exist) or
S3-compatible storage. S3 credentials come from the standard AWS chain:
AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN, else the profile
(AWS_PROFILE or --profile) in ~/.aws/credentials and ~/.aws/config.
S3 options: --endpoint URL (or AWS_ENDPOINT_URL; R2, B2, MinIO…), --region R
(or AWS_REGION; default us-east-1), --path-style (MinIO), --profile NAME.

Without --db the database is found the way ai-memory finds it: $AI_MEMORY_DB,
then db = "…" in ~/.config/ai-memory/config.toml, then ./ai-memory.db.
A symlinked database is read (and restored) at its real file, like SQLite does.
restore creates a database that does not exist only at a path named with --db.
From a folder, restore takes the newest snapshot OF THIS DATABASE (its manifest's
source_db); retention counts and deletes only this database's snapshots.

Signed manifests (ai-memory 1.0): with an operator public key configured
($AI_MEMORY_OPERATOR_PUBKEY, or operator.key.pub in ai-memory's config folder),
restore checks every manifest's signature, decides from the signed values, and
refuses an unsigned manifest unless --allow-unsigned-manifest. A signature that
does not verify is refused; no option accepts it.

Options:
  --sign-key PATH   sign with this operator key (32 raw bytes, mode 600)
  --snapshot NAME   restore this snapshot of the --from folder (name or id)
  --latest          the newest snapshot of the --from folder (by signed time
                    when an operator key is configured)
  --allow-unsigned-manifest  accept an unsigned manifest although a key is set
  --yes             accepted for ai-memory 1.0 scripts (restore never asks: it
                    always keeps the current database)
  --skip-verify     restore without checking the manifest (sha256, size)
  --skip-integrity  restore without the SQLite integrity check (encrypted databases)
  --force           restore even while a process has the database open, when
                    the snapshot's schema is newer than the database's, or over
                    a file that is not ai-memory's database
  --force-in-use    restore while a process has the database open (only that)
  --dry-run         print what restore would do; change nothing
  --db PATH         (diff, extract) the current database, read consistently
                    without opening it with SQLite; never written
  --json            machine-readable output (one JSON line)
  -h, --help        this help;  --version  the version
`;

/** Exit code of `backup --remote` when the local backup succeeded but the copy did not (it stays pending). */
export const EXIT_COPY_PENDING = 3;

/** The object `list --remote --probe` writes and deletes right away. */
const PROBE_NAME = '.ai-memory-backup-probe';

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
  throw new BackupError('USAGE', `--verify must be ${allowOff ? 'quick, full or off' : 'quick or full'}; got "${v}".`);
}

/** Adds how the database path was chosen to a "not found" error, so the user knows what to change. */
function explainDb(e: unknown, db: { path: string; detail: string; source: string }): never {
  if (db.source !== 'flag' && e instanceof BackupError && (e.code === 'DB_NOT_FOUND' || e.code === 'DB_IS_DIRECTORY' || e.code === 'NOT_A_DATABASE' || e.code === 'DB_EMPTY')) {
    // The engine's hint speaks of --db; the path came from elsewhere, which is what to correct.
    const where =
      db.source === 'env' ? 'Set $AI_MEMORY_DB to the ai-memory .db file' : db.source === 'config' ? `Correct db = "…" in ${db.detail.replace(/^db = "[^"]*" in /, '')}` : 'Run it in the folder that holds ai-memory.db';
    throw new BackupError(e.code, `${e.message} (database path from ${db.detail})`, { hint: `${where}, or pass --db PATH.`, state: e.state, cause: e });
  }
  throw e;
}

/** The database as ai-memory finds it (--db, $AI_MEMORY_DB, config.toml, ./ai-memory.db), as it opens it: `..` and a trailing separator kept (paths.ts `exact`). */
async function dbPath(p: Parsed, io: CliIO): Promise<{ path: string; detail: string; source: string }> {
  const r = await resolveAiMemoryDbPath({
    flag: p.values.get('db'),
    env: io.env,
    home: io.home ?? homedir(),
    cwd: io.cwd,
    readFile: async (f) => readSmallRegular(f, 16 << 20).catch((e: NodeJS.ErrnoException) => (e.code === 'ENOENT' ? undefined : Promise.reject(e))),
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
    else if (/^\d+$/.test(raw) && Number.isSafeInteger(Number(raw))) policy[b] = Number(raw);
    else throw new BackupError('USAGE', `--keep-${b} must be a whole number ≥ 0, or all (-1); got "${raw}".`);
  }
  const keep = p.values.get('keep');
  if (keep !== undefined) {
    if (!/^\d+$/.test(keep) || !Number.isSafeInteger(Number(keep))) throw new BackupError('USAGE', `--keep must be a whole number ≥ 0 (0 keeps all); got "${keep}".`);
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
  if (!/^\d+$/.test(raw) || Number(raw) < 1 || !Number.isSafeInteger(Number(raw))) throw new BackupError('USAGE', `--plain must be a whole number ≥ 1; got "${raw}".`);
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
  // The target is set up (and its flags checked) before the backup, so a typo fails fast.
  const remote = p.values.has('remote') ? await remoteTarget(p, io) : undefined;
  const r = await runBackup({
    dbPath: db.path,
    backupDir: resolve(io.cwd, p.values.get('to') ?? './backups'),
    policy,
    plain,
    verify: verifyMode(p, true),
    onProgress: progressPrinter(p, io),
    skipIfRunWithinMs: recent === undefined ? undefined : Number(recent) * 1000,
    signing: { keyPath: p.values.get('sign-key') === undefined ? undefined : resolve(io.cwd, p.values.get('sign-key') as string), keyContext: keyContext(io) },
    signal: io.signal,
  }).catch((e: unknown) => explainDb(e, db));
  for (const w of r.warnings) io.stderr(`warning: ${w}\n`);
  if (p.switches.has('json')) {
    let copy: PushOutcome | undefined;
    if (remote) copy = await pushToTarget({ localDir: resolve(io.cwd, p.values.get('to') ?? './backups'), target: remote, keep: policy, signal: io.signal, onProgress: syncProgressPrinter(p, io) });
    io.stdout(json({ ...backupJson(r), ...(copy ? { remote: pushJson(copy) } : {}) }));
    if (copy?.error) io.stderr(`warning: off-machine copy to ${copy.target} ${copy.report ? 'incomplete' : 'failed'}: ${copy.error.message}\n`);
    return copy && copy.status !== 'copied' ? EXIT_COPY_PENDING : 0;
  }
  const m = r.manifest;
  if (r.status === 'unchanged') {
    io.stdout(`Unchanged since ${r.unchangedSince}: the database is identical to the snapshot ${basename(r.snapshotPath)}; no new snapshot written.\n`);
  } else if (r.status === 'skipped') {
    io.stdout(`Skipped: a backup of this folder finished less than ${recent} s ago.\n`);
  }
  io.stdout(`Snapshot: ${r.snapshotPath}\nManifest: ${r.manifestPath}\nSHA-256 : ${m.sha256}\nBytes   : ${m.bytes}\n`);
  if (r.db.viaLink) io.stdout(`Read    : ${r.db.path} (${r.db.given} is a symbolic link to it; its -wal is read from there)\n`);
  if (r.status === 'created') {
    const facts: string[] = [];
    if (m.integrity === 'ok') facts.push(`${checkLabel(m.check === 'full' ? 'full' : 'quick')} ok`);
    else if (m.integrity === 'encrypted') facts.push('NOT verified: the database is encrypted (not plain SQLite)');
    else if (m.check_note) facts.push(`NOT verified: ${m.check_note}`);
    else facts.push('NOT verified (--verify off)');
    if (m.memories !== undefined) facts.push(`${m.memories} memories`);
    if (m.schema_version !== undefined) facts.push(`schema ${m.schema_version}`);
    if (m.wal_frames) facts.push(`WAL merged up to frame ${m.wal_frames}`);
    io.stdout(`Checked : ${facts.join(', ')}\n`);
    io.stdout(m.signature ? `Signed  : operator key ${m.signer}${r.signing?.keyPath ? ` (${r.signing.keyPath})` : ''}\n` : `Signed  : NO — ai-memory 1.0's restore refuses this backup unless given --allow-unsigned-manifest\n`);
    if (!m.signature && r.signing?.warning) io.stderr(`note: ${r.signing.warning}\n`);
  }
  if (r.pruned.length) io.stdout(`Pruned  : ${r.pruned.join(', ')}\n`);
  if (r.archived.length) io.stdout(`Archived: ${r.archived.join(', ')} (page-dedup archive; \`materialize\` gives a plain file back)\n`);
  if (remote) {
    const o = await pushToTarget({ localDir: resolve(io.cwd, p.values.get('to') ?? './backups'), target: remote, keep: policy, signal: io.signal, onProgress: syncProgressPrinter(p, io) });
    printPush(o, io, false);
    return o.status === 'copied' ? 0 : EXIT_COPY_PENDING;
  }
  return 0;
}

async function remoteTarget(p: Parsed, io: CliIO): Promise<RemoteTarget> {
  const text = p.values.get('remote');
  if (!text) throw new BackupError('USAGE', `${p.command} needs --remote s3://BUCKET/PREFIX or a folder.`);
  return targetFromCli(text, { endpoint: p.values.get('endpoint'), region: p.values.get('region'), profile: p.values.get('profile'), pathStyle: p.switches.has('path-style') ? true : undefined }, io.env, io.home ?? homedir(), io.cwd);
}

function syncProgressPrinter(p: Parsed, io: CliIO): ((x: SyncProgress) => void) | undefined {
  const print = progressPrinter(p, io);
  if (!print) return undefined;
  return (x) => print({ phase: x.phase === 'uploading' || x.phase === 'downloading' ? 'reading' : x.phase === 'deleting' ? 'pruning' : 'checking', done: x.done, total: x.total, message: `${x.phase}${x.name ? ` ${x.name}` : ''}` });
}

/** Human lines (or, with `json`, one JSON line) for a push; `json` false inside `backup`, whose JSON line is the manifest's. */
function printPush(o: PushOutcome, io: CliIO, jsonLine: boolean): void {
  if (jsonLine) {
    io.stdout(json(pushJson(o)));
    return;
  }
  const r = o.report;
  if (r) {
    io.stdout(`Copied  : ${o.target}: ${r.uploaded.length} uploaded${r.present.length ? `, ${r.present.length} already there` : ''}${r.deleted.length ? `, ${r.deleted.length} old deleted` : ''}${r.cleaned.length ? `, ${r.cleaned.length} unfinished cleaned` : ''}\n`);
    for (const s of r.skipped) io.stderr(`warning: not copied: ${s.name} (${s.reason})\n`);
    for (const n of r.notes) io.stderr(`note: ${n}\n`);
    if (r.unreadable.length) io.stderr(`warning: ${r.unreadable.length} snapshot${r.unreadable.length === 1 ? '' : 's'} on ${o.target} kept by retention: whose database ${r.unreadable.length === 1 ? 'it is' : 'they are'} could not be read there (${r.unreadable[0].name}: ${r.unreadable[0].message}); check that the credentials may read objects (GetObject)\n`);
  }
  if (o.error) {
    io.stderr(`${r ? 'warning' : 'error'}: off-machine copy to ${o.target} ${r ? 'incomplete' : 'failed'}: ${o.error.message}\n`);
    if (o.error.hint) io.stderr(`  ${o.error.hint}\n`);
    if (o.next_retry) io.stderr(`  The copy is pending; retried after ${o.next_retry} (or run push again).\n`);
  }
}

async function cmdPush(p: Parsed, io: CliIO): Promise<number> {
  const policy = policyFromFlags(p);
  const target = await remoteTarget(p, io);
  const dir = resolve(io.cwd, p.values.get('to') ?? './backups');
  const st = await fsp.stat(dir).catch(() => undefined);
  if (!st?.isDirectory()) throw new BackupError('NO_SNAPSHOTS', `${dir} is not a backup folder.`, { hint: 'Pass the folder with --to (run `backup` first).' });
  const o = await pushToTarget({ localDir: dir, target, keep: policy, signal: io.signal, onProgress: syncProgressPrinter(p, io) });
  if (o.error?.code === 'CANCELLED') throw new BackupError('CANCELLED', o.error.message);
  printPush(o, io, p.switches.has('json'));
  if (p.switches.has('json') && o.error) io.stderr(json({ status: 'error', code: o.error.code, error: o.error.message, hint: o.error.hint }));
  return o.status === 'copied' ? 0 : 1;
}

async function cmdPull(p: Parsed, io: CliIO): Promise<number> {
  const to = p.values.get('to');
  if (!to) throw new BackupError('USAGE', 'pull needs --to DIR (where the snapshots go).');
  const snap = p.values.get('snapshot');
  if (snap && p.switches.has('all')) throw new BackupError('USAGE', 'Pass --snapshot NAME or --all, not both.');
  const target = await remoteTarget(p, io);
  const refused: PullRefused[] = [];
  // The newest taken by this computer's clock: the newer ones it passed over are said, never silently left.
  const onPassedOver = (newer: string[]) =>
    io.stderr(`Note: ${target.label} holds ${newer.length} newer snapshot${newer.length === 1 ? '' : 's'} dated in the future by this computer's clock (newest: ${newer[0]}); ${newer.length === 1 ? 'it was' : 'they were'} passed over. If this computer's clock is behind, set it right, or pull that one with --snapshot ${newer[0]}.\n`);
  const results = await pullFromTarget({ target, toDir: resolve(io.cwd, to), names: p.switches.has('all') ? 'all' : snap ? [snap] : undefined, integrity: verifyMode(p, true), signal: io.signal, onProgress: syncProgressPrinter(p, io), onRefused: (r) => refused.push(r), onPassedOver });
  if (p.switches.has('json')) {
    io.stdout(json(pullJson(target.label, results, refused)));
    return refused.length ? 1 : 0;
  }
  for (const r of results) io.stdout(`${r.status === 'present' ? 'Present ' : 'Pulled  '}: ${r.path}  ${formatBytes(r.bytes)}  sha256 ${r.sha256}${r.integrity ? `  (${r.integrity})` : ''}\n`);
  for (const r of refused) io.stderr(`Refused : ${r.name}: ${r.error}\n${r.hint ? `  ${r.hint}\n` : ''}`);
  if (results.length) io.stdout(`Restore with: ${TOOL_NAME} restore --from ${results.length === 1 ? results[0].path : resolve(io.cwd, to)}\n`);
  // Said as it is: none pulled is not 'the others were' (every copy on the target refused).
  if (refused.length && !results.length) io.stderr(`error: none of the ${refused.length} snapshot${refused.length === 1 ? '' : 's'} on ${target.label} was pulled (above).\n`);
  else if (refused.length) io.stderr(`error: ${refused.length} of ${results.length + refused.length} snapshots on ${target.label} ${refused.length === 1 ? 'was' : 'were'} not pulled (above); the other ${results.length === 1 ? 'one was' : `${results.length} were`}.\n`);
  return refused.length ? 1 : 0;
}

async function cmdListRemote(p: Parsed, io: CliIO): Promise<number> {
  const target = await remoteTarget(p, io);
  const l = await listRemote(target, io.signal);
  // --probe (the extension's connection test): can we also write, and delete what we wrote?
  let deleteRefused: string | undefined;
  if (p.switches.has('probe')) {
    await target.uploadBytes(PROBE_NAME, Buffer.from(`${TOOL_NAME} connection test\n`), io.signal);
    const r = await target.remove([PROBE_NAME], io.signal);
    deleteRefused = r.refused[0]?.message;
    if (deleteRefused) io.stderr(`warning: ${target.label} lets us write but refused to delete (${deleteRefused}): old snapshots there will not be deleted by retention.\n`);
  }
  if (p.switches.has('json')) {
    io.stdout(json(p.switches.has('probe') ? probeJson(l, deleteRefused) : remoteListJson(l)));
    return 0;
  }
  io.stdout(`${l.target}: ${l.snapshots.filter((s) => s.complete).length} snapshot${l.snapshots.filter((s) => s.complete).length === 1 ? '' : 's'}\n`);
  for (const s of l.snapshots) io.stdout(`  ${s.name}  ${formatBytes(s.bytes)}${s.complete ? '' : '  unfinished upload (no manifest; cleaned by the next push)'}\n`);
  return 0;
}

async function cmdRestore(p: Parsed, io: CliIO): Promise<number> {
  const from = p.values.get('from');
  if (!from) throw new BackupError('USAGE', 'restore needs --from FILE|DIR.', { hint: `Run \`${TOOL_NAME} list\` to see your snapshots.` });
  const db = await dbPath(p, io);
  const verify = verifyMode(p, false);
  if (p.switches.has('latest') && p.values.has('snapshot')) throw new BackupError('USAGE', '--latest and --snapshot cannot be used together.');
  const anchor = p.switches.has('skip-verify') ? null : await publicKey(io);
  const r = await runRestore({
    dbPath: db.path,
    from: resolve(io.cwd, from),
    snapshot: p.values.get('snapshot'),
    latest: p.switches.has('latest'),
    allowUnsignedManifest: p.switches.has('allow-unsigned-manifest'),
    anchor,
    skipVerify: p.switches.has('skip-verify'),
    skipIntegrity: p.switches.has('skip-integrity'),
    verify,
    force: p.switches.has('force'),
    forceInUse: p.switches.has('force-in-use'),
    dryRun: p.switches.has('dry-run'),
    // A database that does not exist is created only where the user named it.
    createIfMissing: db.source === 'flag' && !p.switches.has('no-create'),
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
  const link = r.plan.dbGiven ? ` (${r.plan.dbGiven} is a symbolic link to it)` : '';
  if (r.status === 'dry-run') {
    const lines = [`Dry run: nothing was changed.`, `Would restore ${r.from}`, ...r.plan.checks.map((c) => `  checked: ${c}`), `into ${r.to}${link}${r.created ? ' (a new database: nothing is there yet)' : ''}`];
    if (r.plan.damaged) lines.push(`the current database is damaged (${r.plan.damaged}): it is kept as it is, with its sidecars`);
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
  const sidecarsKept = r.keptAside.filter((k) => k !== r.previous);
  if (sidecarsKept.length) io.stdout(`Kept    : ${sidecarsKept.join(', ')}\n`);
  if (r.created) io.stdout(`Created a new database at ${r.to} (there was none)\n`);
  io.stdout(`Restored ${r.from} → ${r.to}${link}\n`);
  io.stdout(`Checked : ${r.plan.checks.join('; ')}; placed file sha256 ${r.sha256}\n`);
  return 0;
}

function keyContext(io: CliIO): KeyContext {
  return { env: io.env, home: io.home ?? homedir(), platform: process.platform };
}

/** The operator public key, resolved as ai-memory does; notes about ignored keys go to stderr. */
async function publicKey(io: CliIO): Promise<OperatorPublicKey | null> {
  const r = await resolveOperatorPublicKey(keyContext(io));
  for (const n of r.notes) io.stderr(`warning: ${n}\n`);
  return r.key ?? null;
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
  const { reports, packs, gone } = await verifyFolderOrFile({ from: resolve(io.cwd, from), integrity: mode, all, anchor: await publicKey(io), signal: io.signal });
  const failed = reports.filter((r) => r.problems.length).length;
  if (p.switches.has('json')) {
    io.stdout(json({ ...verifyJson(reports, mode, all ? packs : undefined), ...(gone.length ? { gone } : {}) }));
  } else {
    if (gone.length) io.stderr(`note: ${gone.length} snapshot${gone.length === 1 ? '' : 's'} left the folder while this ran (retention of a backup or prune${all ? '' : ', or archived: --all checks archived ones'}), not checked: ${gone.join(', ')}\n`);
    for (const r of reports) io.stdout(`${reportLine(r, mode)}\n`);
    for (const b of packs) io.stdout(`FAIL  pack ${b.pack}: ${b.problem}; ${b.snapshots.length ? `used by ${b.snapshots.join(', ')}` : 'no kept snapshot uses it'}\n`);
    io.stdout(`${reports.length - failed} of ${reports.length} snapshot${reports.length === 1 ? '' : 's'} ok${all ? `; ${packs.length ? `${packs.length} damaged pack${packs.length === 1 ? '' : 's'}` : failed ? 'no pack file damaged (what failed is said above)' : 'every pack intact'}` : ''}\n`);
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
  const db = await dbPath(p, io);
  const r = await runPrune({ backupDir: dir, dbPath: db.path, policy, plain: plainFromFlags(p), dryRun, signal: io.signal });
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

/**
 * Why the policy keeps each snapshot, as the backup of its database would decide it: each
 * database's retention counts only its own snapshots (their manifest's source_db), so the
 * policy is applied per database; a snapshot without a usable manifest takes no part.
 */
async function retentionReasons(dir: string, listed: (SnapshotEntry & OwnerInfo)[], policy: RetentionPolicy, dbPath: string | undefined): Promise<(name: string) => string | undefined> {
  const groups = new Map<string, (SnapshotEntry & OwnerInfo)[]>();
  const guessed = new Set<string>();
  const gone = new Set<string>();
  for (const e of listed) {
    if (!e.source || (dbPath && e.owner !== 'this')) continue;
    // As prune decides (retentionCandidates): a database told from a relative source_db is a guess, never pruned.
    if (e.guessed) {
      guessed.add(e.name);
      continue;
    }
    const g = groups.get(ownerKey(e));
    if (g) g.push(e);
    else groups.set(ownerKey(e), [e]);
    if (e.owner === 'gone') gone.add(e.name);
  }
  const decisions = new Map<string, PruneDecision>();
  for (const group of groups.values()) {
    for (const d of await planRetention(dir, policy, { entries: group, dbPath: group[0].source ?? '' })) decisions.set(d.name, d);
  }
  return (name) => {
    if (guessed.has(name)) return 'kept: its manifest names the database by a relative path, and retention never deletes on that guess';
    const d = decisions.get(name);
    if (!d) return undefined;
    if (d.keep) return d.why;
    // No backup of a database that is not on this machine runs here: only one where it is would delete it.
    return gone.has(name) ? 'not kept by the policy: a backup or prune of its database (not on this machine) would delete it' : 'not kept by the policy: the next backup or prune deletes it';
  };
}

async function cmdList(p: Parsed, io: CliIO): Promise<number> {
  const dir = resolve(io.cwd, p.values.get('to') ?? './backups');
  const dbFlag = p.values.get('db');
  const db = dbFlag ? (await resolveDbPath((await dbPath(p, io)).path)).path : undefined;
  const listed = await withOwners(dir, db, await listSnapshots(dir, { anchor: await publicKey(io), archived: true }));
  // With --db: this database's snapshots first, then the others (each labelled); without, all newest first.
  const entries = db ? [...listed.filter((e) => e.owner === 'this'), ...listed.filter((e) => e.owner !== 'this')] : listed;
  const retention = await retentionReasons(dir, listed, policyFromFlags(p), db);
  if (p.switches.has('json')) {
    io.stdout(json(listJson(entries, db, retention)));
    return 0;
  }
  const sources = new Set(entries.map((e) => ownerKey(e)));
  io.stdout(`${dir}: ${entries.length} snapshot${entries.length === 1 ? '' : 's'}${db ? ` (${entries.filter((e) => e.owner === 'this').length} of ${db})` : ''}\n`);
  for (const e of entries) {
    const when = new Date(e.time).toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC');
    const verdict = snapshotVerdict(e);
    const memories = e.manifest?.memories !== undefined ? `, ${e.manifest.memories} memories` : '';
    const sig = signatureLine(e);
    let state = `${STATE_LABEL[verdict.state]}: ${verdict.detail}${memories}${sig && e.signature?.state !== 'refused' ? `; ${sig}` : ''}`;
    if (e.archived) state += ', archived (materialize gives a plain file)';
    if (e.future) state += '; dated in the future (ranked last)';
    // Whose it is, when that is not obvious: another database than --db, or a folder of several.
    if (db ? e.owner !== 'this' : sources.size > 1) state += e.source ? `; of ${ownerName(e)}${e.owner === 'gone' ? ' (not on this machine)' : ''}` : '; database unknown';
    const why = retention(e.name);
    io.stdout(`  ${when}  ${e.name}  ${formatBytes(e.size)}  ${state}${why ? `  [${why}]` : ''}\n`);
  }
  return 0;
}

const HANDLERS: Record<CommandName, (p: Parsed, io: CliIO) => Promise<number>> = {
  backup: cmdBackup,
  restore: cmdRestore,
  verify: cmdVerify,
  list: (p, io) => (p.values.has('remote') ? cmdListRemote(p, io) : cmdList(p, io)),
  push: cmdPush,
  pull: cmdPull,
  prune: cmdPrune,
  materialize: cmdMaterialize,
  inspect: cmdInspect,
  diff: cmdDiff,
  extract: cmdExtract,
};

function wholeNumber(p: Parsed, flag: string): number | undefined {
  const raw = p.values.get(flag);
  if (raw === undefined) return undefined;
  if (!/^\d+$/.test(raw) || !Number.isSafeInteger(Number(raw))) throw new BackupError('USAGE', `--${flag} must be a whole number; got "${raw}".`);
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
    // A folder's newest snapshot OF THIS DATABASE (found as for backup), as restore picks it.
    ...(dbFlag !== undefined ? { db: (await dbPath(p, io)).path } : { from: fromFlag(p, io, 'inspect'), dbPath: (await dbPath(p, io)).path }),
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
  const current = (await dbPath(p, io)).path;
  const side = to !== undefined ? { snapshot: resolve(io.cwd, to) } : { db: current };
  const c = await diff({ from, to: side, dbPath: current, onWarning: (w) => io.stderr(`warning: ${w}\n`), signal: io.signal });
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
  const found = await dbPath(p, io); // once: its warnings said once
  const db = found.path;
  // The database the import goes into (the one named in the command we print): without --db,
  // found as backup finds it, and compared with when it is there, so title clashes and the
  // memories that exist now under another title are checked against it.
  const current = removed !== undefined ? undefined : dbFlag !== undefined || (await fsp.stat(db).then((st) => st.isFile(), () => false)) ? db : undefined;
  // Without --out the document goes to stdout as it is written (never one string: V8's limit is 512 MB).
  // Found, not named: one that cannot be read (damaged — when memories are most often
  // extracted — unreadable, busy) is not compared with, and that is said; it never stops the extract.
  const r = await extract({ from, select, db: current, dbOptional: dbFlag === undefined, dbPath: db, out, stdout: out ? undefined : (s) => (io.stdout(s), io.stdoutDrained?.()), onWarning: (w) => io.stderr(`warning: ${w}\n`), signal: io.signal });
  if (removed === undefined && (!current || r.dbUnread)) {
    r.warnings.push(
      `title clashes were not checked: the database the import would go into, ${db} (${found.detail}), ${r.dbUnread ? `could not be read (${r.dbUnread})` : 'does not exist'} — ai-memory's import matches memories on title and namespace; pass --db PATH (the database the memories go back into) to have them checked`,
    );
  }
  // The import goes into the database the memories were compared with, named: without --db,
  // a pasted `ai-memory import` would go to whichever database its own defaults pick.
  const into = removed !== undefined ? resolve(io.cwd, removed) : db;
  if (out && p.switches.has('json')) {
    io.stdout(json(extractJson({ ...r, out }, into)));
    return 0;
  }
  for (const w of r.warnings) io.stderr(`warning: ${w}\n`);
  if (r.missing.length) io.stderr(`warning: not in the snapshot: ${r.missing.join(', ')}\n`);
  if (r.expiryCleared.length) io.stderr(`note: ${r.expiryCleared.length} memor${r.expiryCleared.length === 1 ? 'y had' : 'ies had'} expired; written without expires_at so ai-memory's gc does not remove them again at once\n`);
  if (!out) return 0; // the document went to stdout (metadata integers past 2^53 as the snapshot holds them)
  io.stdout(`Wrote ${r.document.count} memor${r.document.count === 1 ? 'y' : 'ies'} and ${r.links} link${r.links === 1 ? '' : 's'} to ${out}\nPut them back with: ${importCommand(out, { db: into })}\n`);
  return 0;
}

/**
 * What we print carries text from databases and folders (memory titles and contents written
 * by agents, file names): terminal control characters (C0 but tab, newline and a CR before a
 * newline; DEL; C1) and bidirectional overrides are shown as `\uXXXX`. Inside JSON strings
 * that is the same character, escaped; JSON has them nowhere else. So no memory can clear
 * the screen, set the window title or reorder what a line says.
 */
export function printable(s: string): string {
  // eslint-disable-next-line no-control-regex -- matching control characters is the point
  return s.replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]|\r(?!\n)/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

export async function runCli(argv: string[], raw: CliIO): Promise<number> {
  const io: CliIO = { ...raw, stdout: (s) => raw.stdout(printable(s)), stderr: (s) => raw.stderr(printable(s)) };
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
