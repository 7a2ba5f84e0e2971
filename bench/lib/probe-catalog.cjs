// Child process: listSnapshots(dir) (the catalog load: readdir, lstat and manifest of each
// snapshot) in a fresh process — the first call, then `repeats` more.
// Prints {"count":…, "firstMs":…, "repeatMs":[…]}.
//   node bench/lib/probe-catalog.cjs <out/src/core/store/catalog.js> <dir> <repeats>
const { listSnapshots } = require(process.argv[2]);
const dir = process.argv[3];
const repeats = Number(process.argv[4] ?? 20);
(async () => {
  const t0 = process.hrtime.bigint();
  const first = await listSnapshots(dir);
  const firstMs = Number(process.hrtime.bigint() - t0) / 1e6;
  const ok = first.filter((e) => e.manifestState === 'ok').length;
  const repeatMs = [];
  for (let i = 0; i < repeats; i++) {
    const t = process.hrtime.bigint();
    await listSnapshots(dir);
    repeatMs.push(Number(process.hrtime.bigint() - t) / 1e6);
  }
  process.stdout.write(`${JSON.stringify({ count: first.length, manifestsOk: ok, firstMs, repeatMs })}\n`);
})();
