import * as assert from 'assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import {
  Candidate,
  DiscoveryContext,
  DiscoveryFs,
  aiMemoryArgs,
  createNodeDiscoveryFs,
  describeSource,
  discoverDatabases,
  findDbFlag,
} from '../../src/core/discovery/discovery';
import { expandPath, resolveAiMemoryDbPath, tryExpandPath, PathContext } from '../../src/core/discovery/paths';

/**
 * In-memory file system: `files` maps absolute paths to contents. A value of
 * `Error` makes reads of that path throw it (to simulate EACCES and the like).
 */
class FakeFs implements DiscoveryFs {
  readonly reads: string[] = [];
  constructor(private readonly files: Record<string, string | Error> = {}) {}
  set(file: string, content: string | Error): this {
    this.files[file] = content;
    return this;
  }
  async readFile(p: string): Promise<string | undefined> {
    this.reads.push(p);
    const v = this.files[p];
    if (v instanceof Error) throw v;
    return v;
  }
  async stat(p: string): Promise<{ isFile: boolean; size: number } | undefined> {
    const v = this.files[p];
    if (v === undefined) {
      // A path that is a prefix of a stored file is a directory.
      const isDir = Object.keys(this.files).some((f) => f.startsWith(p + '/') || f.startsWith(p + '\\'));
      return isDir ? { isFile: false, size: 0 } : undefined;
    }
    if (v instanceof Error) throw v;
    return { isFile: true, size: Buffer.byteLength(v) };
  }
}

const HOME = '/home/u';
const WS = '/work/proj';

function ctxWith(fsys: FakeFs, over: Partial<DiscoveryContext> = {}): DiscoveryContext {
  return {
    home: HOME,
    env: {},
    platform: 'linux',
    workspaceFolders: [{ name: 'proj', path: WS }],
    fs: fsys,
    ...over,
  };
}

const json = (value: unknown): string => JSON.stringify(value, null, 2);
const aiMemoryServer = (...args: string[]) => ({ command: 'ai-memory', args });

function paths(candidates: Candidate[]): string[] {
  return candidates.map((c) => c.path);
}

function errno(code: string): Error {
  const err = new Error(`${code}: simulated`) as NodeJS.ErrnoException;
  err.code = code;
  return err;
}

describe('discovery: recognising ai-memory servers', () => {
  it('accepts ai-memory by basename, absolute path and Windows extensions', () => {
    assert.deepStrictEqual(aiMemoryArgs('ai-memory', ['mcp']), ['mcp']);
    assert.deepStrictEqual(aiMemoryArgs('/usr/local/bin/ai-memory', ['--db', 'x']), ['--db', 'x']);
    assert.deepStrictEqual(aiMemoryArgs('C:\\Tools\\AI-Memory.EXE', []), []);
    assert.deepStrictEqual(aiMemoryArgs('ai-memory.cmd', ['a']), ['a']);
  });

  it('accepts package runners only when an argument is the ai-memory package', () => {
    assert.deepStrictEqual(aiMemoryArgs('npx', ['-y', 'ai-memory', '--db', 'x', 'mcp']), ['--db', 'x', 'mcp']);
    assert.deepStrictEqual(aiMemoryArgs('npx', ['-y', 'ai-memory@latest', 'mcp']), ['mcp']);
    assert.deepStrictEqual(aiMemoryArgs('uvx', ['ai-memory==0.6.1', 'mcp', '--db=/d.db']), ['mcp', '--db=/d.db']);
    assert.deepStrictEqual(aiMemoryArgs('/opt/homebrew/bin/bunx', ['ai-memory']), []);
    assert.strictEqual(aiMemoryArgs('npx', ['-y', '@modelcontextprotocol/server-memory']), undefined);
    assert.strictEqual(aiMemoryArgs('npx', ['ai-memory-extras', '--db', 'x']), undefined);
    assert.strictEqual(aiMemoryArgs('node', ['ai-memory', '--db', 'x']), undefined, 'not a package runner');
    assert.strictEqual(aiMemoryArgs('docker', ['run', 'ai-memory', '--db', 'x']), undefined, 'container paths are not ours');
    assert.strictEqual(aiMemoryArgs('bash', ['-c', 'ai-memory --db x mcp']), undefined);
    assert.strictEqual(aiMemoryArgs('ai-memory-server', ['--db', 'x']), undefined);
    assert.strictEqual(aiMemoryArgs('my-ai-memory', ['--db', 'x']), undefined);
  });

  it('unwraps Windows cmd /c', () => {
    assert.deepStrictEqual(aiMemoryArgs('cmd', ['/c', 'ai-memory', '--db', 'x']), ['--db', 'x']);
    assert.deepStrictEqual(aiMemoryArgs('cmd.exe', ['/C', 'npx', '-y', 'ai-memory', 'mcp']), ['mcp']);
    assert.strictEqual(aiMemoryArgs('cmd', ['/c', 'npx', 'other']), undefined);
  });

  it('finds --db in both forms, last one wins, stops at --', () => {
    assert.deepStrictEqual(findDbFlag(['mcp', '--db', '/a.db']), { value: '/a.db', form: '--db' });
    assert.deepStrictEqual(findDbFlag(['--db=/b.db', 'mcp']), { value: '/b.db', form: '--db=' });
    assert.deepStrictEqual(findDbFlag(['--db', '/a.db', '--db=/b.db']), { value: '/b.db', form: '--db=' });
    assert.strictEqual(findDbFlag(['mcp']), undefined);
    assert.strictEqual(findDbFlag(['mcp', '--db']), null);
    assert.strictEqual(findDbFlag(['--', '--db', '/x']), undefined);
    assert.strictEqual(findDbFlag(['--dbx', '/x', '--database', '/y']), undefined);
  });
});

