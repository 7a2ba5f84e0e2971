/**
 * The protocol between the extension and the engine — one definition for both sides.
 *
 * The extension runs the bundled CLI (dist/cli.js) as a child process with `--json
 * --progress-json` (src/features/engineClient.ts). This module is everything the two
 * sides must agree on:
 *  - COMMANDS: each command's flags (the CLI parses with it; the client builds argv from it,
 *    so an argument the CLI does not take is a type error, not a runtime surprise);
 *  - the JSON each command prints on success, as a schema (valibot) from which its
 *    TypeScript type is derived; the CLI's builders below return those types, and the client
 *    parses what it receives with the same schemas, so drift fails loudly on either side;
 *  - the error line (`{"status":"error","code":…}`) with its codes as a closed union, and the
 *    progress lines on stderr.
 *
 * Rules: no `vscode` here (the CLI bundles it) and only `import type` from the core (the
 * extension bundles it; it must not pull the engine into the extension host).
 * A new command: add it to COMMANDS and RESULTS, write its builder, and add a case to
 * test/unit/protocol.test.ts (the test fails for a command without one).
 */
import * as v from 'valibot';
import { ERROR_CODES } from '../core/common/errorCodes';
import type { Progress } from '../core/common/cancel';
import type { BackupResult } from '../core/ops/backup';
import type { RestoreResult } from '../core/ops/restore';
import type { SnapshotReport } from '../core/ops/snapshotCheck';
import type { SnapshotEntry } from '../core/store/catalog';
import type { OwnerInfo } from '../core/store/ownership';
import type { CheckMode } from '../core/common/checks';
import { describeVerdict, type SignatureVerdict } from '../core/store/signing';
import type { PushOutcome, RemoteListing } from '../core/remote/sync';
import type { PullRefused, PullResult } from '../core/ops/pull';
import type { RetentionPolicy } from '../core/store/retention';
import type { MaterializeResult } from '../core/ops/archived';
import type { PruneRunResult } from '../core/ops/prune';
import type { PackProblem } from '../core/ops/verify';
import type { InspectResult, ExtractToFileResult } from '../core/ops/memory';
import type { Comparison } from '../core/memory/compare';

// ---------------------------------------------------------------------------------------
// Commands and their flags

export interface CommandSpec {
  /** Flags that take a value (`--to DIR`). */
  readonly values: readonly string[];
  /** Flags that are switches (`--json`). */
  readonly switches: readonly string[];
}

/** Retention flags (restic's semantics, src/core/store/retention.ts); `keep` is `keep-last`. */
const KEEP_FLAGS = ['keep', 'keep-last', 'keep-hourly', 'keep-daily', 'keep-weekly', 'keep-monthly', 'keep-yearly'] as const;

export const COMMANDS = {
  backup: {
    values: ['db', 'to', 'verify', 'skip-if-recent', 'sign-key', 'remote', 'endpoint', 'region', 'profile', 'plain', ...KEEP_FLAGS],
    switches: ['json', 'progress-json', 'path-style'],
  },
  restore: {
    values: ['db', 'from', 'verify', 'snapshot'],
    // latest, snapshot, yes, allow-unsigned-manifest: ai-memory 1.0's restore flags
    // no-create: the --db was discovered, not named by the user (the extension says so): never create it.
    // force-in-use: only the in-use refusal overridden (the extension's Restore Anyway).
    switches: ['json', 'skip-verify', 'skip-integrity', 'force', 'force-in-use', 'dry-run', 'progress-json', 'latest', 'yes', 'allow-unsigned-manifest', 'no-create'],
  },
  verify: { values: ['from', 'verify'], switches: ['json', 'progress-json', 'all'] },
  list: { values: ['to', 'db', 'remote', 'endpoint', 'region', 'profile', ...KEEP_FLAGS], switches: ['json', 'path-style', 'probe'] },
  push: { values: ['to', 'remote', 'endpoint', 'region', 'profile', ...KEEP_FLAGS], switches: ['json', 'progress-json', 'path-style'] },
  pull: { values: ['to', 'snapshot', 'verify', 'remote', 'endpoint', 'region', 'profile'], switches: ['json', 'progress-json', 'path-style', 'all'] },
  prune: { values: ['to', 'db', 'plain', ...KEEP_FLAGS], switches: ['json', 'dry-run'] },
  materialize: { values: ['from', 'out', 'verify'], switches: ['json', 'skip-integrity'] },
  inspect: { values: ['from', 'db', 'search', 'namespace', 'tier', 'offset', 'limit', 'id'], switches: ['json'] },
  diff: { values: ['from', 'to', 'db'], switches: ['json'] },
  extract: { values: ['from', 'ids', 'namespace', 'removed-since-db', 'db', 'out'], switches: ['json'] },
} as const satisfies Record<string, CommandSpec>;

