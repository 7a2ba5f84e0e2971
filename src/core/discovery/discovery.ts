/**
 * Finds the ai-memory database(s) a user's AI agents are configured to use.
 *
 * ai-memory keeps everything in one SQLite file whose path is usually given
 * as `--db PATH` in an agent's MCP server configuration. This module reads
 * every agent configuration we know about, picks out the servers that run
 * ai-memory, and returns the database paths — deduplicated, in a stable
 * "most specific first" order, each with the list of places that mention it.
 *
 * Everything the scan depends on (home, env, platform, workspace folders,
 * file access) is passed in, so the CLI and the extension can share it and
 * tests can run it against an in-memory file system. Broken or unreadable
 * config files become `diagnostics` lines; discovery itself never throws.
 *
 * This module must not import `vscode` (shared by CLI, extension and tests).
 */

import { errorMessage } from '../common/errors';
import { readSmallRegular } from '../common/regularFile';
import { promises as fsp } from 'fs';
import { ConfigSyntaxError, parseJsonc, parseToml, type TomlTable } from './configFormats';
import {
  EnvMap,
  PathContext,
  WorkspaceFolderRef,
  lookupEnv,
  pathApi,
  pathKey,
  readAiMemoryConfigDb,
  tryExpandPath,
} from './paths';

export type SourceKind =
  | 'vscode-workspace'
  | 'vscode-user'
  | 'claude-project'
  | 'claude-user'
  | 'cursor-workspace'
  | 'cursor-user'
  | 'windsurf'
  | 'gemini'
  | 'codex'
  | 'env'
  | 'ai-memory-config'
  | 'common-path';

export interface CandidateSource {
  kind: SourceKind;
  /** Absolute path of the configuration file that mentions the database. */
  file?: string;
  /** MCP server name inside that file. */
  server?: string;
  /** Short human-readable form of `file` (`~/.claude.json`, `.vscode/mcp.json`, `web/.vscode/mcp.json`). */
  fileLabel?: string;
  /** For `~/.claude.json` per-project entries: the project path key. */
  project?: string;
  /** How the path was found, e.g. `--db ${userHome}/.claude/ai-memory.db`. */
  detail: string;
}

export interface Candidate {
  /** Absolute, normalized database path. */
  path: string;
  /** Whether a regular file exists at `path` right now. */
  exists: boolean;
  /** File size in bytes, when it exists. */
  size?: number;
  /** Every place that points at this database, in discovery order. */
  sources: CandidateSource[];
}

export interface DiscoveryFs {
  /** File contents; `undefined` when it does not exist. May throw on other errors (reported as diagnostics). */
  readFile(path: string): Promise<string | undefined>;
  /** `undefined` when nothing exists at `path`. */
  stat(path: string): Promise<{ isFile: boolean; size: number } | undefined>;
}

export interface DiscoveryContext {
  /** Absolute home directory. */
  home: string;
  env: EnvMap;
  platform: NodeJS.Platform;
  workspaceFolders: readonly WorkspaceFolderRef[];
  /**
   * The VS Code user-data `User` folder holding `mcp.json` (the extension
   * passes the real one: it differs per product, profile and code-server's
   * --user-data-dir). When absent, the stable, Insiders and VSCodium
   * defaults for `platform` are checked.
   */
  vscodeUserDir?: string;
  /**
   * Directory that relative `$AI_MEMORY_DB` / config.toml `db` values are
   * taken relative to (the CLI passes its cwd). Defaults to the first
   * workspace folder; with neither, such values are reported, not guessed.
   */
  cwd?: string;
  fs: DiscoveryFs;
}

export interface DiscoveryResult {
  candidates: Candidate[];
  diagnostics: string[];
}

/** A `fs/promises`-backed {@link DiscoveryFs} for real use (CLI, extension). */
export function createNodeDiscoveryFs(): DiscoveryFs {
  const missing = (err: unknown): boolean => {
    const code = (err as NodeJS.ErrnoException | undefined)?.code;
    return code === 'ENOENT' || code === 'ENOTDIR';
  };
  return {
    async readFile(path) {
      try {
        // Regular files only (a FIFO must not hang discovery); an agent's config can be large (~/.claude.json holds its history).
        return await readSmallRegular(path, 256 << 20);
      } catch (err) {
        if (missing(err)) return undefined;
        throw err;
      }
    },
    async stat(path) {
      try {
        const st = await fsp.stat(path);
        return { isFile: st.isFile(), size: st.size };
      } catch (err) {
        if (missing(err)) return undefined;
        throw err;
      }
    },
  };
}