describe('paths: expandPath', () => {
  const ctx: PathContext = {
    home: HOME,
    workspaceFolder: WS,
    workspaceFolders: [
      { name: 'proj', path: WS },
      { name: 'other', path: '/work/other' },
    ],
    env: { DATA: '/data', EMPTY: '' },
    platform: 'linux',
  };

  it('expands ~ and ${userHome}', () => {
    assert.strictEqual(expandPath('~', ctx), HOME);
    assert.strictEqual(expandPath('~/.claude/ai-memory.db', ctx), '/home/u/.claude/ai-memory.db');
    assert.strictEqual(expandPath('${userHome}/.claude/ai-memory.db', ctx), '/home/u/.claude/ai-memory.db');
  });

  it('expands workspace folder variables', () => {
    assert.strictEqual(expandPath('${workspaceFolder}/.ai/memory.db', ctx), '/work/proj/.ai/memory.db');
    assert.strictEqual(expandPath('${workspaceFolder:other}/m.db', ctx), '/work/other/m.db');
    assert.strictEqual(expandPath('/x/${workspaceFolderBasename}.db', ctx), '/x/proj.db');
    assert.strictEqual(expandPath('${workspaceFolder:missing}/m.db', ctx), undefined);
    assert.strictEqual(expandPath('${workspaceFolder}/m.db', { ...ctx, workspaceFolder: undefined }), undefined);
  });

  it('expands environment variables in VS Code, Claude Code and shell forms', () => {
    assert.strictEqual(expandPath('${env:DATA}/m.db', ctx), '/data/m.db');
    assert.strictEqual(expandPath('${DATA}/m.db', ctx), '/data/m.db');
    assert.strictEqual(expandPath('$DATA/m.db', ctx), '/data/m.db');
    assert.strictEqual(expandPath('${NOPE:-/fallback}/m.db', ctx), '/fallback/m.db');
    assert.strictEqual(expandPath('${EMPTY:-/fallback}/m.db', ctx), '/fallback/m.db');
    assert.strictEqual(expandPath('${DATA:-/fallback}/m.db', ctx), '/data/m.db');
    assert.strictEqual(expandPath('${pathSeparator}a${/}b', ctx), '/a/b');
  });

  it('reports what cannot be resolved', () => {
    assert.deepStrictEqual(tryExpandPath('${env:NOPE}/m.db', ctx), { ok: false, reason: 'environment variable NOPE is not set' });
    assert.strictEqual(expandPath('${input:dbPath}', ctx), undefined);
    assert.strictEqual(expandPath('${config:ai.db}', ctx), undefined);
    assert.strictEqual(expandPath('~bob/m.db', ctx), undefined);
    assert.strictEqual(expandPath('', ctx), undefined);
    assert.strictEqual(expandPath('${EMPTY}', ctx), undefined);
  });

  it('resolves relative paths against baseDir, else the workspace folder, else home; and normalizes', () => {
    assert.strictEqual(expandPath('data/m.db', ctx), '/work/proj/data/m.db');
    assert.strictEqual(expandPath('data/m.db', { ...ctx, workspaceFolder: undefined }), '/home/u/data/m.db');
    assert.strictEqual(expandPath('./m.db', { ...ctx, baseDir: '/srv' }), '/srv/m.db');
    assert.strictEqual(expandPath('/a/b/../c//m.db/', ctx), '/a/c/m.db');
  });

  it('leaves variables alone when expandVariables is false', () => {
    assert.strictEqual(expandPath('/x/${DATA}', { ...ctx, expandVariables: false }), '/x/${DATA}');
    assert.strictEqual(expandPath('~/m.db', { ...ctx, expandVariables: false }), '/home/u/m.db');
  });

  it('follows Windows rules on win32', () => {
    const win: PathContext = { home: 'C:\\Users\\u', env: { AppData: 'C:\\Users\\u\\AppData\\Roaming' }, platform: 'win32' };
    assert.strictEqual(expandPath('~\\mem\\ai-memory.db', win), 'C:\\Users\\u\\mem\\ai-memory.db');
    assert.strictEqual(expandPath('~/mem/ai-memory.db', win), 'C:\\Users\\u\\mem\\ai-memory.db');
    assert.strictEqual(expandPath('${env:APPDATA}/ai.db', win), 'C:\\Users\\u\\AppData\\Roaming\\ai.db', 'env names are case-insensitive');
    assert.strictEqual(expandPath('D:/data/ai.db', win), 'D:\\data\\ai.db');
    assert.strictEqual(expandPath('rel\\ai.db', win), 'C:\\Users\\u\\rel\\ai.db');
  });
});

