// Child process: one hour of an ai-memory server's writes on a working copy of a fixture,
// through better-sqlite3 in WAL mode like the server (autocheckpoint at SQLite's default):
// `stores` new memories (FTS5 insert trigger, 8 indexes) and `recalls` touches of older
// memories (access_count, last_accessed_at; the FTS5 update trigger re-indexes them).
// With `merge`, FTS5 merges its segments ('merge' command), the hour FACTS.md measured at
// 13 % of pages changed.
//   node bench/lib/hourly-change.cjs <out/test/support/aiMemoryDb.js> <db> <json {hour, stores, recalls, merge, seed}>
const [, , modulePath, dbPath, optsJson] = process.argv;
const { generateMemory, openLikeServer } = require(modulePath);
const o = JSON.parse(optsJson);
const db = openLikeServer(dbPath);
const insert = db.prepare(`INSERT INTO memories (
  id, tier, namespace, title, content, tags, priority, confidence, source, access_count,
  created_at, updated_at, last_accessed_at, expires_at, metadata, embedding, embedding_dim
) VALUES (
  @id, @tier, @namespace, @title, @content, @tags, @priority, @confidence, @source, @access_count,
  @created_at, @updated_at, @last_accessed_at, @expires_at, @metadata, @embedding, @embedding_dim
)`);
const maxRow = db.prepare('SELECT max(rowid) FROM memories').pluck().get();
const pick = db.prepare('SELECT id FROM memories WHERE rowid >= ? ORDER BY rowid LIMIT 1').pluck();
const touch = db.prepare('UPDATE memories SET access_count = access_count + 1, last_accessed_at = ? WHERE id = ?');
let x = (o.seed ^ (o.hour * 2654435761)) >>> 0;
const rand = () => ((x = (Math.imul(x, 1664525) + 1013904223) >>> 0) / 2 ** 32);
const when = new Date(Date.UTC(2026, 10, 1) + o.hour * 3600_000).toISOString();
const total = o.stores + o.recalls;
for (let i = 0; i < total; i++) {
  // Stores spread among the recalls, one transaction each, as the server commits them.
  const store = Math.floor(((i + 1) * o.stores) / total) > Math.floor((i * o.stores) / total);
  db.transaction(() => {
    if (store) insert.run(generateMemory(o.seed + 1, 10_000_000 + o.hour * 10_000 + i, 384, 1));
    else touch.run(when, pick.get(1 + Math.floor(rand() * maxRow)));
  })();
}
if (o.merge) db.exec("INSERT INTO memories_fts(memories_fts, rank) VALUES('merge', 500)");
db.close();