// ---------------------------------------------------------------------------
// Recognising ai-memory server entries
// ---------------------------------------------------------------------------

/**
 * Package runners that take a package name and run it. `npx -y ai-memory
 * --db x mcp` or `uvx ai-memory …` is ai-memory; `npx
 * @modelcontextprotocol/server-memory` is not.
 */
const LAUNCHERS = new Set(['npx', 'pnpx', 'bunx', 'uvx', 'pipx', 'npm', 'pnpm', 'yarn', 'bun', 'uv']);

/** `ai-memory`, `ai-memory@1.2.3`, `ai-memory@latest`, `ai-memory==1.2` (PyPI-style pin). */
const AI_MEMORY_PACKAGE = /^ai-memory(?:@[^\s/]+|==\S+)?$/i;

/** Basename of a command, lower-cased, without a Windows executable extension. */
function commandName(command: string): string {
  const base = command.split(/[\\/]/).pop() ?? command;
  return base.toLowerCase().replace(/\.(exe|cmd|bat)$/, '');
}

/**
 * If `command args…` runs ai-memory, returns the arguments ai-memory itself
 * receives; otherwise `undefined`.
 *
 * Recognised: a command whose basename is `ai-memory` (any directory, any
 * of `.exe`/`.cmd`/`.bat` on Windows); a known package runner (see
 * {@link LAUNCHERS}) with an argument that is exactly the package name
 * `ai-memory` (optionally version-pinned) — ai-memory's arguments are the
 * ones after it; and Windows' `cmd /c <one of those>` wrapper. Shells
 * (`bash -c "…"`), containers (`docker run …`, where `--db` names a path
 * inside the container) and other interpreters are deliberately not
 * recognised.
 */
export function aiMemoryArgs(command: string, args: readonly string[]): string[] | undefined {
  const name = commandName(command);
  if (name === 'ai-memory') {
    return [...args];
  }
  if (name === 'cmd' && args.length >= 2 && /^\/[ck]$/i.test(args[0])) {
    return aiMemoryArgs(args[1], args.slice(2));
  }
  if (LAUNCHERS.has(name)) {
    const idx = args.findIndex((a) => AI_MEMORY_PACKAGE.test(a));
    if (idx !== -1) {
      return args.slice(idx + 1);
    }
  }
  return undefined;
}

export interface DbFlag {
  /** The raw value as written. */
  value: string;
  /** `--db VALUE` or `--db=VALUE`. */
  form: '--db' | '--db=';
}

/**
 * The `--db` value in ai-memory's arguments (`--db PATH` or `--db=PATH`,
 * anywhere before a `--` terminator). With several, the last wins, as with
 * most argument parsers. `null` means `--db` was present without a value.
 */
export function findDbFlag(args: readonly string[]): DbFlag | null | undefined {
  let found: DbFlag | null | undefined;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === '--') {
      break;
    }
    if (arg === '--db') {
      const next = args[i + 1];
      found = next === undefined ? null : { value: next, form: '--db' };
      i++;
    } else if (arg.startsWith('--db=')) {
      found = { value: arg.slice('--db='.length), form: '--db=' };
    }
  }
  return found;
}

// ---------------------------------------------------------------------------
// Discovery
// ---------------------------------------------------------------------------

interface ScanTarget {
  kind: SourceKind;
  file: string;
  format: 'jsonc' | 'toml';
  /**
   * The workspace folder a workspace-scoped file (or ~/.claude.json project
   * entry) belongs to; absent for user-scoped files.
   */
  folder?: string;
}

