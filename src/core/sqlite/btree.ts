/**
 * Just enough of SQLite's b-tree format (https://www.sqlite.org/fileformat2.html §1.6, §2.1)
 * to find the pages that hold a database's schema — the `sqlite_schema` table rooted at
 * page 1 — and the pages of one named table, without reading anything else. Restore uses it
 * to tell whether the database it would replace is ai-memory's at any size (schemaGuard.ts):
 * those pages are read through the consistent reader (image.ts) and handed to sql.js, which
 * then answers the questions itself; this module never interprets a row beyond the schema's
 * names and root pages.
 *
 * Every page number, cell offset and payload length is checked: a damaged or hostile file
 * makes it throw (the caller then knows nothing), never loop or read without bound.
 */

/** Reads one page (1-based) of the consistent image; the bytes must stay valid. */
export type PageRead = (pgno: number) => Promise<Uint8Array>;

export class BtreeError extends Error {
  override readonly name = 'BtreeError';
}

export interface BtreeLimits {
  /** Pages in the image: a child or overflow pointer beyond it is damage. */
  maxPage: number;
  /** Bytes per page available to b-tree content (page size − reserved bytes, header byte 20). */
  usable: number;
  /** At most this many pages are visited (then BtreeError). */
  maxPages: number;
}

function u16(b: Uint8Array, at: number): number {
  if (at + 2 > b.length) throw new BtreeError(`offset ${at} is past the page`);
  return (b[at] << 8) | b[at + 1];
}

function u32(b: Uint8Array, at: number): number {
  if (at + 4 > b.length) throw new BtreeError(`offset ${at} is past the page`);
  return ((b[at] << 24) >>> 0) + (b[at + 1] << 16) + (b[at + 2] << 8) + b[at + 3];
}

/** SQLite varint at `at`: [value, bytes]. Values past 2^53 lose precision (we never need them). */
function varint(b: Uint8Array, at: number): [number, number] {
  let v = 0;
  for (let i = 0; i < 9; i++) {
    if (at + i >= b.length) throw new BtreeError(`varint at ${at} runs past the page`);
    const c = b[at + i];
    if (i === 8) return [v * 256 + c, 9];
    v = v * 128 + (c & 0x7f);
    if (c < 0x80) return [v, i + 1];
  }
  throw new BtreeError('unreachable');
}

/**
 * Visits every page of the b-tree rooted at `root` (interior, leaf and overflow pages) and
 * calls `onRow` with the whole payload of every leaf cell of a table b-tree. Returns the
 * pages visited.
 */
export async function walkBtree(read: PageRead, root: number, limits: BtreeLimits, onRow?: (payload: Uint8Array) => void): Promise<Set<number>> {
  const seen = new Set<number>();
  const visit = (pgno: number): void => {
    if (!Number.isInteger(pgno) || pgno < 1 || pgno > limits.maxPage) throw new BtreeError(`page ${pgno} is outside the database (${limits.maxPage} pages)`);
    if (seen.has(pgno)) throw new BtreeError(`page ${pgno} is reached twice`);
    seen.add(pgno);
    if (seen.size > limits.maxPages) throw new BtreeError(`more than ${limits.maxPages} pages`);
  };
  const U = limits.usable;
  const stack = [root];
  while (stack.length) {
    const pgno = stack.pop() as number;
    visit(pgno);
    const page = await read(pgno);
    const h = pgno === 1 ? 100 : 0;
    const type = page[h];
    const interior = type === 2 || type === 5;
    if (!interior && type !== 10 && type !== 13) throw new BtreeError(`page ${pgno} is not a b-tree page (type ${type})`);
    const cellsAt = h + (interior ? 12 : 8);
    const cells = u16(page, h + 3);
    if (interior) stack.push(u32(page, h + 8));
    for (let i = 0; i < cells; i++) {
      let p = u16(page, cellsAt + 2 * i);
      if (p < cellsAt || p >= U) throw new BtreeError(`cell ${i} of page ${pgno} is outside the page`);
      if (interior) {
        stack.push(u32(page, p));
        p += 4;
        if (type === 5) continue; // a table interior cell holds only a rowid
      }
      const [size, n] = varint(page, p);
      p += n;
      if (type === 13) p += varint(page, p)[1]; // the rowid
      // §1.6: how much of the payload is on the page, the rest on a chain of overflow pages.
      const table = type === 13;
      const X = table ? U - 35 : Math.floor(((U - 12) * 64) / 255) - 23;
      const M = Math.floor(((U - 12) * 32) / 255) - 23;
      const K = M + ((size - M) % (U - 4));
      const local = size <= X ? size : K <= X ? K : M;
      if (p + local > U) throw new BtreeError(`cell ${i} of page ${pgno} runs past the page`);
      const want = table && onRow !== undefined;
      if (want && size > 64 << 20) throw new BtreeError(`a row of ${size} bytes in the schema`);
      const payload = want ? new Uint8Array(size) : undefined;
      payload?.set(page.subarray(p, p + local));
      let done = local;
      let next = size > local ? u32(page, p + local) : 0;
      while (done < size) {
        visit(next);
        const ov = await read(next);
        const take = Math.min(U - 4, size - done);
        payload?.set(ov.subarray(4, 4 + take), done);
        done += take;
        next = u32(ov, 0);
      }
      if (payload) onRow?.(payload);
    }
  }
  return seen;
}