export type CommandName = keyof typeof COMMANDS;

export function isCommandName(name: string): name is CommandName {
  return Object.prototype.hasOwnProperty.call(COMMANDS, name);
}

/** The arguments of one command, typed from COMMANDS: value flags take strings or numbers, switches booleans. */
export type CommandArgs<C extends CommandName> = {
  [K in (typeof COMMANDS)[C]['values'][number]]?: string | number;
} & {
  [K in Exclude<(typeof COMMANDS)[C]['switches'][number], 'json' | 'progress-json'>]?: boolean;
};

/** The retention flags for a policy: `--keep 0` (keep all) for an empty one, else `--keep-<tier> N` (-1 = all). */
export function policyArgs(p: RetentionPolicy): Pick<CommandArgs<'backup'>, (typeof KEEP_FLAGS)[number]> {
  const tiers = (['last', 'hourly', 'daily', 'weekly', 'monthly', 'yearly'] as const).filter((b) => p[b]);
  if (!tiers.length) return { keep: 0 };
  return Object.fromEntries(tiers.map((b) => [`keep-${b}`, p[b] === -1 ? 'all' : p[b]]));
}

/** argv for `cli.js <command> …` as the extension runs it: with --json, and --progress-json where the command reports progress. */
export function engineArgv<C extends CommandName>(command: C, args: CommandArgs<C>): string[] {
  const spec: CommandSpec = COMMANDS[command];
  return [...commandArgv(command, args), '--json', ...(spec.switches.includes('progress-json') ? ['--progress-json'] : [])];
}

/** argv for `cli.js <command> …` from typed arguments (without --json / --progress-json). */
export function commandArgv<C extends CommandName>(command: C, args: CommandArgs<C>): string[] {
  const spec: CommandSpec = COMMANDS[command];
  const argv: string[] = [command];
  for (const [flag, value] of Object.entries(args) as [string, string | number | boolean | undefined][]) {
    if (value === undefined || value === false) continue;
    if (spec.values.includes(flag)) argv.push(`--${flag}`, String(value));
    else if (spec.switches.includes(flag) && value === true) argv.push(`--${flag}`);
    else throw new Error(`${command} does not take --${flag}`); // unreachable for typed callers
  }
  return argv;
}

// ---------------------------------------------------------------------------------------
// What each command prints with --json

/** ai-memory's six manifest fields, then ours (see src/core/store/manifest.ts). Unknown fields pass through. */
const manifestEntries = {
  snapshot: v.string(),
  sha256: v.string(),
  bytes: v.number(),
  source_db: v.string(),
  version: v.string(),
  created_at: v.string(),
  // ai-memory 1.0's fields (store/signing.ts)
  backend: v.optional(v.string()),
  memory_count: v.optional(v.number()),
  manifest_version: v.optional(v.number()),
  signed_payload: v.optional(v.string()),
  signature: v.optional(v.string()),
  signer: v.optional(v.string()),
  tool: v.optional(v.string()),
  integrity: v.optional(v.picklist(['ok', 'failed', 'unverified', 'encrypted'])),
  check: v.optional(v.picklist(['quick', 'full', 'off'])),
  check_note: v.optional(v.string()),
  page_size: v.optional(v.number()),
  pages: v.optional(v.number()),
  memories: v.optional(v.number()),
  schema_version: v.optional(v.number()),
  wal_frames: v.optional(v.number()),
  sqlite: v.optional(v.string()),
};