/** Internal accumulator shared by the steps of one discovery run. */
class Discovery {
  readonly diagnostics: string[] = [];
  private readonly byKey = new Map<string, Candidate>();
  private readonly order: Candidate[] = [];
  private readonly readCache = new Map<string, Promise<string | undefined>>();
  readonly api: ReturnType<typeof pathApi>;
  readonly folders: WorkspaceFolderRef[];
  /**
   * Where an ai-memory server without `--db`/env would end up, if not in its
   * cwd: resolved once, before the scan, so such servers can be attributed.
   */
  fallback: { env?: string; envRaw?: string; config?: string; configRaw?: string; configFile?: string } = {};

  constructor(readonly ctx: DiscoveryContext) {
    this.api = pathApi(ctx.platform);
    this.folders = ctx.workspaceFolders.map((f) => ({ name: f.name, path: this.api.resolve(ctx.home, f.path) }));
  }

  /** Reads a file once per run (~/.claude.json and config.toml are consulted more than once). */
  read(file: string): Promise<string | undefined> {
    let p = this.readCache.get(file);
    if (!p) {
      p = this.ctx.fs.readFile(file);
      this.readCache.set(file, p);
    }
    return p;
  }

  /** Reads a file, turning read errors into a diagnostic and `undefined`. */
  async readOrReport(file: string): Promise<string | undefined> {
    try {
      return await this.read(file);
    } catch (err) {
      this.diagnostics.push(`${this.label(file)}: cannot read: ${errorMessage(err)}`);
      return undefined;
    }
  }

  add(path: string, source: CandidateSource): void {
    const key = pathKey(path, this.ctx.platform);
    let candidate = this.byKey.get(key);
    if (!candidate) {
      candidate = { path, exists: false, sources: [] };
      this.byKey.set(key, candidate);
      this.order.push(candidate);
    }
    candidate.sources.push(source);
  }

  /** Stats every candidate (in parallel; problems reported in candidate order). */
  async finish(): Promise<Candidate[]> {
    const problems = await Promise.all(
      this.order.map(async (c): Promise<string | undefined> => {
        try {
          const st = await this.ctx.fs.stat(c.path);
          c.exists = st?.isFile === true;
          if (c.exists && st) c.size = st.size;
          return undefined;
        } catch (err) {
          return `${this.label(c.path)}: cannot stat: ${errorMessage(err)}`;
        }
      }),
    );
    for (const p of problems) {
      if (p !== undefined) this.diagnostics.push(p);
    }
    return this.order;
  }

  /** `.vscode/mcp.json` (or `name/.vscode/mcp.json` in multi-root), `~/…`, or the absolute path. */
  label(file: string): string {
    const api = this.api;
    const key = pathKey(file, this.ctx.platform);
    for (const folder of this.folders) {
      const folderKey = pathKey(folder.path, this.ctx.platform);
      if (key.startsWith(folderKey + api.sep)) {
        const rel = file.slice(folder.path.length + 1);
        return this.folders.length > 1 ? `${folder.name}${api.sep}${rel}` : rel;
      }
    }
    const home = api.resolve(this.ctx.home);
    if (key.startsWith(pathKey(home, this.ctx.platform) + api.sep)) {
      return `~${api.sep}${file.slice(home.length + 1)}`;
    }
    return file;
  }

  /** The PathContext for values found in `target` (baseDir: the server's cwd, if it has one). */
  pathContext(target: ScanTarget, baseDir?: string): PathContext {
    // In user-scoped files ${workspaceFolder} still works when exactly one
    // folder is open (as in VS Code); with several it is ambiguous.
    const single = this.folders.length === 1 ? this.folders[0].path : undefined;
    return {
      home: this.ctx.home,
      env: this.ctx.env,
      platform: this.ctx.platform,
      workspaceFolders: this.folders,
      workspaceFolder: target.folder ?? single,
      // Relative paths: workspace files → their folder; user files → home.
      baseDir: baseDir ?? target.folder ?? this.ctx.home,
    };
  }
}

/**
 * Scans every known agent configuration for ai-memory servers and returns
 * the database paths they use. See the module comment; never throws for bad
 * input files (they become `diagnostics`).
 */
export async function discoverDatabases(ctx: DiscoveryContext): Promise<DiscoveryResult> {
  const d = new Discovery(ctx);
  try {
    await scanAll(d);
  } catch (err) {
    // Callers (activation, status bar, CLI) rely on discovery never failing;
    // an unexpected bug still yields whatever was found so far.
    d.diagnostics.push(`discovery stopped early: ${errorMessage(err)}`);
  }
  return { candidates: await d.finish(), diagnostics: d.diagnostics };
}

