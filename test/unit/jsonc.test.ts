import * as assert from 'assert';
import { parseJsonc, JsoncError, lineColumn } from '../../src/core/discovery/jsonc';

/** Asserts that parsing fails with a JsoncError at the given position. */
function assertFails(text: string, line: number, column: number, reason?: RegExp): JsoncError {
  let caught: unknown;
  try {
    parseJsonc(text);
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof JsoncError, `expected a JsoncError, got ${String(caught)}`);
  assert.strictEqual(caught.line, line, `line of: ${caught.message}`);
  assert.strictEqual(caught.column, column, `column of: ${caught.message}`);
  if (reason) assert.match(caught.reason, reason);
  assert.match(caught.message, new RegExp(`^Invalid JSON at line ${line}, column ${column}: `));
  return caught;
}

describe('jsonc: parseJsonc', () => {
  it('parses plain JSON exactly like JSON.parse', () => {
    const samples = [
      '{"a":1,"b":[true,false,null],"c":{"d":"e"}}',
      '[]',
      '{}',
      '"just a string"',
      '-0.5e+10',
      '0',
      '[1, 2.5, -3, 4E2, 1e-2]',
      '{"nested": {"deep": [[[]]]}}',
      '"\\u00e9\\ud83d\\ude00 \\"quoted\\" \\\\ \\/ \\b\\f\\n\\r\\t"',
      '  \n\t {"ws": true}  \r\n',
    ];
    for (const sample of samples) {
      assert.deepStrictEqual(parseJsonc(sample), JSON.parse(sample), sample);
    }
  });

  it('strips // and /* */ comments', () => {
    const text = `// leading comment
{
  /* block
     comment */
  "a": 1, // trailing
  "b": /* inline */ 2
}
// end`;
    assert.deepStrictEqual(parseJsonc(text), { a: 1, b: 2 });
  });

  it('allows trailing commas in objects and arrays', () => {
    assert.deepStrictEqual(parseJsonc('{"a": [1, 2, ], "b": {"c": 3,}, }'), { a: [1, 2], b: { c: 3 } });
    assert.deepStrictEqual(parseJsonc('[1,\n// c\n]'), [1]);
    assert.deepStrictEqual(parseJsonc('{"a": 1, /* c */ }'), { a: 1 });
  });

  it('leaves comment markers and commas inside strings alone', () => {
    const text = '{"url": "http://example.com/*x*/", "s": "a // b", "t": ",}", "u": "\\"//\\""}';
    assert.deepStrictEqual(parseJsonc(text), { url: 'http://example.com/*x*/', s: 'a // b', t: ',}', u: '"//"' });
  });

  it('handles escaped backslashes before a closing quote', () => {
    assert.deepStrictEqual(parseJsonc('{"p": "C:\\\\Users\\\\", // c\n "q": 1}'), { p: 'C:\\Users\\', q: 1 });
  });

  it('skips a UTF-8 BOM', () => {
    assert.deepStrictEqual(parseJsonc('\ufeff{"a": 1}'), { a: 1 });
  });

  it('parses the VS Code mcp.json shape with comments and trailing commas', () => {
    const text = `{
  // MCP servers for this workspace
  "servers": {
    "memory": {
      "type": "stdio",
      "command": "ai-memory",
      "args": ["--db", "\${userHome}/.claude/ai-memory.db", "mcp",], // shared DB
    },
  },
  "inputs": [],
}`;
    assert.deepStrictEqual(parseJsonc(text), {
      servers: { memory: { type: 'stdio', command: 'ai-memory', args: ['--db', '${userHome}/.claude/ai-memory.db', 'mcp'] } },
      inputs: [],
    });
  });

  it('keeps "__proto__" as an ordinary key', () => {
    const value = parseJsonc('{"__proto__": {"polluted": true}}') as Record<string, unknown>;
    assert.ok(Object.prototype.hasOwnProperty.call(value, '__proto__'));
    assert.strictEqual(({} as Record<string, unknown>)['polluted'], undefined);
    assert.strictEqual(Object.getPrototypeOf(value), Object.prototype);
  });

  it('keeps the last value for duplicate keys, like JSON.parse', () => {
    assert.deepStrictEqual(parseJsonc('{"a": 1, "a": 2}'), { a: 2 });
  });

  describe('errors carry line and column', () => {
    it('missing comma', () => {
      assertFails('{\n  "a": 1\n  "b": 2\n}', 3, 3, /expected ',' or '}'/);
    });
    it('missing value', () => {
      assertFails('{"a": }', 1, 7, /expected a value but found '}'/);
    });
    it('unterminated string reports the opening quote', () => {
      assertFails('{\n  "a": "oops\n}', 2, 8, /unterminated string/);
    });
    it('unterminated block comment', () => {
      assertFails('{"a": 1 /* never closed', 1, 9, /unterminated \/\* comment/);
    });
    it('empty input', () => {
      assertFails('', 1, 1, /empty/);
      assertFails('  // only a comment\n', 2, 1, /empty/);
    });
    it('trailing garbage', () => {
      assertFails('{} x', 1, 4, /after the end/);
    });
    it('single-quoted strings and bare keys are not JSON', () => {
      assertFails("{'a': 1}", 1, 2, /property name in double quotes/);
      assertFails('{a: 1}', 1, 2, /property name in double quotes/);
    });
    it('lone or double commas', () => {
      assertFails('[,]', 1, 2, /expected a value/);
      assertFails('[1,,]', 1, 4, /expected a value/);
      assertFails('{,}', 1, 2, /property name/);
    });
    it('invalid escapes and numbers', () => {
      assertFails('"\\x41"', 1, 2, /invalid escape/);
      assertFails('"\\u12G4"', 1, 2, /\\u escape/);
      assertFails('01', 1, 1, /invalid number/);
      assertFails('1.', 1, 1, /invalid number/);
      assertFails('-', 1, 1, /invalid number/);
      assertFails('[undefined]', 1, 2, /'undefined'/);
      assertFails('[True]', 1, 2, /'True'/);
      assertFails('[nulls]', 1, 2, /'nulls'/);
    });
    it('counts CRLF and CR line endings', () => {
      assertFails('{\r\n"a": 1\r\n"b": 2}', 3, 1);
      assertFails('{\r"a": 1\r"b": 2}', 3, 1);
    });
    it('counts columns after a BOM from the first real character', () => {
      assertFails('\ufeff{"a" 1}', 1, 6, /expected ':'/);
    });
    it('rejects absurd nesting instead of overflowing the stack', () => {
      assertFails('['.repeat(100000), 1, 514, /nesting/);
    });
  });

  it('lineColumn maps offsets to 1-based positions', () => {
    assert.deepStrictEqual(lineColumn('ab\ncd', 0), { line: 1, column: 1 });
    assert.deepStrictEqual(lineColumn('ab\ncd', 4), { line: 2, column: 2 });
    assert.deepStrictEqual(lineColumn('ab\r\ncd', 4), { line: 2, column: 1 });
  });
});
