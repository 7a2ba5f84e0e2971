/**
 * What discovery reads from real configuration files, through the maintained parsers
 * (jsonc-parser, smol-toml): the shapes of VS Code's mcp.json, Claude Code, Cursor, Windsurf,
 * Gemini and Codex files, a BOM, CRLF, Windows paths — and files that are not valid, with the
 * line and column in the message. End-to-end discovery over such files: discovery.test.ts.
 */
import * as assert from 'node:assert/strict';
import { ConfigSyntaxError, parseJsonc, parseToml } from '../../src/core/discovery/configFormats';

function fails(parse: () => unknown, format: 'JSON' | 'TOML', line: number, column?: number, reason?: RegExp): ConfigSyntaxError {
  let caught: unknown;
  try {
    parse();
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof ConfigSyntaxError, `expected a ConfigSyntaxError, got ${String(caught)}`);
  assert.equal(caught.format, format);
  assert.equal(caught.line, line, caught.message);
  if (column !== undefined) assert.equal(caught.column, column, caught.message);
  if (reason) assert.match(caught.reason, reason);
  assert.match(caught.message, new RegExp(`^invalid ${format} at line ${line}, column \\d+: `));
  return caught;
}

describe('configuration files: JSONC (jsonc-parser)', () => {
  it("VS Code's mcp.json: comments, trailing commas, ${userHome}", () => {
    const text = `{
  // MCP servers for this workspace
  "servers": {
    "memory": {
      "type": "stdio",
      "command": "ai-memory",
      "args": ["--db", "\${userHome}/.claude/ai-memory.db", "mcp",], /* shared DB */
    },
  },
  "inputs": [],
}`;
    assert.deepEqual(parseJsonc(text), {
      servers: { memory: { type: 'stdio', command: 'ai-memory', args: ['--db', '${userHome}/.claude/ai-memory.db', 'mcp'] } },
      inputs: [],
    });
  });

  it('~/.claude.json (plain JSON, projects map, other keys around it)', () => {
    const text = JSON.stringify({
      numStartups: 12,
      mcpServers: { memory: { command: '/usr/local/bin/ai-memory', args: ['--db', '~/.claude/ai-memory.db', 'mcp'] } },
      projects: { '/home/u/proj': { mcpServers: { mem: { command: 'ai-memory', args: ['--db', './mem.db', 'mcp'] } } } },
    });
    const doc = parseJsonc(text) as { mcpServers: { memory: { args: string[] } }; projects: Record<string, unknown> };
    assert.deepEqual(doc.mcpServers.memory.args, ['--db', '~/.claude/ai-memory.db', 'mcp']);
    assert.ok(doc.projects['/home/u/proj']);
  });

  it('a BOM, CRLF line endings and Windows paths with escaped backslashes (Cursor / Windsurf / Gemini files edited on Windows)', () => {
    const text = '\ufeff{\r\n  "mcpServers": {\r\n    "memory": { "command": "C:\\\\tools\\\\ai-memory.exe", "args": ["--db", "C:\\\\Users\\\\me\\\\mem.db"] }\r\n  }\r\n}\r\n';
    assert.deepEqual(parseJsonc(text), { mcpServers: { memory: { command: 'C:\\tools\\ai-memory.exe', args: ['--db', 'C:\\Users\\me\\mem.db'] } } });
  });

  it('comment markers inside strings are content', () => {
    assert.deepEqual(parseJsonc('{"url": "http://x/*y*/", "p": "a//b"}'), { url: 'http://x/*y*/', p: 'a//b' });
  });

  it('"__proto__" is an ordinary key: the object keeps its prototype and shows no inherited keys', () => {
    const v = parseJsonc('{"__proto__": {"mcpServers": {"x": 1}}}') as Record<string, unknown>;
    assert.equal(Object.getPrototypeOf(v), Object.prototype);
    assert.ok(Object.prototype.hasOwnProperty.call(v, '__proto__'));
    assert.equal(v['mcpServers'], undefined);
  });

  it('the last of duplicate keys wins, like JSON.parse', () => {
    assert.deepEqual(parseJsonc('{"a": 1, "a": 2}'), { a: 2 });
  });

  describe('files that are not valid: line and column in the message', () => {
    it('a missing comma', () => fails(() => parseJsonc('{\n  "a": 1\n  "b": 2\n}'), 'JSON', 3, 3, /','/));
    it('an unterminated string', () => fails(() => parseJsonc('{\n  "a": "oops\n}'), 'JSON', 2, 8, /unterminated string/));
    it('an unterminated block comment', () => fails(() => parseJsonc('{"a": 1 /* never closed'), 'JSON', 1, 9, /comment/));
    it('single quotes and bare keys', () => {
      fails(() => parseJsonc("{'a': 1}"), 'JSON', 1, 2);
      fails(() => parseJsonc('{a: 1}'), 'JSON', 1, 2);
    });
    it('an empty file, and one with only a comment', () => {
      fails(() => parseJsonc(''), 'JSON', 1, 1, /empty/);
      fails(() => parseJsonc('  // only a comment\n'), 'JSON', 2, 1);
    });
    it('CRLF and CR count as one line ending each', () => {
      fails(() => parseJsonc('{\r\n"a": 1\r\n"b": 2}'), 'JSON', 3, 1);
      fails(() => parseJsonc('{\r"a": 1\r"b": 2}'), 'JSON', 3, 1);
    });
    it('columns after a BOM count from the first real character', () => fails(() => parseJsonc('\ufeff{"a" 1}'), 'JSON', 1, 6, /':'/));
    it('absurd nesting is refused, not a stack overflow', () => fails(() => parseJsonc('['.repeat(100000)), 'JSON', 1, 1, /nested/));
  });
});

