/**
 * A small, dependency-free JSONC ("JSON with comments") reader.
 *
 * VS Code's `mcp.json` is JSONC (comments and trailing commas are allowed),
 * and the Claude / Cursor / Windsurf / Gemini files are nominally JSON but are
 * hand-edited often enough that we read them leniently too.
 *
 * Rather than stripping comments with a regex and handing the result to
 * `JSON.parse` (which on Node 20 reports errors without a reliable position),
 * this is a tiny recursive-descent parser that accepts exactly JSON plus
 * `//` and `/* *\/` comments and a trailing comma before `}` / `]`. That way
 * every error carries an exact line and column, and comment markers inside
 * strings can never be mistaken for comments.
 *
 * This module must not import `vscode`: it is shared by the CLI, the
 * extension and plain-Node tests.
 */

/** Error thrown for malformed input; `line` and `column` are 1-based. */
export class JsoncError extends Error {
  constructor(
    /** What went wrong, without the position (e.g. "expected ':'"). */
    public readonly reason: string,
    public readonly line: number,
    public readonly column: number,
    /** 0-based UTF-16 offset into the (BOM-stripped) text. */
    public readonly offset: number,
  ) {
    super(`Invalid JSON at line ${line}, column ${column}: ${reason}`);
    this.name = 'JsoncError';
  }
}

/**
 * Nesting limit: real config files are a handful of levels deep, and the
 * parser is recursive, so a hostile or corrupt file must not be able to
 * overflow the stack.
 */
const MAX_DEPTH = 512;

/**
 * Parse JSONC text and return the value, like `JSON.parse`.
 *
 * Accepts: a leading UTF-8 BOM, `//` line comments, `/* *\/` block comments,
 * and a single trailing comma before `}` or `]`. Everything else must be
 * valid JSON. Throws {@link JsoncError} with line/column otherwise.
 */
export function parseJsonc(text: string): unknown {
  return new Parser(text.charCodeAt(0) === 0xfeff ? text.slice(1) : text).parseDocument();
}

class Parser {
  private pos = 0;

  constructor(private readonly text: string) {}

  parseDocument(): unknown {
    this.skipTrivia();
    if (this.pos >= this.text.length) {
      this.fail('the file is empty (expected a JSON value)');
    }
    const value = this.parseValue(0);
    this.skipTrivia();
    if (this.pos < this.text.length) {
      this.fail(`unexpected ${this.describeHere()} after the end of the JSON value`);
    }
    return value;
  }

  private parseValue(depth: number): unknown {
    if (depth > MAX_DEPTH) {
      this.fail(`nesting deeper than ${MAX_DEPTH} levels`);
    }
    const ch = this.text[this.pos];
    switch (ch) {
      case '{':
        return this.parseObject(depth);
      case '[':
        return this.parseArray(depth);
      case '"':
        return this.parseString();
      case 't':
        return this.parseLiteral('true', true);
      case 'f':
        return this.parseLiteral('false', false);
      case 'n':
        return this.parseLiteral('null', null);
      default:
        if (ch === '-' || (ch !== undefined && ch >= '0' && ch <= '9')) {
          return this.parseNumber();
        }
        return this.fail(`expected a value but found ${this.describeHere()}`);
    }
  }

  private parseObject(depth: number): Record<string, unknown> {
    const result: Record<string, unknown> = {};
    this.pos++; // '{'
    this.skipTrivia();
    if (this.text[this.pos] === '}') {
      this.pos++;
      return result;
    }
    for (;;) {
      if (this.text[this.pos] !== '"') {
        this.fail(`expected a property name in double quotes but found ${this.describeHere()}`);
      }
      const key = this.parseString();
      this.skipTrivia();
      if (this.text[this.pos] !== ':') {
        this.fail(`expected ':' after property name "${key}" but found ${this.describeHere()}`);
      }
      this.pos++;
      this.skipTrivia();
      const value = this.parseValue(depth + 1);
      // defineProperty rather than assignment so a "__proto__" key becomes an
      // ordinary own property (as with JSON.parse) instead of a prototype swap.
      Object.defineProperty(result, key, { value, enumerable: true, writable: true, configurable: true });
      this.skipTrivia();
      const sep = this.text[this.pos];
      if (sep === ',') {
        this.pos++;
        this.skipTrivia();
        if (this.text[this.pos] === '}') {
          // Trailing comma: allowed in JSONC.
          this.pos++;
          return result;
        }
        continue;
      }
      if (sep === '}') {
        this.pos++;
        return result;
      }
      this.fail(`expected ',' or '}' in object but found ${this.describeHere()}`);
    }
  }

  private parseArray(depth: number): unknown[] {
    const result: unknown[] = [];
    this.pos++; // '['
    this.skipTrivia();
    if (this.text[this.pos] === ']') {
      this.pos++;
      return result;
    }
    for (;;) {
      result.push(this.parseValue(depth + 1));
      this.skipTrivia();
      const sep = this.text[this.pos];
      if (sep === ',') {
        this.pos++;
        this.skipTrivia();
        if (this.text[this.pos] === ']') {
          this.pos++;
          return result;
        }
        continue;
      }
      if (sep === ']') {
        this.pos++;
        return result;
      }
      this.fail(`expected ',' or ']' in array but found ${this.describeHere()}`);
    }
  }

