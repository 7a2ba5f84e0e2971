import * as assert from 'assert';
import { parseToml, TomlError } from '../../src/core/discovery/toml';

function assertFails(text: string, line: number, reason?: RegExp): TomlError {
  let caught: unknown;
  try {
    parseToml(text);
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof TomlError, `expected a TomlError for ${JSON.stringify(text)}, got ${String(caught)}`);
  assert.strictEqual(caught.line, line, `line of: ${caught.message}`);
  if (reason) assert.match(caught.reason, reason);
  assert.match(caught.message, new RegExp(`^Invalid TOML at line ${line}, column \\d+: `));
  return caught;
}

describe('toml: parseToml', () => {
  it('reads ai-memory config.toml with unrelated tables', () => {
    const doc = parseToml(`# ai-memory configuration
db = "~/.claude/ai-memory.db"   # the shared database
tier = "semantic"

[server]
host = "127.0.0.1"
port = 9077
tls = false

[embeddings.model]
name = 'nomic-embed-text'
dims = 768
`);
    assert.deepStrictEqual(doc, {
      db: '~/.claude/ai-memory.db',
      tier: 'semantic',
      server: { host: '127.0.0.1', port: 9077, tls: false },
      embeddings: { model: { name: 'nomic-embed-text', dims: 768 } },
    });
  });

  it('reads the Codex mcp_servers shape', () => {
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

[mcp_servers.third.env]
AI_MEMORY_DB = "/data/third.db"
`);
    assert.deepStrictEqual(doc, {
      model: 'o4-mini',
      mcp_servers: {
        memory: { command: 'ai-memory', args: ['--db', '~/x.db', 'mcp'], env: { AI_MEMORY_DB: '/tmp/other.db', 'QUOTED KEY': 'v' } },
        'other server': { command: 'npx', args: ['-y', '@modelcontextprotocol/server-memory'] },
        third: { env: { AI_MEMORY_DB: '/data/third.db' } },
      },
    });
  });

  describe('strings', () => {
    it('basic string escapes', () => {
      const doc = parseToml(String.raw`s = "q\" b\\ n\n t\t u\u00E9 U\U0001F600 b\b f\f r\r e\e x\x41"`);
      assert.strictEqual(doc['s'], 'q" b\\ n\n t\t u\u00e9 U\u{1F600} b\b f\f r\r e\x1b xA');
    });
    it('Windows paths in literal strings keep their backslashes', () => {
      assert.deepStrictEqual(parseToml(String.raw`db = 'C:\Users\me\ai-memory.db'`), { db: 'C:\\Users\\me\\ai-memory.db' });
    });
    it('comment markers inside strings are content', () => {
      assert.deepStrictEqual(parseToml(`a = "x # y" # real comment\nb = 'z # w'`), { a: 'x # y', b: 'z # w' });
    });
    it('multi-line basic strings: leading newline trimmed, escapes, line-ending backslash', () => {
      const doc = parseToml('s = """\nline 1\n  line 2 \\"q\\"\\u0041\n"""\nt = """one \\\n     two \\\n\n   three"""\n');
      assert.strictEqual(doc['s'], 'line 1\n  line 2 "q"A\n');
      assert.strictEqual(doc['t'], 'one two three');
    });
    it('multi-line strings may end with one or two extra quotes', () => {
      assert.strictEqual(parseToml('s = """a""""')['s'], 'a"');
      assert.strictEqual(parseToml('s = """a"""""')['s'], 'a""');
      assert.strictEqual(parseToml("s = '''a''''")['s'], "a'");
    });
    it('multi-line literal strings are raw', () => {
      const doc = parseToml("s = '''\nC:\\raw\\path\n  \"kept\" \\n\n'''\n");
      assert.strictEqual(doc['s'], 'C:\\raw\\path\n  "kept" \\n\n');
    });
    it('CRLF files', () => {
      const doc = parseToml('a = "x"\r\n[t]\r\nb = """\r\nl1\r\nl2"""\r\nc = [\r\n 1,\r\n 2,\r\n]\r\n');
      assert.deepStrictEqual(doc, { a: 'x', t: { b: 'l1\r\nl2', c: [1, 2] } });
    });
    it('a leading BOM is ignored', () => {
      assert.deepStrictEqual(parseToml('\ufeffdb = "x"'), { db: 'x' });
    });
  });

  describe('numbers, booleans, dates', () => {
    it('integers in all bases with separators', () => {
      const doc = parseToml('a = 42\nb = +17\nc = -5\nd = 1_000_000\ne = 0xDEAD_beef\nf = 0o755\ng = 0b1101\nh = 0\ni = -0');
      assert.deepStrictEqual(doc, { a: 42, b: 17, c: -5, d: 1000000, e: 0xdeadbeef, f: 0o755, g: 13, h: 0, i: 0 });
    });
    it('huge integers stay exact as bigint', () => {
      assert.strictEqual(parseToml('n = 9223372036854775807')['n'], 9223372036854775807n);
    });
    it('floats, including inf and nan', () => {
      const doc = parseToml('a = 3.14\nb = -0.01\nc = 5e+22\nd = 1e06\ne = -2E-2\nf = 6.626e-34\ng = 224_617.445_991\nh = inf\ni = -inf\nj = nan');
      assert.strictEqual(doc['a'], 3.14);
      assert.strictEqual(doc['b'], -0.01);
      assert.strictEqual(doc['c'], 5e22);
      assert.strictEqual(doc['d'], 1e6);
      assert.strictEqual(doc['e'], -0.02);
      assert.strictEqual(doc['f'], 6.626e-34);
      assert.strictEqual(doc['g'], 224617.445991);
      assert.strictEqual(doc['h'], Infinity);
      assert.strictEqual(doc['i'], -Infinity);
      assert.ok(Number.isNaN(doc['j']));
    });
    it('booleans', () => {
      assert.deepStrictEqual(parseToml('t = true\nf = false'), { t: true, f: false });
    });
    it('dates and times are kept as text', () => {
      const doc = parseToml('a = 1979-05-27T07:32:00Z\nb = 1979-05-27 07:32:00.999-07:00\nc = 1979-05-27\nd = 07:32:00\ne = 1979-05-27T00:32:00');
      assert.deepStrictEqual(doc, {
        a: '1979-05-27T07:32:00Z',
        b: '1979-05-27 07:32:00.999-07:00',
        c: '1979-05-27',
        d: '07:32:00',
        e: '1979-05-27T00:32:00',
      });
    });
  });

  describe('arrays and tables', () => {
    it('multi-line arrays with comments, nesting and trailing commas', () => {
      const doc = parseToml(`args = [
  # leading comment
  "--db", # why
  "~/x.db",

  "mcp",
]
nested = [[1, 2], ["a", 'b'], [], [{ x = 1 }]]
mixed = [1, "two", 3.0, true]`);
      assert.deepStrictEqual(doc, {
        args: ['--db', '~/x.db', 'mcp'],
        nested: [[1, 2], ['a', 'b'], [], [{ x: 1 }]],
        mixed: [1, 'two', 3, true],
      });
    });
    it('inline tables, with dotted keys and (leniently) newlines and trailing commas', () => {
      const doc = parseToml('a = { x = 1, y.z = "w" }\nb = {}\nc = {\n  k = "v", # comment\n}');
      assert.deepStrictEqual(doc, { a: { x: 1, y: { z: 'w' } }, b: {}, c: { k: 'v' } });
    });
    it('dotted keys and quoted keys', () => {
      const doc = parseToml('a.b.c = 1\na . b . d = 2\n"quoted.key" = 3\n\'lit key\' = 4\nsite."google.com" = true\n3 = "bare digits"');
      assert.deepStrictEqual(doc, {
        a: { b: { c: 1, d: 2 } },
        'quoted.key': 3,
        'lit key': 4,
        site: { 'google.com': true },
        '3': 'bare digits',
      });
    });
    it('table headers with quoted parts and whitespace', () => {
      const doc = parseToml('[ a . "b.c" . \'d\' ]\nx = 1\n[a]\ny = 2');
      assert.deepStrictEqual(doc, { a: { 'b.c': { d: { x: 1 } }, y: 2 } });
    });
    it('arrays of tables', () => {
      const doc = parseToml('[[p]]\nn = 1\n[p.sub]\nq = true\n[[p]]\nn = 2\n[[x.y]]\nz = 0');
      assert.deepStrictEqual(doc, { p: [{ n: 1, sub: { q: true } }, { n: 2 }], x: { y: [{ z: 0 }] } });
    });
    it('empty document and comment-only document', () => {
      assert.deepStrictEqual(parseToml(''), {});
      assert.deepStrictEqual(parseToml('# nothing here\n\n   \n'), {});
    });
    it('keys named __proto__ are plain data', () => {
      const doc = parseToml('__proto__ = 1\n[constructor]\nx = 2');
      assert.ok(Object.prototype.hasOwnProperty.call(doc, '__proto__'));
      assert.strictEqual(Object.getPrototypeOf(doc), Object.prototype);
      assert.deepStrictEqual(doc['constructor'], { x: 2 });
    });
  });

  describe('errors carry a line number', () => {
    it('unquoted string value', () => {
      assertFails('a = 1\ndb = ~/x.db', 2, /invalid value|expected a value/);
      assertFails('db = hello', 1, /strings must be quoted/);
    });
    it('missing = and missing value', () => {
      assertFails('\n\nkey "v"', 3, /expected '='/);
      assertFails('key =\nother = 1', 1, /missing value/);
    });
    it('unterminated strings and arrays', () => {
      assertFails('a = "abc\nb = 1', 1, /unterminated string/);
      assertFails("a = 'abc", 1, /unterminated literal/);
      assertFails('\na = """abc', 2, /unterminated multi-line/);
      assertFails("a = '''abc", 1, /unterminated multi-line literal/);
      assertFails('a = [1, 2', 1, /unterminated array/);
      assertFails('a = { x = 1', 1, /unterminated inline table/);
    });
    it('duplicate keys and tables', () => {
      assertFails('a = 1\na = 2', 2, /duplicate key 'a'/);
      assertFails('[t]\nx = 1\n[t]\ny = 2', 3, /defined more than once/);
      assertFails('a = 1\n[a.b]', 2, /not a table/);
      assertFails('a = 1\na.b = 2', 2, /not a table/);
      assertFails('t = { x = 1 }\n[t.y]', 2, /not a table/);
      assertFails('t = { x = 1 }\nt.y = 2', 2, /not a table/);
      assertFails('a = [1]\n[[a]]', 2, /different type/);
    });
    it('garbage after a value and bad headers', () => {
      assertFails('a = 1 2', 1, /expected end of line/);
      assertFails('[t\nx = 1', 1, /expected '\]'/);
      assertFails('[]', 1, /expected a key/);
      assertFails('= 1', 1, /expected a key/);
    });
    it('invalid escapes and numbers', () => {
      assertFails('a = "\\q"', 1, /invalid escape/);
      assertFails('a = "\\uD800"', 1, /not a Unicode scalar/);
      assertFails('a = 01', 1, /invalid value/);
      assertFails('a = 1__0', 1, /invalid value/);
      assertFails('a = 0xZZ', 1, /invalid value/);
      assertFails('a = .5', 1, /invalid value/);
      assertFails('a = 5.', 1, /invalid value/);
    });
    it('multi-line strings cannot be keys', () => {
      assertFails('"""k""" = 1', 1, /cannot be used as keys/);
    });
  });
});