async function scanAll(d: Discovery): Promise<void> {
  const ctx = d.ctx;
  const { api, folders } = d;
  const home = ctx.home;
  const ws = (kind: SourceKind, ...rel: string[]): ScanTarget[] =>
    folders.map((f) => ({ kind, file: api.join(f.path, ...rel), format: 'jsonc', folder: f.path }));
  const user = (kind: SourceKind, file: string, format: 'jsonc' | 'toml' = 'jsonc'): ScanTarget => ({ kind, file, format });

  await resolveFallbacks(d);

  // 1. VS Code, per workspace folder.
  for (const t of ws('vscode-workspace', '.vscode', 'mcp.json')) {
    await scanServersFile(d, t, 'servers');
  }
  // 2. VS Code user profile.
  for (const dir of vscodeUserDirs(ctx)) {
    await scanServersFile(d, user('vscode-user', api.join(dir, 'mcp.json')), 'servers');
  }
  // 3. Claude Code: project .mcp.json, then ~/.claude.json (project entries, then user-wide).
  for (const t of ws('claude-project', '.mcp.json')) {
    await scanServersFile(d, t, 'mcpServers');
  }
  for (const file of claudeJsonFiles(ctx)) {
    await scanClaudeJson(d, file);
  }
  // 4. Cursor.
  for (const t of ws('cursor-workspace', '.cursor', 'mcp.json')) {
    await scanServersFile(d, t, 'mcpServers');
  }
  await scanServersFile(d, user('cursor-user', api.join(home, '.cursor', 'mcp.json')), 'mcpServers');
  // 5. Windsurf.
  await scanServersFile(d, user('windsurf', api.join(home, '.codeium', 'windsurf', 'mcp_config.json')), 'mcpServers');
  // 6. Gemini CLI: workspace settings first (more specific, and they override user settings in Gemini), then user.
  for (const t of ws('gemini', '.gemini', 'settings.json')) {
    await scanServersFile(d, t, 'mcpServers');
  }
  await scanServersFile(d, user('gemini', api.join(home, '.gemini', 'settings.json')), 'mcpServers');
  // 7. Codex (honours $CODEX_HOME like Codex itself).
  const codexHome = lookupEnv(ctx.env, 'CODEX_HOME', ctx.platform);
  const codexDir = codexHome && api.isAbsolute(codexHome) ? codexHome : api.join(home, '.codex');
  await scanServersFile(d, user('codex', api.join(codexDir, 'config.toml'), 'toml'), 'mcp_servers');

  // 8. The process environment.
  if (d.fallback.env !== undefined) {
    d.add(d.fallback.env, { kind: 'env', detail: `$AI_MEMORY_DB=${d.fallback.envRaw}` });
  }
  // 9. ai-memory's own config.toml.
  if (d.fallback.config !== undefined && d.fallback.configFile !== undefined) {
    d.add(d.fallback.config, {
      kind: 'ai-memory-config',
      file: d.fallback.configFile,
      fileLabel: d.label(d.fallback.configFile),
      detail: `db = "${d.fallback.configRaw}"`,
    });
  }

  // 10. Well-known locations, only when a file is actually there.
  for (const rel of [['.claude', 'ai-memory.db'], ['.local', 'share', 'ai-memory', 'memories.db']]) {
    const path = api.join(home, ...rel);
    let st: Awaited<ReturnType<DiscoveryFs['stat']>>;
    try {
      st = await ctx.fs.stat(path);
    } catch (err) {
      d.diagnostics.push(`${d.label(path)}: cannot stat: ${errorMessage(err)}`);
      continue;
    }
    if (st?.isFile) {
      d.add(path, { kind: 'common-path', detail: `found at a common location (${d.label(path)})` });
    }
  }
}

