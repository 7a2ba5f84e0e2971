// Child process: how long loadSqlEngine() (sql.js wasm compile + instantiate) takes in a
// fresh process. Prints {"requireMs":…, "initMs":…}.
//   node bench/lib/probe-sqljs.cjs <out/src/core/sqlite/sqlEngine.js>
const t0 = process.hrtime.bigint();
const { loadSqlEngine } = require(process.argv[2]);
const t1 = process.hrtime.bigint();
loadSqlEngine().then((SQL) => {
  const t2 = process.hrtime.bigint();
  const db = new SQL.Database();
  db.exec('select 1');
  db.close();
  process.stdout.write(`${JSON.stringify({ requireMs: Number(t1 - t0) / 1e6, initMs: Number(t2 - t1) / 1e6 })}\n`);
});
