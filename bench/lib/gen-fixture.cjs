// Child process: makes one ai-memory-shaped fixture with test/support's generator
// (better-sqlite3), then prints a JSON line describing it.
//   node bench/lib/gen-fixture.cjs <out/test/support/aiMemoryDb.js> <db path> <json options>
const fs = require('node:fs');
const [, , modulePath, dbPath, optsJson] = process.argv;
const { createAiMemoryDb } = require(modulePath);
const opts = JSON.parse(optsJson);
const t0 = Date.now();
const r = createAiMemoryDb(dbPath, { ...opts, overwrite: true });
process.stdout.write(
  `${JSON.stringify({
    memories: r.memories,
    walCommits: r.tail.length + r.tailRecalls,
    stores: r.tail.length,
    recalls: r.tailRecalls,
    accessCountTotal: r.accessCountTotal,
    pageSize: r.pageSize,
    mainBytes: fs.statSync(dbPath).size,
    walBytes: r.walBytes,
    schemaVersion: r.schemaVersion,
    generatedMs: Date.now() - t0,
  })}\n`,
);
