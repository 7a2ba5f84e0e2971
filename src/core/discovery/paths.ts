/**
 * Path expansion for MCP configuration values, and ai-memory's own database
 * path resolution.
 *
 * Everything here takes home / env / platform / file reading as arguments
 * (no `os.homedir()`, `process.env` or `fs` behind the caller's back) so the
 * CLI, the extension and tests can all drive it, and tests never touch the
 * real home directory.
 *
 * This module must not import `vscode` (shared by CLI, extension and tests).
 */
import { BackupError, errorMessage } from '../common/errors';

import * as nodePath from 'path';
import { ConfigSyntaxError, parseToml } from './configFormats';

export interface WorkspaceFolderRef {
  name: string;
  path: string;
}

export type EnvMap = Readonly<Record<string, string | undefined>>;

export interface PathContext {
  /** Absolute home directory. */
  home: string;
  /** Folder that `${workspaceFolder}` means (absent: the variable is unresolvable). */
  workspaceFolder?: string;
  /** Folders that `${workspaceFolder:name}` can refer to. */
  workspaceFolders?: readonly WorkspaceFolderRef[];
  env: EnvMap;
  /** Directory relative paths are resolved against; defaults to `workspaceFolder ?? home`. */
  baseDir?: string;
  /** Selects win32 vs posix path rules; defaults to the running platform. */
  platform?: NodeJS.Platform;
  /**
   * Whether `${…}` / `$NAME` variables are substituted (default true). Off
   * for values that nobody substitutes before ai-memory reads them, such as
   * `$AI_MEMORY_DB` itself or `db` in ai-memory's config.toml.
   */
  expandVariables?: boolean;
}

/**
 * `path`: absolute and normalised (`a/../b` as text: for listing and merging paths).
 * `exact`: absolute, but as given otherwise — what a program opening it gets, where `..`
 * after a symbolic link is taken from the link's target and a trailing separator names a
 * folder (dbFiles.resolveDbPath decides from it as SQLite does).
 */
export type ExpandResult = { ok: true; path: string; exact: string } | { ok: false; reason: string };

/** The `path` implementation matching a platform (lets tests exercise Windows rules on Linux). */
export function pathApi(platform: NodeJS.Platform | undefined): nodePath.PlatformPath {
  return (platform ?? process.platform) === 'win32' ? nodePath.win32 : nodePath.posix;
}

/**
 * A key for comparing paths for equality. Windows and (by default) macOS
 * file systems are case-insensitive, so two configs spelling the same
 * database differently must still merge into one candidate.
 */
export function pathKey(p: string, platform: NodeJS.Platform | undefined): string {
  const plat = platform ?? process.platform;
  return plat === 'win32' || plat === 'darwin' ? p.toLowerCase() : p;
}

/** Looks an environment variable up; Windows names are case-insensitive. */
export function lookupEnv(env: EnvMap, name: string, platform: NodeJS.Platform | undefined): string | undefined {
  if (Object.prototype.hasOwnProperty.call(env, name)) {
    return env[name];
  }
  if ((platform ?? process.platform) === 'win32') {
    const lower = name.toLowerCase();
    for (const key of Object.keys(env)) {
      if (key.toLowerCase() === lower) {
        return env[key];
      }
    }
  }
  return undefined;
}

/**
 * Expands a path as written in an MCP configuration, reporting why it could
 * not be resolved instead of guessing.
 *
 * Supported (in any config file, because a false negative is worse than an
 * extra lenient form for discovery):
 * - `~`, `~/…` (and `~\…` on Windows) at the start
 * - VS Code variables: `${userHome}`, `${workspaceFolder}`,
 *   `${workspaceFolder:name}`, `${workspaceFolderBasename}`, `${env:NAME}`,
 *   `${pathSeparator}` / `${/}`
 * - Claude Code / Gemini CLI style environment references: `${NAME}`,
 *   `${NAME:-default}`, `$NAME`
 *
 * An unset environment variable makes the path unresolvable (VS Code would
 * substitute an empty string, which yields a wrong path we should not back
 * up). `${input:…}`, `${config:…}`, `${command:…}` and `~user` are
 * unresolvable too. Relative results are resolved against `baseDir`.
 */