describe('paths: resolveAiMemoryDbPath (ai-memory\'s own order)', () => {
  const files: Record<string, string> = {};
  const readFile = (p: string): string | undefined => files[p];
  const base = { home: HOME, cwd: '/run/here', readFile, platform: 'linux' as const };

  beforeEach(() => {
    for (const k of Object.keys(files)) delete files[k];
  });

  it('--db wins over everything', async () => {
    files['/home/u/.config/ai-memory/config.toml'] = 'db = "/cfg.db"';
    const r = await resolveAiMemoryDbPath({ ...base, flag: '~/flag.db', env: { AI_MEMORY_DB: '/env.db' } });
    assert.deepStrictEqual(r, { path: '/home/u/flag.db', source: 'flag', detail: '--db ~/flag.db', warnings: [] });
    // A --db that cannot be expanded is an error, never a reason to take $AI_MEMORY_DB's database instead.
    await assert.rejects(resolveAiMemoryDbPath({ ...base, flag: '~bob/x.db', env: { AI_MEMORY_DB: '/env.db' } }), (e: Error & { code?: string }) => e.code === 'USAGE' && /--db ~bob\/x\.db/.test(e.message));
  });

  it('--db as ai-memory opens it: `..` and a trailing separator kept for the engine (POSIX), the separator kept on Windows too', () => {
    const r = tryExpandPath('lk/../x.db', { home: '/home/u', env: {}, baseDir: '/w' });
    assert.ok(r.ok && r.exact === '/w/lk/../x.db' && r.path === '/w/x.db', JSON.stringify(r));
    const d = tryExpandPath('dir/', { home: '/home/u', env: {}, baseDir: '/w' });
    assert.ok(d.ok && d.exact === '/w/dir/', JSON.stringify(d));
    const w = tryExpandPath('C:\\data\\new\\', { home: 'C:\\Users\\u', env: {}, baseDir: 'C:\\w', platform: 'win32' });
    assert.ok(w.ok && w.exact === 'C:\\data\\new\\', JSON.stringify(w));
  });

  it('then $AI_MEMORY_DB (empty counts as unset)', async () => {
    files['/home/u/.config/ai-memory/config.toml'] = 'db = "/cfg.db"';
    const r = await resolveAiMemoryDbPath({ ...base, env: { AI_MEMORY_DB: 'rel/env.db' } });
    assert.strictEqual(r.path, '/run/here/rel/env.db');
    assert.strictEqual(r.source, 'env');
    const r2 = await resolveAiMemoryDbPath({ ...base, env: { AI_MEMORY_DB: '' } });
    assert.strictEqual(r2.source, 'config');
  });

  it('then db in config.toml, skipping other tables', async () => {
    files['/home/u/.config/ai-memory/config.toml'] = '# cfg\ndb = "~/.claude/ai-memory.db"\n[server]\nport = 1\n';
    const r = await resolveAiMemoryDbPath({ ...base, env: {} });
    assert.strictEqual(r.path, '/home/u/.claude/ai-memory.db');
    assert.strictEqual(r.source, 'config');
    assert.match(r.detail, /config\.toml/);
  });

  it('honours $XDG_CONFIG_HOME and AI_MEMORY_NO_CONFIG', async () => {
    files['/xdg/ai-memory/config.toml'] = 'db = "/xdg.db"';
    files['/home/u/.config/ai-memory/config.toml'] = 'db = "/std.db"';
    assert.strictEqual((await resolveAiMemoryDbPath({ ...base, env: { XDG_CONFIG_HOME: '/xdg' } })).path, '/xdg.db');
    assert.strictEqual((await resolveAiMemoryDbPath({ ...base, env: {} })).path, '/std.db');
    const r = await resolveAiMemoryDbPath({ ...base, env: { AI_MEMORY_NO_CONFIG: '1' } });
    assert.strictEqual(r.source, 'default');
  });

  it('falls back to ai-memory.db in the working directory, with a warning for a broken config', async () => {
    assert.deepStrictEqual(await resolveAiMemoryDbPath({ ...base, env: {} }), {
      path: '/run/here/ai-memory.db',
      source: 'default',
      detail: 'ai-memory.db in the working directory /run/here',
      warnings: [],
    });
    files['/home/u/.config/ai-memory/config.toml'] = 'db = \n';
    const r = await resolveAiMemoryDbPath({ ...base, env: {} });
    assert.strictEqual(r.source, 'default');
    assert.strictEqual(r.warnings.length, 1);
    assert.match(r.warnings[0], /invalid TOML at line 1/);
    files['/home/u/.config/ai-memory/config.toml'] = 'db = 5\n';
    assert.match((await resolveAiMemoryDbPath({ ...base, env: {} })).warnings[0], /'db' must be a string/);
  });

  it('accepts an async readFile', async () => {
    const r = await resolveAiMemoryDbPath({ ...base, env: {}, readFile: async () => 'db = "/async.db"' });
    assert.strictEqual(r.path, '/async.db');
  });
});

