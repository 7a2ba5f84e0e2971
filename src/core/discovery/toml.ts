/**
 * A small, dependency-free TOML reader.
 *
 * We only need to read two files — `~/.config/ai-memory/config.toml`
 * (`db = "…"`) and `~/.codex/config.toml` (`[mcp_servers.NAME]`) — but both
 * are user-edited and may contain unrelated sections we must step over
 * without choking, so this implements most of TOML 1.0 rather than a
 * line-by-line `key = "value"` scan:
 *
 * - comments, `[table]`, `[a.b]`, `[a."quoted key"]`, `[[array.of.tables]]`
 * - bare / quoted / dotted keys
 * - basic strings (all escapes), literal strings, and both multi-line forms
 * - integers (decimal, 0x, 0o, 0b, `_` separators), floats (incl. inf/nan),
 *   booleans
 * - dates and times: accepted and returned as their original text, because
 *   nothing we read needs them as dates
 * - arrays (multi-line, comments, trailing comma) and inline tables (also
 *   leniently across lines with a trailing comma, as TOML 1.1 allows)
 *
 * Anything else raises {@link TomlError} with a 1-based line and column.
 *
 * This module must not import `vscode` (shared by CLI, extension and tests).
 */

import { lineColumn } from './jsonc';

export type TomlValue = string | number | bigint | boolean | TomlValue[] | TomlTable;
export interface TomlTable {
  [key: string]: TomlValue;
}

export class TomlError extends Error {
  constructor(
    /** What went wrong, without the position. */
    public readonly reason: string,
    public readonly line: number,
    public readonly column: number,
  ) {
    super(`Invalid TOML at line ${line}, column ${column}: ${reason}`);
    this.name = 'TomlError';
  }
}

/** Parse a TOML document into plain objects. Throws {@link TomlError}. */
export function parseToml(text: string): TomlTable {
  return new TomlParser(text.charCodeAt(0) === 0xfeff ? text.slice(1) : text).parseDocument();
}