const CopyErrorJson = v.object({ code: v.string(), message: v.string(), hint: v.optional(v.string()) });

/** `push`: how the copy to one target went (exit 1 with this line when it failed: the error is in it). */
export const PushJson = v.object({
  status: v.picklist(['copied', 'failed']),
  target: v.string(),
  uploaded: v.optional(v.array(v.string())),
  present: v.optional(v.array(v.string())),
  deleted: v.optional(v.array(v.string())),
  cleaned: v.optional(v.array(v.string())),
  refused: v.optional(v.array(v.object({ name: v.string(), message: v.string() }))),
  skipped: v.optional(v.array(v.object({ name: v.string(), reason: v.string() }))),
  remote_only: v.optional(v.array(v.object({ name: v.string(), bytes: v.number() }))),
  /** Kept on the target because their manifest could not be read there (whose database they are is unknown). */
  unreadable: v.optional(v.array(v.object({ name: v.string(), message: v.string() }))),
  /** Facts about the copies that are no failure (a mirror drive that keeps no permissions). */
  notes: v.optional(v.array(v.string())),
  error: v.optional(CopyErrorJson),
  next_retry: v.optional(v.string()),
});

export const BackupJson = v.looseObject({
  status: v.picklist(['created', 'unchanged', 'skipped']),
  ...manifestEntries,
  /** As ai-memory 1.0 prints it: the manifest carries an operator signature. */
  signed: v.boolean(),
  /** Why it is not signed, and what ai-memory 1.0's restore will then need. */
  unsigned_reason: v.optional(v.string()),
  /** For `unchanged`: when the identical snapshot was made. */
  unchanged_since: v.optional(v.string()),
  pruned: v.optional(v.array(v.string())),
  /** The file that was read and the path given, when the given path is a symlink (source_db is the file read). */
  db_read: v.optional(v.string()),
  db_given: v.optional(v.string()),
  /** With --remote: the copy after the backup (exit 3 when it failed). */
  remote: v.optional(PushJson),
  /** Snapshots this run moved into the page-dedup archive (`archived` is the manifest's count of archived memories). */
  archived_snapshots: v.optional(v.array(v.string())),
});

export const PullJson = v.object({
  status: v.literal('pulled'),
  from: v.string(),
  snapshots: v.array(
    v.object({
      name: v.string(),
      path: v.string(),
      manifestPath: v.string(),
      bytes: v.number(),
      sha256: v.string(),
      status: v.picklist(['downloaded', 'present']),
      integrity: v.optional(v.string()),
    }),
  ),
  /** `--all`: snapshots passed over, each with why (exit 1); the others were pulled. */
  refused: v.optional(v.array(v.object({ name: v.string(), code: v.string(), error: v.string(), hint: v.optional(v.string()) }))),
});

const RemoteEntryJson = v.object({ name: v.string(), bytes: v.number(), complete: v.boolean() });
/** `list --remote`: the snapshots on a target, newest first (complete = its manifest is there). */
export const RemoteListJson = v.array(RemoteEntryJson);
/** `list --remote --probe`: the connection test (list, write and delete a probe object). */
export const ProbeJson = v.object({ status: v.literal('ok'), target: v.string(), snapshots: v.array(RemoteEntryJson), delete_refused: v.optional(v.string()) });

const RestorePlanJson = v.object({
  snapshot: v.string(),
  manifest: v.optional(v.string()),
  checks: v.array(v.string()),
  db: v.string(),
  dbExists: v.boolean(),
  dbGiven: v.optional(v.string()),
  damaged: v.optional(v.string()),
  source: v.object({ owner: v.picklist(['this', 'other', 'gone', 'unknown']), source: v.optional(v.string()), host: v.optional(v.string()) }),
  keep: v.array(v.object({ from: v.string(), to: v.string() })),
  consolidate: v.boolean(),
  holders: v.array(v.object({ pid: v.number(), command: v.string(), file: v.string(), how: v.picklist(['lock', 'open']) })),
  verification: v.optional(v.string()),
  /** Dry run only: why the restore itself would refuse (the database is in use). */
  wouldRefuse: v.optional(v.object({ code: v.literal('IN_USE'), message: v.string(), hint: v.string() })),
});

