/**
 * Reading the configuration files discovery looks in: JSONC (VS Code's `mcp.json`, and the
 * Claude / Cursor / Windsurf / Gemini files, which are nominally JSON but hand-edited often
 * enough that we read them leniently) with Microsoft's `jsonc-parser` (what VS Code itself
 * uses), and TOML (`~/.config/ai-memory/config.toml`, Codex's `config.toml`) with
 * `smol-toml` (TOML 1.0). Both are bundled by esbuild.
 *
 * What this adds: one error type with a 1-based line and column for both formats, a leading
 * BOM accepted, and JSONC that is strict about everything but comments and trailing commas.
 * This module must not import `vscode` (shared by the CLI, the extension and tests).
 */
import { parseTree, printParseErrorCode, type Node as JsonNode, type ParseError } from 'jsonc-parser';
import { parse as parseTomlText, TomlError as SmolTomlError } from 'smol-toml';

/** A configuration file that is not valid JSON(C) / TOML; `line` and `column` are 1-based. */
export class ConfigSyntaxError extends Error {
  constructor(
    readonly format: 'JSON' | 'TOML',
    /** What went wrong, without the position (e.g. "expected a comma"). */
    readonly reason: string,
    readonly line: number,
    readonly column: number,
  ) {
    super(`invalid ${format} at line ${line}, column ${column}: ${reason}`);
    this.name = 'ConfigSyntaxError';
  }
}

export type TomlTable = Record<string, unknown>;

function stripBom(text: string): string {
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
}

/** 1-based line and column of a UTF-16 offset; `\r\n`, `\r` and `\n` each end a line. */
export function lineColumn(text: string, offset: number): { line: number; column: number } {
  let line = 1;
  let lineStart = 0;
  for (let i = 0; i < offset && i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x0a || (c === 0x0d && text.charCodeAt(i + 1) !== 0x0a)) {
      line++;
      lineStart = i + 1;
    }
  }
  return { line, column: offset - lineStart + 1 };
}

/** jsonc-parser's error codes in words. */
const JSONC_REASONS: Record<string, string> = {
  InvalidSymbol: 'unexpected character',
  InvalidNumberFormat: 'invalid number',
  PropertyNameExpected: 'expected a property name in double quotes',
  ValueExpected: 'expected a value',
  ColonExpected: "expected ':'",
  CommaExpected: "expected ',' (or the end of the object or array)",
  CloseBraceExpected: "expected '}'",
  CloseBracketExpected: "expected ']'",
  EndOfFileExpected: 'unexpected content after the value',
  InvalidCommentToken: 'invalid comment',
  UnexpectedEndOfComment: 'unterminated block comment',
  UnexpectedEndOfString: 'unterminated string',
  UnexpectedEndOfNumber: 'incomplete number',
  InvalidUnicode: 'invalid \\u escape',
  InvalidEscapeCharacter: 'invalid escape in a string',
  InvalidCharacter: 'invalid character in a string (control characters must be escaped)',
};

/**
 * Parses JSON with `//` and `/* *\/` comments and trailing commas, like VS Code reads
 * `mcp.json`. Throws ConfigSyntaxError at the first error: jsonc-parser recovers and
 * returns a partial value, which we never use — a half-read file could name the wrong database.
 */
export function parseJsonc(text: string): unknown {
  const body = stripBom(text);
  if (body.trim() === '') throw new ConfigSyntaxError('JSON', 'the file is empty (expected a JSON value)', 1, 1);
  const errors: ParseError[] = [];
  let tree: JsonNode | undefined;
  try {
    tree = parseTree(body, errors, { allowTrailingComma: true, disallowComments: false, allowEmptyContent: false });
  } catch (e) {
    // jsonc-parser recurses per nesting level: a hostile file can exhaust the stack.
    if (e instanceof RangeError) throw new ConfigSyntaxError('JSON', 'nested too deeply to be a configuration file', 1, 1);
    throw e;
  }
  if (errors.length || !tree) {
    const first = errors[0];
    const name = first ? printParseErrorCode(first.error) : 'ValueExpected';
    const { line, column } = lineColumn(body, first?.offset ?? 0);
    throw new ConfigSyntaxError('JSON', JSONC_REASONS[name] ?? name, line, column);
  }
  return toValue(tree);
}

/**
 * The value of a parse-tree node. Object keys become own properties even when named
 * `__proto__` (jsonc-parser's own `parse` assigns with `obj[key] = …`, which would set the
 * object's prototype from the file — a crafted config could then show inherited keys).
 */
function toValue(node: JsonNode): unknown {
  switch (node.type) {
    case 'object': {
      const out: Record<string, unknown> = {};
      for (const prop of node.children ?? []) {
        const [key, val] = prop.children ?? [];
        if (!key || !val) continue;
        Object.defineProperty(out, String(key.value), { value: toValue(val), enumerable: true, writable: true, configurable: true });
      }
      return out;
    }
    case 'array':
      return (node.children ?? []).map(toValue);
    default:
      return node.value;
  }
}

/** Parses a TOML 1.0 document. Throws ConfigSyntaxError with smol-toml's position and reason. */
export function parseToml(text: string): TomlTable {
  try {
    // smol-toml builds null-prototype objects; discovery handles plain ones like JSON's.
    return plain(parseTomlText(stripBom(text))) as TomlTable;
  } catch (e) {
    if (e instanceof SmolTomlError) {
      // smol-toml's message is "Invalid TOML document: <reason>\n\n<code block>".
      let reason = e.message.split('\n')[0].replace(/^Invalid TOML document:\s*/, '');
      // The most common mistake in a hand-edited config: a path or name without quotes.
      const bare = /^[A-Za-z~./\\][^\s,\]}#]*/.exec(stripBom(text).split(/\r\n|\r|\n/)[e.line - 1]?.slice(e.column - 1) ?? '');
      const lineText = stripBom(text).split(/\r\n|\r|\n/)[e.line - 1] ?? '';
      if (/control characters/.test(reason) && e.column > lineText.length) reason = 'unterminated string (it reaches the end of the line)';
      // The key is named, never the value: an unquoted value may be a secret (`OPENAI_API_KEY =
      // sk-…` in a Codex config), and this message goes to the extension's log.
      const key = /^\s*([^=#]*?)\s*=/.exec(lineText)?.[1];
      if (reason === 'invalid value' && bare && !/^(true|false|inf|nan)$/.test(bare[0])) reason += `${key ? ` for ${key}` : ''} (strings must be quoted)`;
      throw new ConfigSyntaxError('TOML', reason, e.line, e.column);
    }
    throw e;
  }
}

/** Plain objects (own, enumerable properties; Object.prototype) in place of null-prototype ones. */
function plain(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(plain);
  if (typeof value !== 'object' || value === null || value instanceof Date) return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) Object.defineProperty(out, k, { value: plain(v), enumerable: true, writable: true, configurable: true });
  return out;
}

/** A TOML table or JSON object (as opposed to an array or scalar). */
export function isTable(value: unknown): value is TomlTable {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
