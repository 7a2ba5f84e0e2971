// A real S3 protocol server for the tests: @20minutes/s3rver (the maintained fork of s3rver;
// it checks SigV4 signatures, unlike s3rver 3.x) on 127.0.0.1, in its own process so a test
// can kill it by PID mid-upload. Usage: node s3rverMain.cjs DATA_DIR PORT BUCKET[,BUCKET…]
// Prints one JSON line {"port":N} when it listens.
const S3rver = require('@20minutes/s3rver');

const [dir, port, buckets] = process.argv.slice(2);
const server = new S3rver({
  address: '127.0.0.1',
  port: Number(port) || 0,
  silent: true,
  directory: dir,
  configureBuckets: (buckets || '').split(',').filter(Boolean).map((name) => ({ name })),
});
server.run().then(
  (addr) => process.stdout.write(`${JSON.stringify({ port: addr.port })}\n`),
  (err) => {
    process.stderr.write(`${err.stack || err}\n`);
    process.exit(1);
  },
);
process.on('SIGTERM', () => server.close().finally(() => process.exit(0)));