/** VS Code user folders to check: the given one, or the per-platform defaults. */
function vscodeUserDirs(ctx: DiscoveryContext): string[] {
  const api = pathApi(ctx.platform);
  if (ctx.vscodeUserDir !== undefined) {
    return [api.resolve(ctx.home, ctx.vscodeUserDir)];
  }
  let appData: string;
  if (ctx.platform === 'win32') {
    appData = lookupEnv(ctx.env, 'APPDATA', ctx.platform) || api.join(ctx.home, 'AppData', 'Roaming');
  } else if (ctx.platform === 'darwin') {
    appData = api.join(ctx.home, 'Library', 'Application Support');
  } else {
    // VS Code on Linux honours $XDG_CONFIG_HOME.
    const xdg = lookupEnv(ctx.env, 'XDG_CONFIG_HOME', ctx.platform);
    appData = xdg && api.isAbsolute(xdg) ? xdg : api.join(ctx.home, '.config');
  }
  return ['Code', 'Code - Insiders', 'VSCodium'].map((product) => api.join(appData, product, 'User'));
}

/** ~/.claude.json, preceded by $CLAUDE_CONFIG_DIR/.claude.json when that is set. */
function claudeJsonFiles(ctx: DiscoveryContext): string[] {
  const api = pathApi(ctx.platform);
  const files: string[] = [];
  const dir = lookupEnv(ctx.env, 'CLAUDE_CONFIG_DIR', ctx.platform);
  if (dir && api.isAbsolute(dir)) {
    files.push(api.join(dir, '.claude.json'));
  }
  const standard = api.join(ctx.home, '.claude.json');
  if (!files.some((f) => pathKey(f, ctx.platform) === pathKey(standard, ctx.platform))) {
    files.push(standard);
  }
  return files;
}

/**
 * Resolves `$AI_MEMORY_DB` and config.toml's `db` once (reporting problems
 * once), for both their own steps and servers that rely on them.
 */
async function resolveFallbacks(d: Discovery): Promise<void> {
  const { ctx } = d;
  const envDb = lookupEnv(ctx.env, 'AI_MEMORY_DB', ctx.platform);
  if (envDb !== undefined && envDb !== '') {
    const path = expandStandalone(d, envDb, '$AI_MEMORY_DB');
    if (path !== undefined) d.fallback = { ...d.fallback, env: path, envRaw: envDb };
  }
  const config = await readAiMemoryConfigDb({ home: ctx.home, env: ctx.env, platform: ctx.platform, readFile: (p) => d.read(p) });
  if (!config) return;
  const label = d.label(config.file);
  if (config.error !== undefined) {
    d.diagnostics.push(`${label}: ${config.error}`);
  } else if (config.db !== undefined && config.db !== '') {
    const path = expandStandalone(d, config.db, `${label}: db`);
    if (path !== undefined) d.fallback = { ...d.fallback, config: path, configRaw: config.db, configFile: config.file };
  }
}

/**
 * Expands `$AI_MEMORY_DB` / config.toml values: `~` only (nothing
 * substitutes variables in them), relative to `cwd` or the first workspace
 * folder. Without either, a relative value is reported rather than guessed.
 */
function expandStandalone(d: Discovery, raw: string, what: string): string | undefined {
  const base = d.ctx.cwd ?? d.folders[0]?.path;
  const isRelative = !/^~(?:$|[\\/])/.test(raw) && !d.api.isAbsolute(raw);
  if (isRelative && base === undefined) {
    d.diagnostics.push(`${what}: relative path '${raw}' depends on ai-memory's working directory, which is unknown; skipped`);
    return undefined;
  }
  const result = tryExpandPath(raw, {
    home: d.ctx.home,
    env: d.ctx.env,
    platform: d.ctx.platform,
    baseDir: base ?? d.ctx.home,
    expandVariables: false,
  });
  if (!result.ok) {
    d.diagnostics.push(`${what}: ${result.reason}`);
    return undefined;
  }
  return result.path;
}

