// Off-machine copy benchmark: `push` of a 500 MB snapshot to a loopback S3 server
// (@20minutes/s3rver, the tests' server) against a plain Node PUT of the same bytes (one
// streamed, signed PUT with http.request: no parts, no hashing, no checks), with the peak
// RSS of each process (GNU time). The S3 server's own disk writes are in both numbers alike.
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, mkdirSync, openSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { timed } from './proc.mjs';
import { median } from './stats.mjs';

const require = createRequire(import.meta.url);

function startServer(dir) {
  const script = `
const S3rver = require(${JSON.stringify(require.resolve('@20minutes/s3rver'))});
const s = new S3rver({ address: '127.0.0.1', port: 0, silent: true, directory: process.argv[1], configureBuckets: [{ name: 'bench' }] });
s.run().then((a) => process.stdout.write(JSON.stringify({ port: a.port }) + '\\n'));`;
  const child = spawn(process.execPath, ['-e', script, dir], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
      if (out.includes('\n')) resolve({ port: JSON.parse(out).port, stop: () => new Promise((r) => { child.once('exit', r); process.kill(child.pid, 'SIGKILL'); }) });
    });
    child.once('exit', (c) => reject(new Error(`s3rver exited ${c}`)));
  });
}

/** A snapshot-shaped file (random bytes, so nothing compresses) and its manifest. */
function makeSnapshot(dir, bytes) {
  mkdirSync(dir, { recursive: true });
  const name = 'ai-memory-2026-11-29T120000Z.db';
  const fd = openSync(join(dir, name), 'w');
  const h = createHash('sha256');
  const chunk = randomBytes(8 << 20);
  for (let done = 0; done < bytes; done += chunk.length) {
    const b = chunk.subarray(0, Math.min(chunk.length, bytes - done));
    h.update(b);
    writeSync(fd, b);
  }
  closeSync(fd);
  writeFileSync(join(dir, 'ai-memory-2026-11-29T120000Z.manifest.json'), JSON.stringify({ snapshot: name, sha256: h.digest('hex'), bytes, source_db: '/bench/ai-memory.db', version: 'bench', created_at: new Date().toISOString(), integrity: 'unverified' }, null, 2));
  return join(dir, name);
}

const PLAIN_PUT = `
const { AwsClient } = require(${JSON.stringify(require.resolve('aws4fetch'))});
const fs = require('fs'); const http = require('http');
const [file, url] = process.argv.slice(1);
const size = fs.statSync(file).size;
new AwsClient({ accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER', service: 's3', region: 'us-east-1' })
  .sign(url, { method: 'PUT', headers: { 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD', 'content-length': String(size) } })
  .then((req) => {
    const headers = Object.fromEntries(req.headers);
    const r = http.request(url, { method: 'PUT', headers }, (res) => { res.resume(); res.on('end', () => process.exit(res.statusCode === 200 ? 0 : 1)); });
    fs.createReadStream(file).pipe(r);
  });`;

export async function measureRemotePush({ repoRoot, cacheDir, bytes = 500 << 20, rounds = 3, log = () => {} }) {
  const work = join(cacheDir, `remote-${process.pid}`);
  const local = join(work, 'backups');
  const file = makeSnapshot(local, bytes);
  const server = await startServer(join(work, 's3'));
  const env = { ...process.env, AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER', AWS_ENDPOINT_URL: `http://127.0.0.1:${server.port}` };
  const ours = [];
  const plain = [];
  try {
    for (let i = 0; i < rounds; i++) {
      log(`remote: round ${i + 1}/${rounds}`);
      // A new prefix each round, so every push uploads the whole file.
      const o = await timed([process.execPath, join(repoRoot, 'dist', 'cli.js'), 'push', '--to', local, '--remote', `s3://bench/ours-${i}`, '--path-style', '--json'], { env });
      if (o.code !== 0) throw new Error(`push failed: ${o.stderr}`);
      ours.push(o);
      const p = await timed([process.execPath, '-e', PLAIN_PUT, file, `http://127.0.0.1:${server.port}/bench/plain-${i}/x.db`], { env });
      if (p.code !== 0) throw new Error(`plain PUT failed: ${p.stderr}`);
      plain.push(p);
    }
  } finally {
    await server.stop();
    rmSync(work, { recursive: true, force: true });
  }
  return {
    bytes,
    rounds,
    oursMs: median(ours.map((x) => x.ms)),
    plainMs: median(plain.map((x) => x.ms)),
    oursPeakMB: Math.max(...ours.map((x) => x.rssKB)) / 1024,
    plainPeakMB: Math.max(...plain.map((x) => x.rssKB)) / 1024,
  };
}

export function remoteSection(r) {
  const mbps = (ms) => ((r.bytes / (1 << 20)) / (ms / 1000)).toFixed(0);
  return [
    '## Off-machine copy: push to a loopback S3 server',
    '',
    `A ${(r.bytes / (1 << 20)).toFixed(0)} MB snapshot pushed to @20minutes/s3rver on 127.0.0.1 (median of ${r.rounds} rounds, whole processes): \`push\` (8 MiB parts read from disk while the previous one is sent, sha256 of everything sent checked against the manifest, Content-MD5 and x-amz-content-sha256 on each part, HEAD afterwards) against a plain Node PUT of the same bytes (one streamed, signed request; no parts, no hashing, no checks).`,
    '',
    '| | time | throughput | peak RSS |',
    '| --- | ---: | ---: | ---: |',
    `| ours: \`push\` | ${(r.oursMs / 1000).toFixed(2)} s | ${mbps(r.oursMs)} MB/s | ${r.oursPeakMB.toFixed(0)} MB ${r.oursPeakMB <= 100 ? '(≤ 100 MB: pass)' : '(> 100 MB: FAIL)'} |`,
    `| plain Node PUT | ${(r.plainMs / 1000).toFixed(2)} s | ${mbps(r.plainMs)} MB/s | ${r.plainPeakMB.toFixed(0)} MB |`,
    '',
  ].join('\n');
}