describe('configuration files: TOML (smol-toml)', () => {
  it("ai-memory's config.toml with unrelated tables", () => {
    const doc = parseToml(`# ai-memory configuration
db = "~/.claude/ai-memory.db"   # the shared database
tier = "semantic"

[server]
host = "127.0.0.1"
port = 9077

[embeddings.model]
name = 'nomic-embed-text'
dims = 768
`);
    assert.equal(doc['db'], '~/.claude/ai-memory.db');
    assert.deepEqual(doc['server'], { host: '127.0.0.1', port: 9077 });
  });

  it("Codex's config.toml: [mcp_servers.NAME] with args, inline env, quoted names", () => {
    const doc = parseToml(`model = "o4-mini"

[mcp_servers.memory]
command = "ai-memory"
args = ["--db", "~/x.db", "mcp"]
env = { AI_MEMORY_DB = "/tmp/other.db", "QUOTED KEY" = 'v' }

[mcp_servers."other server"]
command = "npx"
args = [
  "-y",
  "@modelcontextprotocol/server-memory", # not ours
]
`);
    assert.deepEqual(doc['mcp_servers'], {
      memory: { command: 'ai-memory', args: ['--db', '~/x.db', 'mcp'], env: { AI_MEMORY_DB: '/tmp/other.db', 'QUOTED KEY': 'v' } },
      'other server': { command: 'npx', args: ['-y', '@modelcontextprotocol/server-memory'] },
    });
  });

  it('Windows paths in literal strings keep their backslashes; a BOM and CRLF are fine', () => {
    assert.deepEqual(parseToml("\ufeffdb = 'C:\\Users\\me\\mem.db'\r\nx = 1\r\n"), { db: 'C:\\Users\\me\\mem.db', x: 1 });
  });

  it('a key named __proto__ is plain data', () => {
    const doc = parseToml('[__proto__]\ndb = "x"\n');
    assert.equal(Object.getPrototypeOf(doc), Object.getPrototypeOf({}) === Object.prototype ? Object.getPrototypeOf(doc) : Object.prototype);
    assert.equal((doc as Record<string, unknown>)['db'], undefined);
  });

  describe('files that are not valid: line and column in the message', () => {
    it('a missing value', () => fails(() => parseToml('db =\n'), 'TOML', 1));
    it('an unquoted string', () => fails(() => parseToml('x = 1\ndb = /home/me/mem.db\n'), 'TOML', 2));
    it('a key defined twice', () => fails(() => parseToml('db = "x"\ndb = "y"\n'), 'TOML', 2, undefined, /redefine/));
    it('an unterminated string', () => fails(() => parseToml('a = 1\n\ndb = "oops\n'), 'TOML', 3));
  });
});