export function tryExpandPath(p: string, ctx: PathContext): ExpandResult {
  const api = pathApi(ctx.platform);
  if (p.trim() === '') {
    return { ok: false, reason: 'the path is empty' };
  }
  let rest = p;
  let prefix = '';
  if (rest === '~' || rest.startsWith('~/') || (api === nodePath.win32 && rest.startsWith('~\\'))) {
    prefix = ctx.home;
    rest = rest.slice(1);
  } else if (/^~[^/\\]/.test(rest)) {
    return { ok: false, reason: `'~user' paths are not supported (${p})` };
  }

  let failure: string | undefined;
  if (ctx.expandVariables !== false) {
    rest = rest.replace(/\$\{([^}]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)/g, (whole, braced: string | undefined, bare: string | undefined) => {
      const value = bare !== undefined ? resolveEnvVar(bare, ctx) : resolveVariable(braced ?? '', ctx);
      if (typeof value === 'string') {
        return value;
      }
      failure ??= value.reason ?? `cannot resolve ${whole}`;
      return whole;
    });
  }
  if (failure !== undefined) {
    return { ok: false, reason: failure };
  }
  const expanded = prefix + rest;
  if (expanded.trim() === '') {
    return { ok: false, reason: `'${p}' expands to an empty path` };
  }
  const base = ctx.baseDir ?? ctx.workspaceFolder ?? ctx.home;
  const path = api.resolve(base, expanded);
  let exact: string;
  if (api === nodePath.win32) {
    // Windows resolves `..` as text itself; a trailing separator is kept (it names a folder).
    exact = /[\\/]$/.test(expanded) && !/[\\/]$/.test(path) ? path + api.sep : path;
  } else {
    exact = api.isAbsolute(expanded) ? expanded : `${api.resolve(base)}/${expanded}`;
  }
  return { ok: true, path, exact };
}

/** {@link tryExpandPath} returning `undefined` when the path cannot be resolved. */
export function expandPath(p: string, ctx: PathContext): string | undefined {
  const result = tryExpandPath(p, ctx);
  return result.ok ? result.path : undefined;
}

type VarResult = string | { reason?: string };

function resolveEnvVar(name: string, ctx: PathContext): VarResult {
  const value = lookupEnv(ctx.env, name, ctx.platform);
  return value !== undefined ? value : { reason: `environment variable ${name} is not set` };
}

function resolveVariable(name: string, ctx: PathContext): VarResult {
  const api = pathApi(ctx.platform);
  switch (name) {
    case 'userHome':
      return ctx.home;
    case 'workspaceFolder':
      return ctx.workspaceFolder ?? { reason: '${workspaceFolder} is used but no single workspace folder applies' };
    case 'workspaceFolderBasename':
      return ctx.workspaceFolder !== undefined
        ? api.basename(ctx.workspaceFolder)
        : { reason: '${workspaceFolderBasename} is used but no single workspace folder applies' };
    case 'pathSeparator':
    case '/':
      return api.sep;
  }
  if (name.startsWith('workspaceFolder:')) {
    const folderName = name.slice('workspaceFolder:'.length);
    const folder = ctx.workspaceFolders?.find((f) => f.name === folderName);
    return folder?.path ?? { reason: `no open workspace folder is named '${folderName}'` };
  }
  if (name.startsWith('env:')) {
    return resolveEnvVar(name.slice(4), ctx);
  }
  const withDefault = /^([A-Za-z_][A-Za-z0-9_]*):-(.*)$/s.exec(name);
  if (withDefault) {
    const value = lookupEnv(ctx.env, withDefault[1], ctx.platform);
    return value !== undefined && value !== '' ? value : withDefault[2];
  }
  if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) {
    return resolveEnvVar(name, ctx);
  }
  return { reason: `cannot resolve \${${name}} outside the editor` };
}

// ---------------------------------------------------------------------------
// ai-memory's own resolution order
// ---------------------------------------------------------------------------

/** File reader: `undefined` when the file does not exist; may throw on other errors. */
export type ReadFileFn = (path: string) => Promise<string | undefined> | string | undefined;

export interface AiMemoryConfigDb {
  /** The config.toml that was read. */
  file: string;
  /** Raw `db` value, when the file has one. */
  db?: string;
  /** Why the file could not be used (parse error, wrong type, read error). */
  error?: string;
}

/**
 * Where ai-memory looks for its config.toml: `$XDG_CONFIG_HOME/ai-memory/`
 * when that variable is set, then `~/.config/ai-memory/` (used on every
 * platform, as ai-memory documents it).
 */
export function aiMemoryConfigPaths(home: string, env: EnvMap, platform?: NodeJS.Platform): string[] {
  const api = pathApi(platform);
  const paths: string[] = [];
  const xdg = lookupEnv(env, 'XDG_CONFIG_HOME', platform);
  if (xdg && api.isAbsolute(xdg)) {
    paths.push(api.join(xdg, 'ai-memory', 'config.toml'));
  }
  const standard = api.join(home, '.config', 'ai-memory', 'config.toml');
  if (!paths.some((p) => pathKey(p, platform) === pathKey(standard, platform))) {
    paths.push(standard);
  }
  return paths;
}

