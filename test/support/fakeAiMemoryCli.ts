/**
 * A stand-in for ai-memory's own CLI in the extension tests, where the Rust binary is not
 * installed: `--version`, and `--db PATH import [--on-conflict …]` reading the export JSON
 * on stdin and importing it with native SQLite by the documented semantics (aiMemoryOps.ts
 * `importDocument`: upsert on (title, namespace), links when both ends exist).
 * Run as `node out/test/support/fakeAiMemoryCli.js …`.
 */
import { openLikeServer } from './aiMemoryDb';
import { importDocument, type ImportDocument } from './aiMemoryOps';

function main(argv: string[]): number {
  if (argv.includes('--version')) {
    process.stdout.write('ai-memory 0.7.0 (test stand-in)\n');
    return 0;
  }
  const i = argv.indexOf('--db');
  const db = i >= 0 ? argv[i + 1] : undefined;
  if (!db || !argv.includes('import')) {
    process.stderr.write('usage: ai-memory --db PATH import < FILE\n');
    return 2;
  }
  const chunks: Buffer[] = [];
  process.stdin.on('data', (c: Buffer) => chunks.push(c));
  process.stdin.on('end', () => {
    const doc = JSON.parse(Buffer.concat(chunks).toString('utf8')) as ImportDocument;
    const conn = openLikeServer(db);
    try {
      const r = importDocument(conn, doc);
      process.stdout.write(`imported ${r.memories} memories, ${r.links} links\n`);
    } finally {
      conn.close();
    }
  });
  return -1;
}

const code = main(process.argv.slice(2));
if (code >= 0) process.exitCode = code;