/** The signature verdict as the protocol carries it (store/signing.ts SignatureVerdict). */
const SignatureStateJson = v.picklist(['verified', 'signed-no-key', 'unsigned', 'refused']);

/** ai-memory 1.0's `manifest_verification`, plus `unsigned` / `signed_no_key` for the 0.7 posture (no operator key). */
export const MANIFEST_VERIFICATIONS = ['signed', 'unsigned_allowed', 'unsigned', 'signed_no_key', 'skipped'] as const;
export type ManifestVerification = (typeof MANIFEST_VERIFICATIONS)[number];

export const RestoreJson = v.object({
  status: v.picklist(['restored', 'dry-run']),
  from: v.string(),
  to: v.string(),
  previous: v.optional(v.string()),
  // ai-memory 1.0's names: rollback (= previous), selected_by, manifest_verification
  rollback: v.optional(v.nullable(v.string())),
  selected_by: v.optional(v.picklist(['explicit', 'latest'])),
  manifest_verification: v.optional(v.picklist(MANIFEST_VERIFICATIONS)),
  /** The operator key that signed the manifest, when it verified. */
  signer: v.optional(v.string()),
  sha256: v.string(),
  bytes: v.number(),
  /** Every file kept aside: the database and each of its sidecars (-wal, -shm, -journal). */
  kept_aside: v.array(v.string()),
  /** There was no database at `to` (a path named with --db): a new one was created. */
  created: v.boolean(),
  /** The database the snapshot was taken of (its manifest's source_db), and whether that is `to`. */
  source_db: v.optional(v.string()),
  source_is_this_db: v.boolean(),
  /** The snapshot's manifest names its database by a relative path: taken as this one's on that guess. */
  source_guessed: v.optional(v.boolean()),
  /** The snapshot's manifest says it was taken on another machine: that machine's host name. */
  source_host: v.optional(v.string()),
  db_given: v.optional(v.string()),
  /** Why the replaced database counted as damaged (kept as it was, nothing folded in). */
  damaged: v.optional(v.string()),
  plan: v.optional(RestorePlanJson),
  /** A dry run that the restore would refuse (the CLI then exits 1). */
  would_refuse: v.optional(v.object({ code: v.string(), error: v.string(), hint: v.optional(v.string()) })),
});

const ManifestStateJson = v.picklist(['ok', 'missing', 'invalid', 'foreign', 'skipped']);

export const VerifyJson = v.object({
  status: v.picklist(['ok', 'failed']),
  snapshots: v.array(
    v.object({
      name: v.string(),
      path: v.string(),
      ok: v.boolean(),
      bytes: v.number(),
      sha256: v.optional(v.string()),
      manifest: ManifestStateJson,
      /** Which SQLite check ran: quick (quick_check) or full (integrity_check). */
      check: v.optional(v.picklist(['quick', 'full'])),
      integrity: v.optional(v.string()),
      memories: v.optional(v.number()),
      signature: v.optional(SignatureStateJson),
      signer: v.optional(v.string()),
      problems: v.array(v.string()),
      notes: v.array(v.string()),
    }),
  ),
  /** With --all: packs whose bytes do not match their name, and the archived snapshots that use them. */
  damaged_packs: v.optional(v.array(v.object({ pack: v.string(), problem: v.string(), snapshots: v.array(v.string()) }))),
});

