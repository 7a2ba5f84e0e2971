/**
 * A valid SQLite database of any size that takes almost no disk: a sparse file whose
 * pages are a table (its root and leaves at the front, its last leaf at the very end) and
 * a freelist for everything between. Native SQLite (`integrity_check`) accepts it, and
 * reading it touches the first pages, one freelist trunk page every 1 GiB, and the last
 * page — so a checker has to address offsets as far as the file goes.
 *
 * Built from a real database made by native SQLite (page 1 and the table's leaf are
 * SQLite's own bytes); only the layout is ours, per https://www.sqlite.org/fileformat2.html:
 * §1.3 header fields (28: database size in pages, 32: first freelist trunk page, 36:
 * freelist page count, 92: version-valid-for), §1.5 freelist trunk pages (next trunk,
 * leaf count, leaf page numbers; at most usable/4 − 2 leaves each; never the lock-byte
 * page, which holds the byte at 1 GiB), §1.6 b-tree page
 * header (an interior table page, type 5, has its right-most child pointer at offset 8).
 */
import * as fs from 'fs';
import { openNative } from './sqlite';

export const SPARSE_PAGE_SIZE = 65536;
const LEAVES_PER_TRUNK = SPARSE_PAGE_SIZE / 4 - 2;
/** §1.3.3 / §1.5: the page holding byte 2^30 is never used, and never on the freelist. */
const LOCK_BYTE_PAGE = 2 ** 30 / SPARSE_PAGE_SIZE + 1;

/** Rows of the table `t(x)` in every sparse database: enough for a root page over several leaves. */
export const SPARSE_ROWS = ['first', 'second', 'third', 'fourth', 'fifth', 'sixth'].map((w) => w.padEnd(20000, '.'));

/** Writes a sparse database of `pages` pages of 64 KiB at `path`; returns its size in bytes. */
export function makeSparseDatabase(path: string, pages: number): number {
  const seed = `${path}.seed`;
  fs.rmSync(seed, { force: true });
  const db = openNative(seed);
  db.exec(`PRAGMA page_size = ${SPARSE_PAGE_SIZE}; PRAGMA journal_mode = DELETE; CREATE TABLE t(x TEXT);`);
  const ins = db.prepare('INSERT INTO t VALUES (?)');
  for (const r of SPARSE_ROWS) ins.run(r);
  db.close();
  const seedBytes = fs.readFileSync(seed);
  fs.rmSync(seed, { force: true });
  const page = (n: number) => seedBytes.subarray((n - 1) * SPARSE_PAGE_SIZE, n * SPARSE_PAGE_SIZE);
  const seedPages = seedBytes.length / SPARSE_PAGE_SIZE;
  // The table's root (page 2) is an interior page whose right-most child is the seed's last page.
  const root = Buffer.from(page(2));
  if (root[0] !== 0x05 || root.readUInt32BE(8) !== seedPages) throw new Error('unexpected seed layout');
  if (pages < seedPages + 2) throw new Error(`a sparse database needs at least ${seedPages + 2} pages`);
  if (pages === LOCK_BYTE_PAGE) throw new Error(`page ${LOCK_BYTE_PAGE} holds the lock byte: it cannot be the last page`);

  // The right-most leaf moves to the last page; the pages from its old place on are free.
  const firstFree = seedPages;
  const last = pages - 1;
  const page1 = Buffer.from(page(1));
  page1.writeUInt32BE(pages, 28);
  page1.writeUInt32BE(firstFree, 32);
  page1.writeUInt32BE(last - firstFree + 1 - (firstFree <= LOCK_BYTE_PAGE && LOCK_BYTE_PAGE <= last ? 1 : 0), 36);
  page1.writeUInt32BE(page1.readUInt32BE(24), 92); // the in-header size is valid
  root.writeUInt32BE(pages, 8);

  fs.rmSync(path, { force: true });
  const fd = fs.openSync(path, 'wx', 0o600);
  try {
    const put = (data: Uint8Array, pgno: number) => fs.writeSync(fd, data, 0, data.length, (pgno - 1) * SPARSE_PAGE_SIZE);
    put(page1, 1);
    put(root, 2);
    for (let n = 3; n < seedPages; n++) put(page(n), n);
    // Freelist: a trunk, then the leaves it lists, repeated — never the lock-byte page.
    const nextFree = (pg: number) => (pg + 1 === LOCK_BYTE_PAGE ? pg + 2 : pg + 1);
    for (let pg = firstFree === LOCK_BYTE_PAGE ? firstFree + 1 : firstFree; pg <= last; ) {
      const leaves: number[] = [];
      let p = nextFree(pg);
      while (leaves.length < LEAVES_PER_TRUNK && p <= last) {
        leaves.push(p);
        p = nextFree(p);
      }
      const trunk = Buffer.alloc(8 + 4 * leaves.length);
      trunk.writeUInt32BE(p <= last ? p : 0, 0);
      trunk.writeUInt32BE(leaves.length, 4);
      leaves.forEach((l, i) => trunk.writeUInt32BE(l, 8 + 4 * i));
      put(trunk, pg);
      pg = p;
    }
    put(page(seedPages), pages);
    fs.ftruncateSync(fd, pages * SPARSE_PAGE_SIZE);
  } finally {
    fs.closeSync(fd);
  }
  return pages * SPARSE_PAGE_SIZE;
}