/** Parses a config file; `undefined` (with a diagnostic when broken) if unusable. */
async function loadDocument(d: Discovery, target: ScanTarget): Promise<Record<string, unknown> | undefined> {
  const text = await d.readOrReport(target.file);
  if (text === undefined || text.trim() === '' || text.trim() === '\ufeff') {
    // Missing files are normal; an empty file just has no servers yet.
    return undefined;
  }
  const label = d.label(target.file);
  let doc: unknown;
  try {
    doc = target.format === 'toml' ? parseToml(text) : parseJsonc(text);
  } catch (err) {
    if (err instanceof ConfigSyntaxError) {
      d.diagnostics.push(`${label}: ${err.message}`);
    } else {
      d.diagnostics.push(`${label}: cannot parse: ${errorMessage(err)}`);
    }
    return undefined;
  }
  if (!isObject(doc)) {
    d.diagnostics.push(`${label}: expected an object at the top level`);
    return undefined;
  }
  return doc;
}

async function scanServersFile(d: Discovery, target: ScanTarget, key: string): Promise<void> {
  const doc = await loadDocument(d, target);
  if (!doc) return;
  const label = d.label(target.file);
  const servers = doc[key];
  if (servers === undefined) {
    if (key === 'servers' && isObject(doc['mcpServers'])) {
      // A common mistake: VS Code only reads "servers", so these never run.
      d.diagnostics.push(`${label}: has "mcpServers" but VS Code reads "servers"; ignored`);
    }
    return;
  }
  scanServers(d, target, label, servers, key);
}

async function scanClaudeJson(d: Discovery, file: string): Promise<void> {
  const userTarget: ScanTarget = { kind: 'claude-user', file, format: 'jsonc' };
  const doc = await loadDocument(d, userTarget);
  if (!doc) return;
  const label = d.label(file);
  // Per-project ("local scope") servers for the open folders first: they are the more specific.
  const projects = doc['projects'];
  if (isObject(projects) && d.folders.length > 0) {
    for (const folder of d.folders) {
      const folderKey = normalizeProjectKey(folder.path, d.ctx.platform);
      for (const [projectPath, project] of Object.entries(projects)) {
        if (normalizeProjectKey(projectPath, d.ctx.platform) !== folderKey || !isObject(project)) continue;
        if (project['mcpServers'] === undefined) continue;
        const target: ScanTarget = { kind: 'claude-project', file, format: 'jsonc', folder: folder.path };
        scanServers(d, target, label, project['mcpServers'], `projects["${projectPath}"].mcpServers`, projectPath);
      }
    }
  }
  if (doc['mcpServers'] !== undefined) {
    scanServers(d, userTarget, label, doc['mcpServers'], 'mcpServers');
  }
}