/** A record's values (§2.1); text by the database's encoding (header byte 56: 1 UTF-8, 2 UTF-16le, 3 UTF-16be). */
export function decodeRecord(rec: Uint8Array, encoding: number): (number | string | Uint8Array | null)[] {
  const [headerSize, n0] = varint(rec, 0);
  if (headerSize > rec.length) throw new BtreeError('a record header past its payload');
  const types: number[] = [];
  for (let p = n0; p < headerSize; ) {
    const [t, n] = varint(rec, p);
    types.push(t);
    p += n;
  }
  const text = new TextDecoder(encoding === 2 ? 'utf-16le' : encoding === 3 ? 'utf-16be' : 'utf-8');
  const out: (number | string | Uint8Array | null)[] = [];
  let at = headerSize;
  const INT_BYTES = [0, 1, 2, 3, 4, 6, 8];
  for (const t of types) {
    if (t === 0) out.push(null);
    else if (t >= 1 && t <= 6) {
      const len = INT_BYTES[t];
      if (at + len > rec.length) throw new BtreeError('a record value past its payload');
      // big-endian two's complement of `len` bytes
      let u = 0;
      for (let i = 0; i < len; i++) u = u * 256 + rec[at + i];
      const v = rec[at] & 0x80 ? u - 2 ** (8 * len) : u;
      out.push(v);
      at += len;
    } else if (t === 7) {
      if (at + 8 > rec.length) throw new BtreeError('a record value past its payload');
      out.push(new DataView(rec.buffer, rec.byteOffset + at, 8).getFloat64(0, false));
      at += 8;
    } else if (t === 8 || t === 9) out.push(t - 8);
    else if (t >= 12) {
      const len = Math.floor((t - (t % 2 ? 13 : 12)) / 2);
      if (at + len > rec.length) throw new BtreeError('a record value past its payload');
      const bytes = rec.subarray(at, at + len);
      out.push(t % 2 ? text.decode(bytes) : bytes);
      at += len;
    } else throw new BtreeError(`reserved serial type ${t}`);
  }
  return out;
}

export interface SchemaRow {
  type: string;
  name: string;
  rootpage: number;
}

/**
 * The pages holding the schema (page 1's b-tree) and, for each table named in `tables`
 * that exists, the pages of that table (`unread`: those too large or damaged to read).
 * Reads nothing else. Throws BtreeError when the schema itself is damaged or larger than
 * `limits.maxPages` pages.
 */
export async function schemaPages(read: PageRead, limits: Omit<BtreeLimits, 'usable'>, tables: string[]): Promise<{ rows: SchemaRow[]; unread: string[] }> {
  const page1 = await read(1);
  const pageSize = page1.length;
  const usable = pageSize - page1[20];
  if (usable < 480) throw new BtreeError(`usable page size ${usable}`);
  const encoding = u32(page1, 56) || 1;
  const rows: SchemaRow[] = [];
  const l = { ...limits, usable };
  await walkBtree(read, 1, l, (payload) => {
    const [type, name, , rootpage] = decodeRecord(payload, encoding);
    if (typeof type === 'string' && typeof name === 'string' && typeof rootpage === 'number') rows.push({ type, name, rootpage });
  });
  // A table too large or damaged is left unread (its pages so far stay read; the caller asks it nothing).
  const unread: string[] = [];
  for (const t of tables) {
    const row = rows.find((r) => r.type === 'table' && r.name.toLowerCase() === t.toLowerCase() && r.rootpage > 0);
    if (row) await walkBtree(read, row.rootpage, l).catch((e: unknown) => {
      if (!(e instanceof BtreeError)) throw e;
      unread.push(t);
    });
  }
  return { rows, unread };
}