export const ListJson = v.array(
  v.looseObject({
    name: v.string(),
    path: v.string(),
    time: v.string(),
    time_from: v.picklist(['name', 'mtime']),
    bytes: v.number(),
    manifest: ManifestStateJson,
    size_matches: v.optional(v.boolean()),
    sha256: v.optional(v.string()),
    integrity: v.optional(v.string()),
    memories: v.optional(v.number()),
    tool: v.optional(v.string()),
    signature: v.optional(SignatureStateJson),
    /** The operator key that signed it, when the signature verified here. */
    signer: v.optional(v.string()),
    /** The verdict in words (the tree's tooltip line); for `refused`, the reason. */
    signature_detail: v.optional(v.string()),
    /** Dated later than now (+10 min): ranked after every other snapshot. */
    future: v.optional(v.boolean()),
    /** The database it was taken of (its manifest's source_db, resolved). */
    source_db: v.optional(v.string()),
    /** With --db: whether it is that database's snapshot. */
    this_db: v.optional(v.boolean()),
    /** Its manifest names the database by a relative path: whose it is was guessed (never pruned on it). */
    source_guessed: v.optional(v.boolean()),
    /** Its manifest says it was taken on another machine (that machine's host name): never this machine's database, whatever its path. */
    source_host: v.optional(v.string()),
    /** Stored in the page-dedup archive (restore, verify and materialize take it by `path`). */
    archived: v.optional(v.boolean()),
    /** Why the retention policy keeps it ("hourly 3 of 48 (2026-11-29 14h)"), or that it will go. */
    retention: v.optional(v.string()),
  }),
);

export const PruneJson = v.object({
  status: v.picklist(['pruned', 'dry-run']),
  policy: v.string(),
  kept: v.array(v.object({ name: v.string(), time: v.string(), archived: v.boolean(), reasons: v.array(v.string()) })),
  deleted: v.optional(v.array(v.string())),
  would_delete: v.optional(v.array(v.string())),
  archived: v.optional(v.array(v.string())),
  would_archive: v.optional(v.array(v.string())),
  packs_deleted: v.optional(v.number()),
  packs_repacked: v.optional(v.number()),
  freed_bytes: v.optional(v.number()),
});

export const MaterializeJson = v.object({
  status: v.literal('materialized'),
  from: v.string(),
  out: v.string(),
  manifest: v.string(),
  sha256: v.string(),
  bytes: v.number(),
});

const Counts = v.record(v.string(), v.number());

/** What a snapshot holds (src/core/memory/facts.ts). */
export const FactsJson = v.object({
  facts_version: v.number(),
  memories: v.number(),
  memories_by_tier: Counts,
  memories_by_namespace: Counts,
  links: v.number(),
  archived: v.number(),
  schema_version: v.optional(v.number()),
  memories_digest: v.string(),
});

const MemoryRowJson = v.object({ id: v.string(), title: v.string(), namespace: v.string(), tier: v.string(), updated_at: v.string() });
const Nullable = v.union([v.string(), v.number(), v.null()]);

export const InspectJson = v.object({
  status: v.literal('ok'),
  snapshot: v.object({
    path: v.string(),
    name: v.string(),
    bytes: v.number(),
    manifest: v.picklist(['ok', 'missing', 'invalid', 'foreign']),
    sha256: v.optional(v.string()),
    created_at: v.optional(v.string()),
    integrity: v.optional(v.string()),
    database: v.optional(v.boolean()),
    warnings: v.array(v.string()),
  }),
  /** 'ai-memory', or 'sqlite' for another SQLite file (then `tables` says what it holds). */
  kind: v.picklist(['ai-memory', 'sqlite']),
  schema_version: v.optional(v.number()),
  facts: v.optional(FactsJson),
  tables: v.optional(v.array(v.object({ table: v.string(), rows: v.number() }))),
  page: v.optional(v.object({ total: v.number(), offset: v.number(), rows: v.array(MemoryRowJson) })),
  memory: v.optional(
    v.object({
      memory: v.record(v.string(), Nullable),
      links: v.array(v.object({ direction: v.picklist(['out', 'in']), other_id: v.string(), other_title: v.optional(v.string()), relation: v.string(), created_at: v.nullable(v.string()) })),
    }),
  ),
});

const SummaryJson = { id: v.string(), title: v.string(), namespace: v.string(), tier: v.string() };
const LinkJson = v.object({ source_id: v.string(), target_id: v.string(), relation: v.string(), created_at: v.nullable(v.string()) });
const SideJson = v.object({ label: v.string(), memories: v.number(), schema_version: v.optional(v.number()) });