/** Claude Code keys projects by absolute path; compare them separator- and (on Windows) case-insensitively. */
function normalizeProjectKey(p: string, platform: NodeJS.Platform): string {
  const api = pathApi(platform);
  const resolved = api.isAbsolute(p) ? api.resolve(p) : p;
  return platform === 'win32' ? resolved.replace(/\//g, '\\').toLowerCase() : resolved;
}

function scanServers(
  d: Discovery,
  target: ScanTarget,
  label: string,
  servers: unknown,
  where: string,
  project?: string,
): void {
  if (!isObject(servers)) {
    d.diagnostics.push(`${label}: "${where}" should be an object; ignored`);
    return;
  }
  for (const [name, entry] of Object.entries(servers)) {
    if (isObject(entry)) {
      scanServer(d, target, label, name, entry, project);
    }
  }
}

function scanServer(
  d: Discovery,
  target: ScanTarget,
  label: string,
  name: string,
  entry: Record<string, unknown> | TomlTable,
  project: string | undefined,
): void {
  const command = entry['command'];
  if (typeof command !== 'string') {
    return; // http/sse servers and malformed entries are not ai-memory launches
  }
  const rawArgs = entry['args'];
  const args = Array.isArray(rawArgs) ? rawArgs.filter((a): a is string => typeof a === 'string') : [];
  const argv = aiMemoryArgs(command, args);
  if (!argv) {
    return;
  }
  const where = `${label} (server "${name}")`;
  const base: Omit<CandidateSource, 'detail'> = { kind: target.kind, file: target.file, fileLabel: label, server: name };
  if (project !== undefined) base.project = project;

  // The server's cwd (VS Code, Gemini and Codex support one) is what ai-memory resolves relative paths against.
  let cwd: string | undefined;
  if (typeof entry['cwd'] === 'string' && entry['cwd'] !== '') {
    const r = tryExpandPath(entry['cwd'], d.pathContext(target));
    if (r.ok) {
      cwd = r.path;
    } else {
      d.diagnostics.push(`${where}: cwd '${entry['cwd']}': ${r.reason}`);
    }
  }
  const pctx = d.pathContext(target, cwd);

  const env = entry['env'];
  const envDbRaw = isObject(env) && typeof env['AI_MEMORY_DB'] === 'string' && env['AI_MEMORY_DB'] !== '' ? env['AI_MEMORY_DB'] : undefined;

  const flag = findDbFlag(argv);
  if (flag === null) {
    // ai-memory itself would refuse to start, so there is no database to list.
    d.diagnostics.push(`${where}: "--db" has no value`);
    return;
  }
  if (flag) {
    const r = tryExpandPath(flag.value, pctx);
    const detail = flag.form === '--db' ? `--db ${flag.value}` : `--db=${flag.value}`;
    if (r.ok) {
      d.add(r.path, { ...base, detail });
    } else {
      d.diagnostics.push(`${where}: cannot resolve ${detail}: ${r.reason}`);
    }
    if (envDbRaw !== undefined) {
      d.diagnostics.push(`${where}: env AI_MEMORY_DB (${envDbRaw}) is overridden by --db; not listed`);
    }
    return;
  }
  if (envDbRaw !== undefined) {
    const r = tryExpandPath(envDbRaw, pctx);
    const detail = `env AI_MEMORY_DB=${envDbRaw}`;
    if (r.ok) {
      d.add(r.path, { ...base, detail });
    } else {
      d.diagnostics.push(`${where}: cannot resolve ${detail}: ${r.reason}`);
    }
    return;
  }
  // No --db and no env in the entry: ai-memory falls back to $AI_MEMORY_DB
  // (inherited from the agent, whose environment we assume matches ours),
  // then config.toml, then ai-memory.db in its cwd.
  if (d.fallback.env !== undefined) {
    d.add(d.fallback.env, { ...base, detail: `no --db; inherits $AI_MEMORY_DB=${d.fallback.envRaw}` });
  } else if (d.fallback.config !== undefined) {
    d.add(d.fallback.config, { ...base, detail: `no --db; uses db = "${d.fallback.configRaw}" from ai-memory's config.toml` });
  } else if (cwd !== undefined) {
    d.add(d.api.join(cwd, 'ai-memory.db'), { ...base, detail: `no --db; default ai-memory.db in the server's cwd` });
  } else {
    d.diagnostics.push(
      `${where}: runs ai-memory without --db or AI_MEMORY_DB and no $AI_MEMORY_DB or config.toml db is set, so it uses ai-memory.db in its working directory, which is unknown; skipped`,
    );
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * A short human label for a source, for tooltips and logs, e.g.
 * `.vscode/mcp.json (server "memory")`, `~/.claude.json (project /w, server "memory")`,
 * `$AI_MEMORY_DB`.
 */
export function describeSource(source: CandidateSource): string {
  const file = source.fileLabel ?? source.file;
  switch (source.kind) {
    case 'env':
      return '$AI_MEMORY_DB';
    case 'ai-memory-config':
      return `${file ?? 'ai-memory config.toml'} (db setting)`;
    case 'common-path':
      return 'common location';
  }
  const parts: string[] = [];
  if (source.project !== undefined) parts.push(`project ${source.project}`);
  if (source.server !== undefined) parts.push(`server "${source.server}"`);
  const name = file ?? KIND_NAMES[source.kind];
  return parts.length > 0 ? `${name} (${parts.join(', ')})` : name;
}

const KIND_NAMES: Record<SourceKind, string> = {
  'vscode-workspace': 'VS Code workspace',
  'vscode-user': 'VS Code user settings',
  'claude-project': 'Claude Code project',
  'claude-user': 'Claude Code',
  'cursor-workspace': 'Cursor workspace',
  'cursor-user': 'Cursor',
  windsurf: 'Windsurf',
  gemini: 'Gemini CLI',
  codex: 'Codex',
  env: '$AI_MEMORY_DB',
  'ai-memory-config': 'ai-memory config',
  'common-path': 'common location',
};