  private parseString(): string {
    const start = this.pos;
    this.pos++; // opening quote
    let out = '';
    let chunkStart = this.pos;
    for (;;) {
      if (this.pos >= this.text.length) {
        this.failAt(start, 'unterminated string');
      }
      const code = this.text.charCodeAt(this.pos);
      if (code === 0x22 /* " */) {
        out += this.text.slice(chunkStart, this.pos);
        this.pos++;
        return out;
      }
      if (code === 0x0a || code === 0x0d) {
        // A raw line break almost always means a missing closing quote;
        // reporting it at the string start is far more useful than at EOF.
        this.failAt(start, 'unterminated string (line break inside a string)');
      }
      if (code === 0x5c /* \ */) {
        out += this.text.slice(chunkStart, this.pos);
        out += this.parseEscape();
        chunkStart = this.pos;
        continue;
      }
      // Other control characters are technically invalid JSON, but lenient
      // acceptance costs nothing and matches what editors tolerate.
      this.pos++;
    }
  }

  /** Parses an escape sequence at `pos` (which points at the backslash). */
  private parseEscape(): string {
    const escStart = this.pos;
    const ch = this.text[this.pos + 1];
    this.pos += 2;
    switch (ch) {
      case '"':
        return '"';
      case '\\':
        return '\\';
      case '/':
        return '/';
      case 'b':
        return '\b';
      case 'f':
        return '\f';
      case 'n':
        return '\n';
      case 'r':
        return '\r';
      case 't':
        return '\t';
      case 'u': {
        const hex = this.text.slice(this.pos, this.pos + 4);
        if (!/^[0-9a-fA-F]{4}$/.test(hex)) {
          this.failAt(escStart, 'invalid \\u escape (expected 4 hex digits)');
        }
        this.pos += 4;
        // Surrogate pairs arrive as two \u escapes; concatenating the UTF-16
        // code units reproduces them exactly, as JSON.parse does.
        return String.fromCharCode(parseInt(hex, 16));
      }
      case undefined:
        return this.failAt(escStart, 'unterminated string');
      default:
        return this.failAt(escStart, `invalid escape sequence '\\${ch}'`);
    }
  }

  private parseNumber(): number {
    const match = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;
    match.lastIndex = this.pos;
    const m = match.exec(this.text);
    if (!m || m[0] === '-' || m[0] === '') {
      return this.fail(`invalid number`);
    }
    const next = this.text[this.pos + m[0].length];
    if (next !== undefined && /[0-9A-Za-z_.]/.test(next)) {
      // e.g. "01", "1.", "1.5.2", "0x10": reject rather than silently truncate.
      return this.fail(`invalid number '${this.text.slice(this.pos, this.pos + m[0].length + 1)}…'`);
    }
    this.pos += m[0].length;
    return Number(m[0]);
  }

  private parseLiteral<T>(word: string, value: T): T {
    if (this.text.startsWith(word, this.pos)) {
      const next = this.text[this.pos + word.length];
      if (next === undefined || !/[A-Za-z0-9_$]/.test(next)) {
        this.pos += word.length;
        return value;
      }
    }
    return this.fail(`expected a value but found ${this.describeHere()}`);
  }

  /** Skips whitespace and comments. */
  private skipTrivia(): void {
    const text = this.text;
    for (;;) {
      const ch = text[this.pos];
      if (ch === ' ' || ch === '\t' || ch === '\n' || ch === '\r' || ch === '\ufeff') {
        this.pos++;
      } else if (ch === '/' && text[this.pos + 1] === '/') {
        const nl = text.indexOf('\n', this.pos + 2);
        this.pos = nl === -1 ? text.length : nl + 1;
      } else if (ch === '/' && text[this.pos + 1] === '*') {
        const end = text.indexOf('*/', this.pos + 2);
        if (end === -1) {
          this.fail('unterminated /* comment');
        }
        this.pos = end + 2;
      } else {
        return;
      }
    }
  }

  private describeHere(): string {
    if (this.pos >= this.text.length) {
      return 'end of file';
    }
    const ch = this.text[this.pos];
    if (ch === '\n' || ch === '\r') {
      return 'end of line';
    }
    // A short excerpt is friendlier than one character, e.g. "'undefined'".
    const word = /^[A-Za-z_$][A-Za-z0-9_$]*/.exec(this.text.slice(this.pos, this.pos + 40));
    return word ? `'${word[0]}'` : `'${ch}'`;
  }

  private fail(reason: string): never {
    return this.failAt(this.pos, reason);
  }

  private failAt(offset: number, reason: string): never {
    const { line, column } = lineColumn(this.text, offset);
    throw new JsoncError(reason, line, column, offset);
  }
}

/** 1-based line/column of a 0-based offset; `\r\n`, `\n` and lone `\r` end lines. */
export function lineColumn(text: string, offset: number): { line: number; column: number } {
  let line = 1;
  let lineStart = 0;
  for (let i = 0; i < offset && i < text.length; i++) {
    const ch = text.charCodeAt(i);
    if (ch === 0x0a) {
      line++;
      lineStart = i + 1;
    } else if (ch === 0x0d) {
      if (text.charCodeAt(i + 1) !== 0x0a) {
        line++;
        lineStart = i + 1;
      }
    }
  }
  return { line, column: offset - lineStart + 1 };
}