export const DiffJson = v.object({
  status: v.literal('ok'),
  from: SideJson,
  to: SideJson,
  schema: v.object({
    same: v.boolean(),
    compared_fields: v.array(v.string()),
    only_in_from: v.array(v.string()),
    only_in_to: v.array(v.string()),
    note: v.optional(v.string()),
  }),
  added: v.array(v.object(SummaryJson)),
  removed: v.array(v.object({ ...SummaryJson, how: v.picklist(['deleted', 'archived']), archive_reason: v.optional(v.string()), archived_at: v.optional(v.string()) })),
  edited: v.array(v.object({ ...SummaryJson, fields: v.array(v.string()) })),
  recall_only: v.number(),
  unchanged: v.number(),
  links_added: v.array(LinkJson),
  links_removed: v.array(LinkJson),
});

export const ExtractJson = v.object({
  status: v.literal('ok'),
  out: v.string(),
  /** Memories in the file, and their ids. */
  count: v.number(),
  ids: v.array(v.string()),
  links: v.number(),
  /** Ids asked for that the snapshot does not have. */
  missing: v.array(v.string()),
  /** Memories written without their (already past) expires_at. */
  expiry_cleared: v.array(v.string()),
  /** Memories whose title and namespace another memory holds now: ai-memory's import matches on them (0.x overwrites that one). */
  title_clashes: v.array(v.object({ id: v.string(), title: v.string(), current: v.string() })),
  warnings: v.array(v.string()),
  /** What to run to put them back: ai-memory's own import reads the file on stdin. */
  import_command: v.string(),
});

/** The schema of each command's success line on stdout. */
export const RESULTS = {
  backup: BackupJson,
  restore: RestoreJson,
  verify: VerifyJson,
  // A local folder, a target (--remote), or a connection test (--remote --probe).
  list: v.union([ListJson, RemoteListJson, ProbeJson]),
  push: PushJson,
  pull: PullJson,
  prune: PruneJson,
  materialize: MaterializeJson,
  inspect: InspectJson,
  diff: DiffJson,
  extract: ExtractJson,
} as const satisfies Record<CommandName, v.GenericSchema>;

export type ResultOf<C extends CommandName> = v.InferOutput<(typeof RESULTS)[C]>;
export type BackupOutcome = ResultOf<'backup'>;
export type RestoreOutcome = ResultOf<'restore'>;
export type VerifyOutcome = ResultOf<'verify'>;
export type ListOutcome = v.InferOutput<typeof ListJson>;
export type PushOutcomeJson = ResultOf<'push'>;
export type PullOutcome = ResultOf<'pull'>;
export type ProbeOutcome = v.InferOutput<typeof ProbeJson>;
export type PruneOutcome = ResultOf<'prune'>;
export type MaterializeOutcome = ResultOf<'materialize'>;
export type InspectOutcome = ResultOf<'inspect'>;
export type DiffOutcome = ResultOf<'diff'>;
export type ExtractOutcome = ResultOf<'extract'>;

/** Commands whose exit code 1 still comes with a result (verify: some snapshot failed). */
export const RESULT_ON_FAILURE: ReadonlySet<CommandName> = new Set<CommandName>(['verify', 'push']);

/** The error line, on stderr with --json. */
export const ErrorJson = v.object({
  status: v.literal('error'),
  code: v.picklist(ERROR_CODES),
  error: v.string(),
  hint: v.optional(v.string()),
  state: v.optional(v.string()),
});
export type ErrorLine = v.InferOutput<typeof ErrorJson>;

/** A progress line, on stderr with --progress-json. */
export const ProgressJson = v.object({
  progress: v.object({
    phase: v.string(),
    done: v.optional(v.number()),
    total: v.optional(v.number()),
    message: v.optional(v.string()),
  }),
});
export type EngineProgress = v.InferOutput<typeof ProgressJson>['progress'];

// ---------------------------------------------------------------------------------------
// Builders: the CLI's --json output, from the engine's results

export function backupJson(r: BackupResult): BackupOutcome {
  return {
    status: r.status,
    ...r.manifest,
    signed: r.manifest.signature !== undefined,
    unsigned_reason: r.status === 'created' && r.signing && !r.signing.signed ? r.signing.warning : undefined,
    ...(r.status === 'unchanged' ? { unchanged_since: r.unchangedSince } : {}),
    ...(r.pruned.length ? { pruned: r.pruned } : {}),
    ...(r.db.viaLink ? { db_read: r.db.path, db_given: r.db.given } : {}),
    ...(r.archived.length ? { archived_snapshots: r.archived } : {}),
  };
}