describe('discovery: discoverDatabases', () => {
  it('finds nothing and says nothing when no config files exist', async () => {
    const result = await discoverDatabases(ctxWith(new FakeFs()));
    assert.deepStrictEqual(result, { candidates: [], diagnostics: [] });
  });

  it('reads VS Code workspace mcp.json (JSONC) with ${userHome}', async () => {
    const fsys = new FakeFs({
      [`${WS}/.vscode/mcp.json`]: `{
  // ai-memory shared with Claude Code
  "servers": {
    "memory": {
      "type": "stdio",
      "command": "ai-memory",
      "args": ["--db", "\${userHome}/.claude/ai-memory.db", "mcp",],
    },
    "github": { "type": "http", "url": "https://api.githubcopilot.com/mcp/" },
  },
}`,
      '/home/u/.claude/ai-memory.db': 'SQLite format 3\0',
    });
    const { candidates, diagnostics } = await discoverDatabases(ctxWith(fsys));
    assert.deepStrictEqual(diagnostics, []);
    assert.strictEqual(candidates.length, 1);
    const c = candidates[0];
    assert.strictEqual(c.path, '/home/u/.claude/ai-memory.db');
    assert.strictEqual(c.exists, true);
    assert.strictEqual(c.size, 16);
    // The common-path step finds the same file: merged, not duplicated.
    assert.deepStrictEqual(
      c.sources.map((s) => s.kind),
      ['vscode-workspace', 'common-path'],
    );
    assert.deepStrictEqual(c.sources[0], {
      kind: 'vscode-workspace',
      file: `${WS}/.vscode/mcp.json`,
      fileLabel: '.vscode/mcp.json',
      server: 'memory',
      detail: '--db ${userHome}/.claude/ai-memory.db',
    });
    assert.strictEqual(describeSource(c.sources[0]), '.vscode/mcp.json (server "memory")');
  });

  it('reads the VS Code user mcp.json from the default Linux location, or from vscodeUserDir', async () => {
    const fsys = new FakeFs({
      '/home/u/.config/Code/User/mcp.json': json({ servers: { mem: aiMemoryServer('--db', '~/vscode-user.db') } }),
      '/srv/code-server/User/mcp.json': json({ servers: { mem: aiMemoryServer('--db', '/srv/cs.db') } }),
    });
    let r = await discoverDatabases(ctxWith(fsys));
    assert.deepStrictEqual(paths(r.candidates), ['/home/u/vscode-user.db']);
    assert.strictEqual(r.candidates[0].sources[0].kind, 'vscode-user');
    assert.strictEqual(r.candidates[0].exists, false);
    assert.strictEqual(describeSource(r.candidates[0].sources[0]), '~/.config/Code/User/mcp.json (server "mem")');

    r = await discoverDatabases(ctxWith(fsys, { vscodeUserDir: '/srv/code-server/User' }));
    assert.deepStrictEqual(paths(r.candidates), ['/srv/cs.db']);
  });

  it('uses XDG_CONFIG_HOME, macOS and Windows default VS Code user folders', async () => {
    const server = json({ servers: { m: aiMemoryServer('--db', '/x.db') } });
    let r = await discoverDatabases(ctxWith(new FakeFs({ '/xdg/Code - Insiders/User/mcp.json': server }), { env: { XDG_CONFIG_HOME: '/xdg' } }));
    assert.deepStrictEqual(paths(r.candidates), ['/x.db']);

    r = await discoverDatabases(
      ctxWith(new FakeFs({ '/Users/u/Library/Application Support/Code/User/mcp.json': server }), { home: '/Users/u', platform: 'darwin' }),
    );
    assert.deepStrictEqual(paths(r.candidates), ['/x.db']);

    const winServer = json({ servers: { m: { command: 'C:\\Program Files\\ai-memory\\ai-memory.exe', args: ['--db', '${userHome}\\mem.db'] } } });
    r = await discoverDatabases({
      home: 'C:\\Users\\u',
      env: { APPDATA: 'C:\\Users\\u\\AppData\\Roaming' },
      platform: 'win32',
      workspaceFolders: [],
      fs: new FakeFs({ 'C:\\Users\\u\\AppData\\Roaming\\Code\\User\\mcp.json': winServer }),
    });
    assert.deepStrictEqual(r.diagnostics, []);
    assert.deepStrictEqual(paths(r.candidates), ['C:\\Users\\u\\mem.db']);
    assert.strictEqual(describeSource(r.candidates[0].sources[0]), '~\\AppData\\Roaming\\Code\\User\\mcp.json (server "m")');
  });

  it('reads Claude Code .mcp.json and ~/.claude.json (project entries, then top level)', async () => {
    const fsys = new FakeFs({
      [`${WS}/.mcp.json`]: json({ mcpServers: { memory: aiMemoryServer('mcp', '--db', '.claude/project.db') } }),
      '/home/u/.claude.json': json({
        numStartups: 12,
        projects: {
          '/work/proj': { allowedTools: [], mcpServers: { 'memory-local': aiMemoryServer('--db', 'local.db', 'mcp') } },
          '/work/unrelated': { mcpServers: { memory: aiMemoryServer('--db', '/unrelated.db') } },
        },
        mcpServers: { memory: aiMemoryServer('mcp', '--db', '~/.claude/ai-memory.db') },
      }),
    });
    const { candidates, diagnostics } = await discoverDatabases(ctxWith(fsys));
    assert.deepStrictEqual(diagnostics, []);
    assert.deepStrictEqual(paths(candidates), ['/work/proj/.claude/project.db', '/work/proj/local.db', '/home/u/.claude/ai-memory.db']);
    assert.deepStrictEqual(
      candidates.map((c) => c.sources[0].kind),
      ['claude-project', 'claude-project', 'claude-user'],
    );
    assert.strictEqual(candidates[1].sources[0].project, '/work/proj');
    assert.strictEqual(describeSource(candidates[0].sources[0]), '.mcp.json (server "memory")');
    assert.strictEqual(describeSource(candidates[1].sources[0]), '~/.claude.json (project /work/proj, server "memory-local")');
    assert.strictEqual(describeSource(candidates[2].sources[0]), '~/.claude.json (server "memory")');
    assert.strictEqual(candidates[2].sources[0].detail, '--db ~/.claude/ai-memory.db');
  });

  it('matches ~/.claude.json project keys loosely on Windows', async () => {
    const r = await discoverDatabases({
      home: 'C:\\Users\\u',
      env: {},
      platform: 'win32',
      workspaceFolders: [{ name: 'proj', path: 'c:\\Work\\Proj' }],
      fs: new FakeFs({
        'C:\\Users\\u\\.claude.json': json({ projects: { 'C:/work/proj': { mcpServers: { m: aiMemoryServer('--db', 'p.db') } } } }),
      }),
    });
    assert.deepStrictEqual(paths(r.candidates), ['c:\\Work\\Proj\\p.db']);
  });

  it('honours $CLAUDE_CONFIG_DIR and $CODEX_HOME', async () => {
    const fsys = new FakeFs({
      '/cfg/claude/.claude.json': json({ mcpServers: { m: aiMemoryServer('--db', '/claude-dir.db') } }),
      '/cfg/codex/config.toml': '[mcp_servers.m]\ncommand = "ai-memory"\nargs = ["--db", "/codex-home.db"]\n',
    });
    const r = await discoverDatabases(ctxWith(fsys, { env: { CLAUDE_CONFIG_DIR: '/cfg/claude', CODEX_HOME: '/cfg/codex' } }));
    assert.deepStrictEqual(paths(r.candidates), ['/claude-dir.db', '/codex-home.db']);
  });

  it('reads Cursor, Windsurf and Gemini files', async () => {
    const fsys = new FakeFs({
      [`${WS}/.cursor/mcp.json`]: json({ mcpServers: { m: aiMemoryServer('--db', '${workspaceFolder}/.cursor/mem.db') } }),
      '/home/u/.cursor/mcp.json': json({ mcpServers: { m: aiMemoryServer('--db', '~/cursor.db') } }),
      '/home/u/.codeium/windsurf/mcp_config.json': json({ mcpServers: { m: aiMemoryServer('--db', '${env:HOME}/windsurf.db') } }),
      [`${WS}/.gemini/settings.json`]: json({ theme: 'Default', mcpServers: { m: aiMemoryServer('--db', 'gemini-ws.db') } }),
      '/home/u/.gemini/settings.json': json({ mcpServers: { m: aiMemoryServer('--db', '$HOME/gemini.db') } }),
    });
    const { candidates, diagnostics } = await discoverDatabases(ctxWith(fsys, { env: { HOME } }));
    assert.deepStrictEqual(diagnostics, []);
    assert.deepStrictEqual(
      candidates.map((c) => [c.path, c.sources[0].kind]),
      [
        ['/work/proj/.cursor/mem.db', 'cursor-workspace'],
        ['/home/u/cursor.db', 'cursor-user'],
        ['/home/u/windsurf.db', 'windsurf'],
        ['/work/proj/gemini-ws.db', 'gemini'],
        ['/home/u/gemini.db', 'gemini'],
      ],
    );
  });

  it('reads Codex config.toml, including env tables and unrelated sections', async () => {
    const fsys = new FakeFs({
      '/home/u/.codex/config.toml': `model = "gpt-5-codex"
approval_policy = "on-request"

[mcp_servers.memory]
command = "ai-memory"
args = ["--db", "~/x.db", "mcp"]
env = { AI_MEMORY_DB = "/ignored-because-of-db.db" }

[mcp_servers.memory2]
command = "/usr/local/bin/ai-memory"
args = ["mcp"]

[mcp_servers.memory2.env]
AI_MEMORY_DB = "~/codex-env.db"

[mcp_servers.other]
command = "npx"
args = ["-y", "@modelcontextprotocol/server-memory"]

[profiles.fast]
model = "o4-mini"
`,
    });
    const { candidates, diagnostics } = await discoverDatabases(ctxWith(fsys));
    assert.deepStrictEqual(paths(candidates), ['/home/u/x.db', '/home/u/codex-env.db']);
    assert.deepStrictEqual(
      candidates.map((c) => [c.sources[0].kind, c.sources[0].server, c.sources[0].detail]),
      [
        ['codex', 'memory', '--db ~/x.db'],
        ['codex', 'memory2', 'env AI_MEMORY_DB=~/codex-env.db'],
      ],
    );
    assert.strictEqual(diagnostics.length, 1);
    assert.match(diagnostics[0], /^~\/\.codex\/config\.toml \(server "memory"\): env AI_MEMORY_DB .* overridden by --db/);
  });

  it('accepts --db=PATH, launchers and cmd /c', async () => {
    const fsys = new FakeFs({
      '/home/u/.cursor/mcp.json': json({
        mcpServers: {
          a: { command: 'ai-memory', args: ['mcp', '--db=~/eq.db'] },
          b: { command: 'npx', args: ['-y', 'ai-memory@latest', '--db', '~/npx.db', 'mcp'] },
          c: { command: 'cmd', args: ['/c', 'ai-memory.exe', '--db', '~/cmd.db'] },
          d: { command: 'npx', args: ['-y', '@modelcontextprotocol/server-memory'], env: { MEMORY_FILE_PATH: '/m.json' } },
          e: { command: 'sqlite-mcp', args: ['--db', '/not-ours.db'] },
          f: { command: 'uvx', args: ['mcp-server-sqlite', '--db-path', '/also-not-ours.db'] },
        },
      }),
    });
    const { candidates, diagnostics } = await discoverDatabases(ctxWith(fsys));
    assert.deepStrictEqual(diagnostics, []);
    assert.deepStrictEqual(paths(candidates), ['/home/u/eq.db', '/home/u/npx.db', '/home/u/cmd.db']);
    assert.strictEqual(candidates[0].sources[0].detail, '--db=~/eq.db');
  });

  it('recognises ai-memory.exe on Windows and merges paths case-insensitively', async () => {
    const r = await discoverDatabases({
      home: 'C:\\Users\\u',
      env: { USERPROFILE: 'C:\\Users\\u' },
      platform: 'win32',
      workspaceFolders: [{ name: 'proj', path: 'D:\\proj' }],
      fs: new FakeFs({
        'D:\\proj\\.vscode\\mcp.json': json({
          servers: { m: { command: 'C:\\Tools\\ai-memory.exe', args: ['--db', '${env:USERPROFILE}\\.claude\\ai-memory.db', 'mcp'] } },
        }),
        'C:\\Users\\u\\.claude.json': json({ mcpServers: { m: { command: 'ai-memory', args: ['--db', 'c:/users/U/.Claude/AI-MEMORY.db'] } } }),
        'C:\\Users\\u\\.claude\\ai-memory.db': 'x',
      }),
    });
    assert.deepStrictEqual(r.diagnostics, []);
    assert.strictEqual(r.candidates.length, 1);
    assert.strictEqual(r.candidates[0].path, 'C:\\Users\\u\\.claude\\ai-memory.db', 'first spelling is kept');
    assert.deepStrictEqual(
      r.candidates[0].sources.map((s) => s.kind),
      ['vscode-workspace', 'claude-user', 'common-path'],
    );
    assert.strictEqual(r.candidates[0].exists, true);
    assert.strictEqual(describeSource(r.candidates[0].sources[0]), '.vscode\\mcp.json (server "m")');
  });

  it('merges duplicates across tools, keeping first-found order of candidates and sources', async () => {
    const shared = '~/.claude/ai-memory.db';
    const fsys = new FakeFs({
      [`${WS}/.vscode/mcp.json`]: json({ servers: { memory: aiMemoryServer('--db', '${userHome}/.claude/ai-memory.db', 'mcp') } }),
      [`${WS}/.mcp.json`]: json({ mcpServers: { proj: aiMemoryServer('--db', 'proj.db') } }),
      '/home/u/.claude.json': json({ mcpServers: { memory: aiMemoryServer('mcp', '--db', shared) } }),
      '/home/u/.cursor/mcp.json': json({ mcpServers: { memory: aiMemoryServer('--db', '/home/u/.claude/../.claude/ai-memory.db') } }),
      '/home/u/.codex/config.toml': `[mcp_servers.memory]\ncommand = "ai-memory"\nargs = ["--db", "${shared}"]\n`,
    });
    const { candidates, diagnostics } = await discoverDatabases(ctxWith(fsys, { env: { AI_MEMORY_DB: shared } }));
    assert.deepStrictEqual(diagnostics, []);
    assert.deepStrictEqual(paths(candidates), ['/home/u/.claude/ai-memory.db', '/work/proj/proj.db']);
    assert.deepStrictEqual(
      candidates[0].sources.map((s) => s.kind),
      ['vscode-workspace', 'claude-user', 'cursor-user', 'codex', 'env'],
    );
  });

  it('lists $AI_MEMORY_DB, config.toml db and existing common paths after the agent configs', async () => {
    const fsys = new FakeFs({
      '/home/u/.cursor/mcp.json': json({ mcpServers: { m: aiMemoryServer('--db', '/agent.db') } }),
      '/home/u/.config/ai-memory/config.toml': '# ai-memory\ndb = "~/cfg.db"\n\n[server]\nport = 9077\n',
      '/home/u/.local/share/ai-memory/memories.db': 'data',
    });
    const { candidates, diagnostics } = await discoverDatabases(ctxWith(fsys, { env: { AI_MEMORY_DB: '/env.db' } }));
    assert.deepStrictEqual(diagnostics, []);
    assert.deepStrictEqual(
      candidates.map((c) => [c.path, c.sources[0].kind, c.exists]),
      [
        ['/agent.db', 'cursor-user', false],
        ['/env.db', 'env', false],
        ['/home/u/cfg.db', 'ai-memory-config', false],
        ['/home/u/.local/share/ai-memory/memories.db', 'common-path', true],
      ],
    );
    assert.strictEqual(describeSource(candidates[1].sources[0]), '$AI_MEMORY_DB');
    assert.strictEqual(describeSource(candidates[2].sources[0]), '~/.config/ai-memory/config.toml (db setting)');
    assert.strictEqual(describeSource(candidates[3].sources[0]), 'common location');
  });

  it('does not list common paths that do not exist (or are directories)', async () => {
    const fsys = new FakeFs({ '/home/u/.claude/ai-memory.db/inner': 'x' });
    const r = await discoverDatabases(ctxWith(fsys));
    assert.deepStrictEqual(r.candidates, []);
  });

  it('resolves relative paths: workspace files against the folder, user files against home, server cwd first', async () => {
    const fsys = new FakeFs({
      [`${WS}/.vscode/mcp.json`]: json({ servers: { m: aiMemoryServer('--db', 'data/ws.db') } }),
      '/home/u/.gemini/settings.json': json({
        mcpServers: {
          plain: aiMemoryServer('--db', 'data/user.db'),
          withCwd: { command: 'ai-memory', args: ['--db', 'c.db'], cwd: '${workspaceFolder}/sub' },
        },
      }),
    });
    const r = await discoverDatabases(ctxWith(fsys));
    assert.deepStrictEqual(paths(r.candidates), ['/work/proj/data/ws.db', '/home/u/data/user.db', '/work/proj/sub/c.db']);
  });

  it('labels and resolves per folder in a multi-root workspace', async () => {
    const fsys = new FakeFs({
      '/w/api/.vscode/mcp.json': json({ servers: { m: aiMemoryServer('--db', '${workspaceFolder}/api.db') } }),
      '/w/web/.vscode/mcp.json': json({ servers: { m: aiMemoryServer('--db', '${workspaceFolder:api}/shared.db') } }),
      '/home/u/.cursor/mcp.json': json({ mcpServers: { m: aiMemoryServer('--db', '${workspaceFolder}/ambiguous.db') } }),
    });
    const r = await discoverDatabases(
      ctxWith(fsys, {
        workspaceFolders: [
          { name: 'api', path: '/w/api' },
          { name: 'web', path: '/w/web' },
        ],
      }),
    );
    assert.deepStrictEqual(paths(r.candidates), ['/w/api/api.db', '/w/api/shared.db']);
    assert.strictEqual(describeSource(r.candidates[1].sources[0]), 'web/.vscode/mcp.json (server "m")');
    assert.strictEqual(r.diagnostics.length, 1);
    assert.match(r.diagnostics[0], /^~\/\.cursor\/mcp\.json \(server "m"\): cannot resolve --db .*workspaceFolder/);
  });

  it('reports unresolvable variables instead of guessing', async () => {
    const fsys = new FakeFs({
      [`${WS}/.vscode/mcp.json`]: json({
        servers: {
          a: aiMemoryServer('--db', '${input:dbPath}'),
          b: aiMemoryServer('--db', '${env:MISSING}/x.db'),
          c: aiMemoryServer('mcp', '--db'),
        },
      }),
    });
    const r = await discoverDatabases(ctxWith(fsys));
    assert.deepStrictEqual(r.candidates, []);
    assert.deepStrictEqual(r.diagnostics, [
      '.vscode/mcp.json (server "a"): cannot resolve --db ${input:dbPath}: cannot resolve ${input:dbPath} outside the editor',
      '.vscode/mcp.json (server "b"): cannot resolve --db ${env:MISSING}/x.db: environment variable MISSING is not set',
      '.vscode/mcp.json (server "c"): "--db" has no value',
    ]);
  });

  it('handles ai-memory servers without --db', async () => {
    const file = '/home/u/.cursor/mcp.json';
    const config = json({
      mcpServers: {
        envOnly: { command: 'ai-memory', args: ['mcp'], env: { AI_MEMORY_DB: '${userHome}/env-entry.db' } },
        bare: { command: 'ai-memory', args: ['mcp'] },
        withCwd: { command: 'ai-memory', args: ['mcp'], cwd: '/srv/mem' },
      },
    });
    // Nothing to fall back on: the cwd default only where the cwd is known.
    let r = await discoverDatabases(ctxWith(new FakeFs({ [file]: config })));
    assert.deepStrictEqual(paths(r.candidates), ['/home/u/env-entry.db', '/srv/mem/ai-memory.db']);
    assert.strictEqual(r.candidates[0].sources[0].detail, 'env AI_MEMORY_DB=${userHome}/env-entry.db');
    assert.strictEqual(r.diagnostics.length, 1);
    assert.match(r.diagnostics[0], /^~\/\.cursor\/mcp\.json \(server "bare"\): runs ai-memory without --db/);

    // With $AI_MEMORY_DB set, servers without --db inherit it and are attributed to it.
    r = await discoverDatabases(ctxWith(new FakeFs({ [file]: config }), { env: { AI_MEMORY_DB: '/global.db' } }));
    assert.deepStrictEqual(r.diagnostics, []);
    assert.deepStrictEqual(paths(r.candidates), ['/home/u/env-entry.db', '/global.db']);
    assert.deepStrictEqual(
      r.candidates[1].sources.map((s) => `${s.kind}:${s.server ?? ''}`),
      ['cursor-user:bare', 'cursor-user:withCwd', 'env:'],
    );

    // With only config.toml's db, they use that.
    r = await discoverDatabases(
      ctxWith(new FakeFs({ [file]: config, '/home/u/.config/ai-memory/config.toml': 'db = "/from-config.db"' })),
    );
    assert.deepStrictEqual(paths(r.candidates), ['/home/u/env-entry.db', '/from-config.db']);
    assert.deepStrictEqual(
      r.candidates[1].sources.map((s) => s.kind),
      ['cursor-user', 'cursor-user', 'ai-memory-config'],
    );
  });

  it('turns broken and unreadable files into diagnostics and keeps going', async () => {
    const fsys = new FakeFs({
      [`${WS}/.vscode/mcp.json`]: '{\n  "servers": {\n    "memory": { "command": "ai-memory" "args": [] }\n  }\n}',
      '/home/u/.claude.json': errno('EACCES'),
      '/home/u/.cursor/mcp.json': '[1, 2]',
      '/home/u/.codeium/windsurf/mcp_config.json': json({ mcpServers: ['not', 'an', 'object'] }),
      '/home/u/.gemini/settings.json': json({ mcpServers: { m: aiMemoryServer('--db', '/still-found.db') } }),
      '/home/u/.codex/config.toml': '[env]\nOPENAI_API_KEY = sk-proj-AbCdEf0123456789secret\n[mcp_servers.memory]\ncommand = ai-memory\n',
      '/home/u/.config/ai-memory/config.toml': 'db = "unterminated\n',
    });
    const r = await discoverDatabases(ctxWith(fsys));
    assert.deepStrictEqual(paths(r.candidates), ['/still-found.db']);
    assert.deepStrictEqual(r.diagnostics, [
      "~/.config/ai-memory/config.toml: invalid TOML at line 1, column 19: unterminated string (it reaches the end of the line)",
      ".vscode/mcp.json: invalid JSON at line 3, column 40: expected ',' (or the end of the object or array)",
      '~/.claude.json: cannot read: EACCES: simulated',
      '~/.cursor/mcp.json: expected an object at the top level',
      '~/.codeium/windsurf/mcp_config.json: "mcpServers" should be an object; ignored',
      '~/.codex/config.toml: invalid TOML at line 2, column 18: invalid value for OPENAI_API_KEY (strings must be quoted)',
    ]);
    assert.ok(!r.diagnostics.join('\n').includes('sk-proj'), 'no value is ever echoed: it may be a secret');
  });

  it('ignores empty files silently and flags "mcpServers" in VS Code files', async () => {
    const fsys = new FakeFs({
      [`${WS}/.cursor/mcp.json`]: '  \n',
      [`${WS}/.vscode/mcp.json`]: json({ mcpServers: { m: aiMemoryServer('--db', '/x.db') } }),
    });
    const r = await discoverDatabases(ctxWith(fsys));
    assert.deepStrictEqual(r.candidates, []);
    assert.deepStrictEqual(r.diagnostics, ['.vscode/mcp.json: has "mcpServers" but VS Code reads "servers"; ignored']);
  });

  it('reports a relative $AI_MEMORY_DB when no working directory is known, else resolves it against cwd', async () => {
    let r = await discoverDatabases(ctxWith(new FakeFs(), { workspaceFolders: [], env: { AI_MEMORY_DB: 'rel.db' } }));
    assert.deepStrictEqual(r.candidates, []);
    assert.match(r.diagnostics[0], /relative path 'rel.db'.*unknown/);
    r = await discoverDatabases(ctxWith(new FakeFs(), { workspaceFolders: [], cwd: '/cli/cwd', env: { AI_MEMORY_DB: 'rel.db' } }));
    assert.deepStrictEqual(paths(r.candidates), ['/cli/cwd/rel.db']);
  });

  it('reads each file at most once and never throws on a failing stat', async () => {
    const fsys = new FakeFs({
      '/home/u/.claude.json': json({ mcpServers: { m: aiMemoryServer('--db', '/boom.db') } }),
      '/boom.db': errno('EIO'),
    });
    const r = await discoverDatabases(ctxWith(fsys));
    assert.deepStrictEqual(paths(r.candidates), ['/boom.db']);
    assert.strictEqual(r.candidates[0].exists, false);
    assert.deepStrictEqual(r.diagnostics, ['/boom.db: cannot stat: EIO: simulated']);
    const counts = new Map<string, number>();
    for (const p of fsys.reads) counts.set(p, (counts.get(p) ?? 0) + 1);
    assert.ok([...counts.values()].every((n) => n === 1), `duplicate reads: ${fsys.reads.join(', ')}`);
  });

  it('describeSource falls back gracefully without a file', () => {
    assert.strictEqual(describeSource({ kind: 'codex', detail: 'x' }), 'Codex');
    assert.strictEqual(describeSource({ kind: 'windsurf', server: 's', detail: 'x' }), 'Windsurf (server "s")');
    assert.strictEqual(describeSource({ kind: 'vscode-user', file: '/abs/mcp.json', server: 's', detail: 'x' }), '/abs/mcp.json (server "s")');
  });
});