/**
 * Reads `db` from ai-memory's config.toml. Returns `undefined` when no
 * config file exists or `AI_MEMORY_NO_CONFIG` is set (ai-memory's own switch
 * for ignoring the file). Never throws.
 */
export async function readAiMemoryConfigDb(opts: {
  home: string;
  env: EnvMap;
  readFile: ReadFileFn;
  platform?: NodeJS.Platform;
}): Promise<AiMemoryConfigDb | undefined> {
  const noConfig = lookupEnv(opts.env, 'AI_MEMORY_NO_CONFIG', opts.platform);
  if (noConfig !== undefined && noConfig !== '' && noConfig !== '0' && noConfig.toLowerCase() !== 'false') {
    return undefined;
  }
  for (const file of aiMemoryConfigPaths(opts.home, opts.env, opts.platform)) {
    let text: string | undefined;
    try {
      text = await opts.readFile(file);
    } catch (err) {
      return { file, error: `cannot read: ${errorMessage(err)}` };
    }
    if (text === undefined) {
      continue;
    }
    try {
      const doc = parseToml(text);
      const db = doc['db'];
      if (db === undefined) {
        return { file };
      }
      if (typeof db !== 'string') {
        return { file, error: `'db' must be a string` };
      }
      return { file, db };
    } catch (err) {
      return {
        file,
        error: err instanceof ConfigSyntaxError ? err.message : errorMessage(err),
      };
    }
  }
  return undefined;
}

export type AiMemoryDbSource = 'flag' | 'env' | 'config' | 'default';

export interface AiMemoryDbResolution {
  /** Absolute; as ai-memory opens it (`..` and a trailing separator kept: ExpandResult.exact). */
  path: string;
  source: AiMemoryDbSource;
  /** Human-readable explanation, e.g. `--db ~/x.db` or `db in ~/.config/ai-memory/config.toml`. */
  detail: string;
  /** Problems met on the way (e.g. an unparsable config.toml that was skipped). */
  warnings: string[];
}

export interface AiMemoryResolveOptions {
  /** Value of `--db`, if ai-memory was given one. */
  flag?: string;
  env: EnvMap;
  home: string;
  /** ai-memory's working directory. */
  cwd: string;
  readFile: ReadFileFn;
  platform?: NodeJS.Platform;
}

/**
 * Resolves the database ai-memory would open, in its own order:
 * `--db` → `$AI_MEMORY_DB` → `db` in config.toml → `<cwd>/ai-memory.db`.
 *
 * Values get `~` expansion (users write `~/…` even where no shell expands
 * it) and relative values are taken relative to `cwd`; no `${…}`
 * substitution, since nothing performs it before ai-memory sees the value.
 * An empty `$AI_MEMORY_DB` counts as unset.
 */
export async function resolveAiMemoryDbPath(opts: AiMemoryResolveOptions): Promise<AiMemoryDbResolution> {
  const api = pathApi(opts.platform);
  const warnings: string[] = [];
  const ctx: PathContext = {
    home: opts.home,
    env: opts.env,
    baseDir: opts.cwd,
    platform: opts.platform,
    expandVariables: false,
  };
  const attempt = (raw: string, source: AiMemoryDbSource, detail: string): AiMemoryDbResolution | undefined => {
    const result = tryExpandPath(raw, ctx);
    if (result.ok) {
      // The path as ai-memory opens it: its `..` and a trailing separator kept for the engine to decide on.
      return { path: result.exact, source, detail, warnings };
    }
    warnings.push(`${detail}: ${result.reason}`);
    return undefined;
  };

  if (opts.flag !== undefined) {
    // A --db that cannot be expanded is an error, never a reason to use another database.
    const result = tryExpandPath(opts.flag, ctx);
    if (!result.ok) throw new BackupError('USAGE', `--db ${opts.flag}: ${result.reason}.`, { hint: 'Give the database file as an absolute path, or relative to the working directory.' });
    return { path: result.exact, source: 'flag', detail: `--db ${opts.flag}`, warnings };
  }
  const envDb = lookupEnv(opts.env, 'AI_MEMORY_DB', opts.platform);
  if (envDb !== undefined && envDb !== '') {
    const r = attempt(envDb, 'env', `$AI_MEMORY_DB=${envDb}`);
    if (r) return r;
  }
  const config = await readAiMemoryConfigDb(opts);
  if (config?.error !== undefined) {
    warnings.push(`${config.file}: ${config.error}`);
  } else if (config?.db !== undefined && config.db !== '') {
    const r = attempt(config.db, 'config', `db = "${config.db}" in ${config.file}`);
    if (r) return r;
  }
  const fallback = api.resolve(opts.cwd, 'ai-memory.db');
  return { path: fallback, source: 'default', detail: `ai-memory.db in the working directory ${opts.cwd}`, warnings };
}