/** Type guard for a TOML table (as opposed to an array or scalar). */
export function isTomlTable(value: unknown): value is TomlTable {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

const BARE_KEY = /[A-Za-z0-9_-]/;

function hasOwn(table: TomlTable, key: string): boolean {
  return Object.prototype.hasOwnProperty.call(table, key);
}

/** Own-property write that cannot hit the `__proto__` setter. */
function setOwn(table: TomlTable, key: string, value: TomlValue): void {
  Object.defineProperty(table, key, { value, enumerable: true, writable: true, configurable: true });
}

class TomlParser {
  private pos = 0;
  private readonly root: TomlTable = {};
  /** Tables opened by a `[header]` (may not be opened again). */
  private readonly explicitTables = new WeakSet<TomlTable>();
  /** Tables created by dotted keys (`a.b = 1`): no header may open them later. */
  private readonly dottedTables = new WeakSet<TomlTable>();
  /** Tables written as `{ … }` (immutable once closed). */
  private readonly inlineTables = new WeakSet<TomlTable>();
  /** Arrays created by `[[header]]` (only those may be appended to). */
  private readonly tableArrays = new WeakSet<TomlValue[]>();

  constructor(private readonly text: string) {}

  parseDocument(): TomlTable {
    let current = this.root;
    while (this.pos < this.text.length) {
      this.skipSpaces();
      if (this.atLineEnd()) {
        this.consumeLineEnd();
        continue;
      }
      if (this.peek() === '[') {
        current = this.parseHeader();
      } else {
        this.parseKeyValue(current);
      }
      this.skipSpaces();
      if (!this.atLineEnd()) {
        this.fail(`expected end of line but found ${this.describeHere()}`);
      }
      this.consumeLineEnd();
    }
    return this.root;
  }

  // ---------------------------------------------------------------- headers

  private parseHeader(): TomlTable {
    const headerStart = this.pos;
    const isArray = this.text.startsWith('[[', this.pos);
    this.pos += isArray ? 2 : 1;
    this.skipSpaces();
    const keys = this.parseKey();
    this.skipSpaces();
    const close = isArray ? ']]' : ']';
    if (!this.text.startsWith(close, this.pos)) {
      this.fail(`expected '${close}' to close the table header but found ${this.describeHere()}`);
    }
    this.pos += close.length;

    let table = this.root;
    for (let i = 0; i < keys.length - 1; i++) {
      table = this.descendForHeader(table, keys.slice(0, i + 1), headerStart);
    }
    const last = keys[keys.length - 1];
    const name = keys.map(formatKeyPart).join('.');
    const existing = hasOwn(table, last) ? table[last] : undefined;
    if (isArray) {
      const entry: TomlTable = {};
      this.explicitTables.add(entry);
      if (existing === undefined) {
        const arr: TomlValue[] = [entry];
        this.tableArrays.add(arr);
        setOwn(table, last, arr);
      } else if (Array.isArray(existing) && this.tableArrays.has(existing)) {
        existing.push(entry);
      } else {
        this.failAt(headerStart, `cannot define [[${name}]]: '${name}' is already defined as a different type`);
      }
      return entry;
    }
    if (existing === undefined) {
      const created: TomlTable = {};
      this.explicitTables.add(created);
      setOwn(table, last, created);
      return created;
    }
    if (
      isTomlTable(existing) &&
      !this.explicitTables.has(existing) &&
      !this.inlineTables.has(existing) &&
      !this.dottedTables.has(existing)
    ) {
      // Created implicitly by an earlier [a.b.c] — defining [a.b] now is fine.
      this.explicitTables.add(existing);
      return existing;
    }
    return this.failAt(headerStart, `table [${name}] is defined more than once`);
  }

  /** Steps into (or implicitly creates) an intermediate table of a header. */
  private descendForHeader(table: TomlTable, path: string[], at: number): TomlTable {
    const key = path[path.length - 1];
    if (!hasOwn(table, key)) {
      const created: TomlTable = {};
      setOwn(table, key, created);
      return created;
    }
    const value = table[key];
    if (isTomlTable(value) && !this.inlineTables.has(value)) {
      return value;
    }
    if (Array.isArray(value) && this.tableArrays.has(value)) {
      // [[a]] then [a.b]: b belongs to the most recent element of a.
      return value[value.length - 1] as TomlTable;
    }
    return this.failAt(at, `'${path.map(formatKeyPart).join('.')}' is already defined and is not a table`);
  }

  // -------------------------------------------------------------- key/value

  private parseKeyValue(into: TomlTable): void {
    const start = this.pos;
    const keys = this.parseKey();
    this.skipSpaces();
    if (this.peek() !== '=') {
      this.fail(`expected '=' after key '${keys.map(formatKeyPart).join('.')}' but found ${this.describeHere()}`);
    }
    this.pos++;
    this.skipSpaces();
    if (this.atLineEnd()) {
      this.fail(`missing value for key '${keys.map(formatKeyPart).join('.')}'`);
    }
    const value = this.parseValue();

    let table = into;
    for (let i = 0; i < keys.length - 1; i++) {
      const key = keys[i];
      if (!hasOwn(table, key)) {
        const created: TomlTable = {};
        this.dottedTables.add(created);
        setOwn(table, key, created);
        table = created;
        continue;
      }
      const next = table[key];
      // Dotted keys may only extend tables that dotted keys created.
      if (!isTomlTable(next) || !this.dottedTables.has(next)) {
        this.failAt(start, `'${keys.slice(0, i + 1).map(formatKeyPart).join('.')}' is already defined and is not a table`);
      }
      table = next;
    }
    const last = keys[keys.length - 1];
    if (hasOwn(table, last)) {
      this.failAt(start, `duplicate key '${keys.map(formatKeyPart).join('.')}'`);
    }
    setOwn(table, last, value);
  }

  /** Parses a (possibly dotted) key into its parts. */
  private parseKey(): string[] {
    const parts: string[] = [this.parseSimpleKey()];
    for (;;) {
      const save = this.pos;
      this.skipSpaces();
      if (this.peek() !== '.') {
        this.pos = save;
        return parts;
      }
      this.pos++;
      this.skipSpaces();
      parts.push(this.parseSimpleKey());
    }
  }

  private parseSimpleKey(): string {
    const ch = this.peek();
    if (ch === '"') {
      if (this.text.startsWith('"""', this.pos)) {
        this.fail('multi-line strings cannot be used as keys');
      }
      return this.parseBasicString();
    }
    if (ch === "'") {
      if (this.text.startsWith("'''", this.pos)) {
        this.fail('multi-line strings cannot be used as keys');
      }
      return this.parseLiteralString();
    }
    const start = this.pos;
    while (this.pos < this.text.length && BARE_KEY.test(this.text[this.pos])) {
      this.pos++;
    }
    if (this.pos === start) {
      this.fail(`expected a key but found ${this.describeHere()}`);
    }
    return this.text.slice(start, this.pos);
  }

  // ----------------------------------------------------------------- values

  private parseValue(): TomlValue {
    const ch = this.peek();
    if (ch === '"') {
      return this.text.startsWith('"""', this.pos) ? this.parseMultilineBasicString() : this.parseBasicString();
    }
    if (ch === "'") {
      return this.text.startsWith("'''", this.pos) ? this.parseMultilineLiteralString() : this.parseLiteralString();
    }
    if (ch === '[') {
      return this.parseArray();
    }
    if (ch === '{') {
      return this.parseInlineTable();
    }
    return this.parseScalarToken();
  }

  private parseArray(): TomlValue[] {
    this.pos++; // '['
    const result: TomlValue[] = [];
    for (;;) {
      this.skipWhitespaceCommentsAndNewlines();
      if (this.peek() === ']') {
        this.pos++;
        return result;
      }
      if (this.pos >= this.text.length) {
        this.fail("unterminated array (expected ']')");
      }
      result.push(this.parseValue());
      this.skipWhitespaceCommentsAndNewlines();
      const sep = this.peek();
      if (sep === ',') {
        this.pos++;
        continue;
      }
      if (sep === ']') {
        this.pos++;
        return result;
      }
      if (this.pos >= this.text.length) {
        this.fail("unterminated array (expected ']')");
      }
      this.fail(`expected ',' or ']' in array but found ${this.describeHere()}`);
    }
  }

  private parseInlineTable(): TomlTable {
    this.pos++; // '{'
    const table: TomlTable = {};
    for (;;) {
      this.skipWhitespaceCommentsAndNewlines();
      if (this.peek() === '}') {
        this.pos++;
        break;
      }
      if (this.pos >= this.text.length) {
        this.fail("unterminated inline table (expected '}')");
      }
      this.parseKeyValue(table);
      this.skipWhitespaceCommentsAndNewlines();
      const sep = this.peek();
      if (sep === ',') {
        this.pos++;
        continue;
      }
      if (sep === '}') {
        this.pos++;
        break;
      }
      if (this.pos >= this.text.length) {
        this.fail("unterminated inline table (expected '}')");
      }
      this.fail(`expected ',' or '}' in inline table but found ${this.describeHere()}`);
    }
    this.markInline(table);
    return table;
  }

  /** Inline tables (and tables nested in them via dotted keys) are sealed. */
  private markInline(table: TomlTable): void {
    this.inlineTables.add(table);
    for (const value of Object.values(table)) {
      if (isTomlTable(value) && !this.inlineTables.has(value)) {
        this.markInline(value);
      }
    }
  }

  /** Numbers, booleans, dates/times and special floats. */
  private parseScalarToken(): TomlValue {
    const start = this.pos;
    const tokenRe = /[0-9A-Za-z_+\-.:]+/y;
    tokenRe.lastIndex = this.pos;
    const m = tokenRe.exec(this.text);
    if (!m) {
      return this.fail(`expected a value but found ${this.describeHere()}`);
    }
    let token = m[0];
    // A date and a time may be separated by a single space: 1979-05-27 07:32:00
    if (/^\d{4}-\d{2}-\d{2}$/.test(token) && /^ \d{2}:/.test(this.text.slice(start + token.length, start + token.length + 4))) {
      tokenRe.lastIndex = start + token.length + 1;
      const rest = tokenRe.exec(this.text);
      if (rest) {
        token = `${token} ${rest[0]}`;
      }
    }
    this.pos = start + token.length;

    if (token === 'true') return true;
    if (token === 'false') return false;
    if (/^[+-]?inf$/.test(token)) return token.startsWith('-') ? -Infinity : Infinity;
    if (/^[+-]?nan$/.test(token)) return NaN;

    const date = '\\d{4}-\\d{2}-\\d{2}';
    const time = '\\d{2}:\\d{2}(?::\\d{2}(?:\\.\\d+)?)?';
    const offset = '(?:[Zz]|[+-]\\d{2}:\\d{2})';
    if (new RegExp(`^(?:${date}(?:[Tt ]${time}${offset}?)?|${time})$`).test(token)) {
      // Dates are kept as text: nothing we read needs them as Date objects.
      return token;
    }

    const prefixed = /^0([xob])([0-9A-Fa-f_]+)$/.exec(token);
    if (prefixed) {
      const digits = { x: /^[0-9A-Fa-f]+(?:_[0-9A-Fa-f]+)*$/, o: /^[0-7]+(?:_[0-7]+)*$/, b: /^[01]+(?:_[01]+)*$/ }[
        prefixed[1] as 'x' | 'o' | 'b'
      ];
      if (!digits.test(prefixed[2])) {
        return this.failAt(start, `invalid integer '${token}'`);
      }
      return toInteger(BigInt(`0${prefixed[1]}${prefixed[2].replace(/_/g, '')}`));
    }
    const dec = '(?:0|[1-9](?:_?\\d)*)';
    if (new RegExp(`^[+-]?${dec}$`).test(token)) {
      return toInteger(BigInt(token.replace(/_/g, '').replace(/^\+/, '')));
    }
    const digits = '\\d(?:_?\\d)*';
    if (new RegExp(`^[+-]?${dec}(?:\\.${digits})?(?:[eE][+-]?${digits})?$`).test(token)) {
      return Number(token.replace(/_/g, ''));
    }
    if (/^[A-Za-z]/.test(token)) {
      // Most likely a forgotten pair of quotes; say so.
      return this.failAt(start, `invalid value '${token}' (strings must be quoted)`);
    }
    return this.failAt(start, `invalid value '${token}'`);
  }

  // ---------------------------------------------------------------- strings

  private parseBasicString(): string {
    const start = this.pos;
    this.pos++; // '"'
    let out = '';
    for (;;) {
      const ch = this.text[this.pos];
      if (ch === undefined || ch === '\n' || ch === '\r') {
        this.failAt(start, 'unterminated string');
      }
      if (ch === '"') {
        this.pos++;
        return out;
      }
      if (ch === '\\') {
        out += this.parseEscape();
        continue;
      }
      out += ch;
      this.pos++;
    }
  }

  private parseMultilineBasicString(): string {
    const start = this.pos;
    this.pos += 3;
    this.skipOneNewline(); // a newline right after the opening """ is trimmed
    let out = '';
    for (;;) {
      if (this.pos >= this.text.length) {
        this.failAt(start, 'unterminated multi-line string (expected """)');
      }
      if (this.text.startsWith('"""', this.pos)) {
        const quotes = this.countRun('"');
        if (quotes > 5) {
          this.fail('too many quotes at the end of a multi-line string');
        }
        // Up to two quotes may sit right before the closing delimiter.
        out += '"'.repeat(quotes - 3);
        this.pos += quotes;
        return out;
      }
      const ch = this.text[this.pos];
      if (ch === '\\') {
        // "Line-ending backslash": trims the newline and following whitespace.
        const m = /\\[ \t]*\r?\n/y;
        m.lastIndex = this.pos;
        if (m.test(this.text)) {
          this.pos = m.lastIndex;
          while (/[ \t\r\n]/.test(this.text[this.pos] ?? '')) {
            this.pos++;
          }
          continue;
        }
        out += this.parseEscape();
        continue;
      }
      out += ch;
      this.pos++;
    }
  }

  private parseLiteralString(): string {
    const start = this.pos;
    this.pos++; // "'"
    const end = this.text.indexOf("'", this.pos);
    const nl = this.text.slice(this.pos, end === -1 ? undefined : end).search(/[\r\n]/);
    if (end === -1 || nl !== -1) {
      this.failAt(start, 'unterminated literal string');
    }
    const value = this.text.slice(this.pos, end);
    this.pos = end + 1;
    return value;
  }

  private parseMultilineLiteralString(): string {
    const start = this.pos;
    this.pos += 3;
    this.skipOneNewline(); // a newline right after the opening ''' is trimmed
    const contentStart = this.pos;
    const end = this.text.indexOf("'''", contentStart);
    if (end === -1) {
      this.failAt(start, "unterminated multi-line literal string (expected ''')");
    }
    this.pos = end;
    const quotes = this.countRun("'");
    if (quotes > 5) {
      this.fail('too many quotes at the end of a multi-line literal string');
    }
    this.pos += quotes;
    // Up to two quotes may sit right before the closing delimiter.
    return this.text.slice(contentStart, end) + "'".repeat(quotes - 3);
  }

  private parseEscape(): string {
    const start = this.pos;
    const ch = this.text[this.pos + 1];
    this.pos += 2;
    switch (ch) {
      case 'b':
        return '\b';
      case 't':
        return '\t';
      case 'n':
        return '\n';
      case 'f':
        return '\f';
      case 'r':
        return '\r';
      case 'e': // TOML 1.1
        return '\x1b';
      case '"':
        return '"';
      case '\\':
        return '\\';
      case 'x': // TOML 1.1
        return this.parseHexEscape(start, 2);
      case 'u':
        return this.parseHexEscape(start, 4);
      case 'U':
        return this.parseHexEscape(start, 8);
      default:
        return this.failAt(start, ch === undefined ? 'unterminated string' : `invalid escape sequence '\\${ch}'`);
    }
  }

  private parseHexEscape(start: number, length: number): string {
    const hex = this.text.slice(this.pos, this.pos + length);
    if (!new RegExp(`^[0-9A-Fa-f]{${length}}$`).test(hex)) {
      this.failAt(start, `invalid escape: expected ${length} hex digits`);
    }
    const code = parseInt(hex, 16);
    if (code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff)) {
      this.failAt(start, `invalid escape: U+${hex.toUpperCase()} is not a Unicode scalar value`);
    }
    this.pos += length;
    return String.fromCodePoint(code);
  }

  // ---------------------------------------------------------------- helpers

  private peek(): string | undefined {
    return this.text[this.pos];
  }

  private countRun(ch: string): number {
    let n = 0;
    while (this.text[this.pos + n] === ch) {
      n++;
    }
    return n;
  }

  private skipSpaces(): void {
    while (this.text[this.pos] === ' ' || this.text[this.pos] === '\t') {
      this.pos++;
    }
  }

  private skipOneNewline(): void {
    if (this.text[this.pos] === '\n') {
      this.pos++;
    } else if (this.text.startsWith('\r\n', this.pos)) {
      this.pos += 2;
    }
  }

  /** True at EOF, a newline, or a comment (which runs to the newline). */
  private atLineEnd(): boolean {
    const ch = this.text[this.pos];
    return ch === undefined || ch === '\n' || ch === '#' || this.text.startsWith('\r\n', this.pos);
  }

  /** Consumes an optional comment and the newline after it. */
  private consumeLineEnd(): void {
    if (this.text[this.pos] === '#') {
      while (this.pos < this.text.length && this.text[this.pos] !== '\n' && !this.text.startsWith('\r\n', this.pos)) {
        this.pos++;
      }
    }
    this.skipOneNewline();
  }

  private skipWhitespaceCommentsAndNewlines(): void {
    for (;;) {
      this.skipSpaces();
      const ch = this.text[this.pos];
      if (ch === '#' || ch === '\n' || this.text.startsWith('\r\n', this.pos)) {
        this.consumeLineEnd();
      } else {
        return;
      }
    }
  }

  private describeHere(): string {
    const ch = this.text[this.pos];
    if (ch === undefined) return 'end of file';
    if (ch === '\n' || ch === '\r') return 'end of line';
    return `'${ch}'`;
  }

  private fail(reason: string): never {
    return this.failAt(this.pos, reason);
  }

  private failAt(offset: number, reason: string): never {
    const { line, column } = lineColumn(this.text, offset);
    throw new TomlError(reason, line, column);
  }
}

/** Integers that fit a double exactly become numbers; larger ones stay exact as bigint. */
function toInteger(value: bigint): number | bigint {
  return value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : value;
}

function formatKeyPart(key: string): string {
  return /^[A-Za-z0-9_-]+$/.test(key) ? key : JSON.stringify(key);
}