export function restoreJson(r: RestoreResult): RestoreOutcome {
  return {
    status: r.status,
    from: r.from,
    to: r.to,
    previous: r.previous,
    rollback: r.previous ?? null,
    selected_by: r.plan.selection.selectedBy,
    manifest_verification: r.plan.verification,
    signer: signerOf(r.plan.signature),
    sha256: r.sha256,
    bytes: r.bytes,
    kept_aside: r.keptAside,
    created: r.created,
    source_db: r.plan.source.source,
    source_is_this_db: r.plan.source.owner === 'this',
    ...(r.plan.source.guessed ? { source_guessed: true } : {}),
    ...(r.plan.source.host ? { source_host: r.plan.source.host } : {}),
    ...(r.plan.dbGiven ? { db_given: r.plan.dbGiven } : {}),
    ...(r.plan.damaged ? { damaged: r.plan.damaged } : {}),
    ...(r.status === 'dry-run' ? { plan: r.plan } : {}),
    ...(r.status === 'dry-run' && r.plan.wouldRefuse ? { would_refuse: { code: r.plan.wouldRefuse.code, error: r.plan.wouldRefuse.message, hint: r.plan.wouldRefuse.hint } } : {}),
  };
}

export function verifyJson(reports: SnapshotReport[], mode: CheckMode, packs?: PackProblem[]): VerifyOutcome {
  const failed = reports.some((r) => r.problems.length) || (packs?.length ?? 0) > 0;
  return {
    status: failed ? 'failed' : 'ok',
    ...(packs ? { damaged_packs: packs } : {}),
    snapshots: reports.map((r) => ({
      name: r.name,
      path: r.path,
      ok: r.problems.length === 0,
      bytes: r.bytes,
      sha256: r.sha256,
      manifest: r.manifestState,
      check: r.integrity ? mode : undefined,
      integrity: r.integrity?.result,
      memories: r.integrity?.memories,
      signature: r.signature?.state,
      signer: signerOf(r.signature),
      problems: r.problems.map((x) => x.message),
      notes: r.notes,
    })),
  };
}

export function listJson(entries: (SnapshotEntry & OwnerInfo)[], dbPath?: string, retention?: (name: string) => string | undefined): ListOutcome {
  return entries.map((e) => ({
    archived: e.archived === true,
    retention: retention?.(e.name),
    name: e.name,
    path: e.path,
    time: new Date(e.time).toISOString(),
    time_from: e.timeSource,
    bytes: e.size,
    manifest: e.manifestState,
    size_matches: e.sizeMatches,
    sha256: e.manifest?.sha256,
    integrity: e.manifest?.integrity,
    memories: e.manifest?.memories,
    tool: e.manifest?.tool,
    signature: e.signature?.state,
    signer: signerOf(e.signature),
    signature_detail: e.signature ? describeVerdict(e.signature) : undefined,
    future: e.future || undefined,
    source_db: e.source,
    ...(dbPath ? { this_db: e.owner === 'this' } : {}),
    ...(e.guessed ? { source_guessed: true } : {}),
    ...(e.host ? { source_host: e.host } : {}),
  }));
}

function signerOf(v: SignatureVerdict | undefined): string | undefined {
  return v?.state === 'verified' ? v.fingerprint : undefined;
}

export function pushJson(o: PushOutcome): PushOutcomeJson {
  const r = o.report;
  return {
    status: o.status,
    target: o.target,
    uploaded: r?.uploaded,
    present: r?.present,
    deleted: r?.deleted,
    cleaned: r?.cleaned,
    refused: r?.refused,
    skipped: r?.skipped,
    remote_only: r?.remoteOnly,
    unreadable: r?.unreadable,
    notes: r?.notes.length ? r.notes : undefined,
    error: o.error,
    next_retry: o.next_retry,
  };
}

export function pullJson(from: string, results: PullResult[], refused: PullRefused[] = []): PullOutcome {
  return { status: 'pulled', from, snapshots: results, ...(refused.length ? { refused } : {}) };
}