describe('discovery: against a real directory', () => {
  let root: string;

  before(() => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'ai-memory-discovery-'));
  });
  after(() => {
    fs.rmSync(root, { recursive: true, force: true });
  });

  it('finds databases with the Node file system adapter', async () => {
    const home = path.join(root, 'home');
    const ws = path.join(root, 'ws');
    fs.mkdirSync(path.join(ws, '.vscode'), { recursive: true });
    fs.mkdirSync(path.join(home, '.claude'), { recursive: true });
    fs.mkdirSync(path.join(home, '.codex'), { recursive: true });
    // A directory where a file is expected must be reported, not crash.
    fs.mkdirSync(path.join(home, '.cursor', 'mcp.json'), { recursive: true });
    fs.writeFileSync(
      path.join(ws, '.vscode', 'mcp.json'),
      '// workspace\n{ "servers": { "memory": { "type": "stdio", "command": "ai-memory", "args": ["--db", "${userHome}/.claude/ai-memory.db", "mcp",], }, }, }\n',
    );
    fs.writeFileSync(path.join(home, '.codex', 'config.toml'), '[mcp_servers.memory]\ncommand = "ai-memory"\nargs = ["--db=data/codex.db"]\n');
    fs.writeFileSync(path.join(home, '.claude', 'ai-memory.db'), Buffer.alloc(4096));

    const result = await discoverDatabases({
      home,
      env: {},
      platform: process.platform,
      workspaceFolders: [{ name: 'ws', path: ws }],
      vscodeUserDir: path.join(root, 'no-such-user-dir'),
      fs: createNodeDiscoveryFs(),
    });
    assert.deepStrictEqual(
      result.candidates.map((c) => [c.path, c.exists, c.size, c.sources.map((s) => s.kind)]),
      [
        [path.join(home, '.claude', 'ai-memory.db'), true, 4096, ['vscode-workspace', 'common-path']],
        [path.join(home, 'data', 'codex.db'), false, undefined, ['codex']],
      ],
    );
    assert.strictEqual(result.diagnostics.length, 1);
    assert.match(result.diagnostics[0], /\.cursor.mcp\.json: cannot read: .*mcp\.json is a directory, not a regular file/);
  });
});