export function remoteListJson(l: RemoteListing): v.InferOutput<typeof RemoteListJson> {
  return l.snapshots.map((s) => ({ name: s.name, bytes: s.bytes, complete: s.complete }));
}

export function probeJson(l: RemoteListing, deleteRefused: string | undefined): ProbeOutcome {
  return { status: 'ok', target: l.target, snapshots: remoteListJson(l), delete_refused: deleteRefused };
}

export function pruneJson(r: PruneRunResult, dryRun: boolean): PruneOutcome {
  const pruned = new Set(r.pruned);
  return {
    status: dryRun ? 'dry-run' : 'pruned',
    policy: r.policy,
    kept: r.decisions.filter((d) => d.keep).map((d) => ({ name: d.name, time: new Date(d.time).toISOString(), archived: d.entry.archived === true, reasons: d.reasons.map((x) => x.text) })),
    ...(dryRun
      ? { would_delete: r.decisions.filter((d) => !d.keep).map((d) => d.name), would_archive: r.wouldArchive ?? [] }
      : { deleted: r.decisions.filter((d) => pruned.has(d.name)).map((d) => d.name), archived: r.archive?.archived ?? [] }),
    ...(r.archive ? { packs_deleted: r.archive.gc.deletedPacks.length, packs_repacked: r.archive.gc.repacked.length, freed_bytes: r.archive.gc.freedBytes } : {}),
  };
}

export function materializeJson(r: MaterializeResult): MaterializeOutcome {
  return { status: 'materialized', from: r.from, out: r.out, manifest: r.manifest, sha256: r.sha256, bytes: r.bytes };
}

export function inspectJson(r: InspectResult): InspectOutcome {
  return {
    status: 'ok',
    snapshot: r.snapshot,
    kind: r.overview.kind,
    schema_version: r.overview.schema_version,
    facts: r.overview.facts,
    tables: r.overview.tables,
    page: r.page,
    memory: r.memory ? { memory: { ...r.memory.memory }, links: r.memory.links } : undefined,
  };
}

export function diffJson(c: Comparison): DiffOutcome {
  return { status: 'ok', ...c };
}

/**
 * The command that imports `file` into `db` with ai-memory, every part quoted: for a POSIX
 * shell (single quotes, a quote inside as '\''), or on Windows for the Command Prompt (double
 * quotes, which no Windows path contains; `<` works there, not in PowerShell). A path from
 * an MCP configuration may hold `$(…)`, `;` or a quote: pasted, it must stay a path.
 */
export function importCommand(file: string, opts: { binary?: string; db?: string; platform?: NodeJS.Platform } = {}): string {
  const win = (opts.platform ?? process.platform) === 'win32';
  const q = (s: string): string => {
    if (win) return /^[\w@+=:,./\\-]+$/.test(s) ? s : `"${s}"`;
    return /^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, "'\\''")}'`;
  };
  const db = opts.db === undefined ? '' : ` --db ${q(opts.db)}`;
  return `${q(opts.binary ?? 'ai-memory')}${db} import < ${q(file)}`;
}

export function extractJson(r: ExtractToFileResult & { out: string }, db?: string): ExtractOutcome {
  return {
    status: 'ok',
    out: r.out,
    count: r.document.count,
    ids: r.document.memories.map((m) => m.id),
    links: r.links,
    missing: r.missing,
    expiry_cleared: r.expiryCleared,
    title_clashes: r.titleClashes,
    warnings: r.warnings,
    import_command: importCommand(r.out, { db }),
  };
}

export function progressJson(p: Progress): { progress: EngineProgress } {
  return { progress: p };
}

/** Parses one command's stdout line; throws a readable error naming the field that did not match. */
export function parseResult<C extends CommandName>(command: C, value: unknown): ResultOf<C> {
  const r = v.safeParse(RESULTS[command] as v.GenericSchema, value);
  if (!r.success) {
    const issue = r.issues[0];
    const where = v.getDotPath(issue) ?? '(top level)';
    throw new Error(`the engine's answer to ${command} does not have the expected shape at ${where}: ${issue.message}`);
  }
  return r.output as ResultOf<C>;
}
