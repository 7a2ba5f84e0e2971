/**
 * Starts the S3 server of s3rverMain.cjs in a child process and stops it by its PID.
 * Credentials are s3rver's built-in account (S3RVER / S3RVER); SigV4 is checked.
 * `denyDeletes` puts a loopback proxy in front of it that answers every delete with
 * 403 AccessDenied (what a bucket policy without s3:DeleteObject does); everything else
 * goes through untouched, Host header included, so signatures still verify.
 */
import { spawn, type ChildProcess } from 'child_process';
import * as http from 'http';
import type { AddressInfo } from 'net';
import { trackChild } from './procs';

export const S3_KEY = 'S3RVER';
export const S3_SECRET = 'S3RVER';

export interface S3Server {
  port: number;
  pid: number;
  endpoint: string;
  dataDir: string;
  kill(signal?: NodeJS.Signals): Promise<void>;
}

/**
 * The server process: @20minutes/s3rver (the maintained fork of s3rver; it checks SigV4
 * signatures, unlike s3rver 3.x) on 127.0.0.1. Run with `node -e` and the module's resolved
 * path, so it works from out/ and from the test-runner copy inside code-server alike.
 * Arguments: DATA_DIR PORT BUCKET[,BUCKET…]; prints {"port":N} when it listens.
 */
function serverScript(): string {
  return `
const S3rver = require(${JSON.stringify(require.resolve('@20minutes/s3rver'))});
const [dir, port, buckets] = process.argv.slice(1);
const server = new S3rver({ address: '127.0.0.1', port: Number(port) || 0, silent: true, directory: dir,
  configureBuckets: (buckets || '').split(',').filter(Boolean).map((name) => ({ name })) });
server.run().then((a) => process.stdout.write(JSON.stringify({ port: a.port }) + '\\n'),
  (e) => { process.stderr.write(String(e && e.stack || e) + '\\n'); process.exit(1); });
process.on('SIGTERM', () => server.close().finally(() => process.exit(0)));
`;
}

/** `env`: more of the server process's environment (e.g. libfaketime's, for a server whose clock is off). */
export async function startS3Server(dataDir: string, buckets: string[], port = 0, env: NodeJS.ProcessEnv = {}): Promise<S3Server> {
  // s3rver's continuation tokens are DES-encrypted, which OpenSSL 3 (Node >= 17) has only in
  // its legacy provider: without it, any listing past one page fails with 500.
  const legacy = process.allowedNodeEnvironmentFlags.has('--openssl-legacy-provider') ? ['--openssl-legacy-provider'] : [];
  const child: ChildProcess = spawn(process.execPath, [...legacy, '-e', serverScript(), dataDir, String(port), buckets.join(',')], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ELECTRON_RUN_AS_NODE: '1', ...env } });
  trackChild(child, 's3rver');
  let err = '';
  child.stderr?.on('data', (d) => (err += d));
  const got = await new Promise<number>((resolve, reject) => {
    let out = '';
    const t = setTimeout(() => reject(new Error(`s3rver did not start in 20 s: ${err}`)), 20_000);
    child.stdout?.on('data', (d) => {
      out += d;
      const nl = out.indexOf('\n');
      if (nl >= 0) {
        clearTimeout(t);
        resolve((JSON.parse(out.slice(0, nl)) as { port: number }).port);
      }
    });
    child.once('exit', (code) => {
      clearTimeout(t);
      reject(new Error(`s3rver exited (${code}): ${err}`));
    });
  });
  const pid = child.pid as number;
  return {
    port: got,
    pid,
    endpoint: `http://127.0.0.1:${got}`,
    dataDir,
    kill: (signal: NodeJS.Signals = 'SIGKILL') =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once('exit', () => resolve());
        process.kill(pid, signal);
      }),
  };
}

/**
 * A proxy on 127.0.0.1 in front of `upstreamPort`: each request goes to `intercept` first,
 * which answers it itself (returns true) or lets it through untouched, Host header included,
 * so SigV4 signatures still verify.
 */
export async function startLoopbackProxy(upstreamPort: number, intercept: (req: http.IncomingMessage, res: http.ServerResponse) => boolean): Promise<{ endpoint: string; close(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    if (intercept(req, res)) return;
    const up = http.request({ host: '127.0.0.1', port: upstreamPort, method: req.method, path: req.url, headers: req.headers }, (r) => {
      res.writeHead(r.statusCode ?? 502, r.headers);
      r.pipe(res);
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return { endpoint: `http://127.0.0.1:${port}`, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

/** A proxy on 127.0.0.1 that refuses deletes with 403 AccessDenied and forwards the rest. */
export async function startDenyDeleteProxy(upstreamPort: number): Promise<{ endpoint: string; denied: string[]; close(): Promise<void> }> {
  const denied: string[] = [];
  const proxy = await startLoopbackProxy(upstreamPort, (req, res) => {
    const isDelete = req.method === 'DELETE' && !/uploadId=/.test(req.url ?? '') || (req.method === 'POST' && /[?&]delete(=|&|$)/.test(req.url ?? ''));
    if (!isDelete) return false;
    denied.push(`${req.method} ${req.url}`);
    req.resume();
    res.writeHead(403, { 'content-type': 'application/xml' });
    res.end('<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>');
    return true;
  });
  return { ...proxy, denied };
}

/**
 * A proxy on 127.0.0.1 in front of `upstreamPort` that forwards every request untouched
 * (Host header included, so signatures verify) and lets `rewrite` change the real server's
 * answer: for a request it picks, it gets the status, headers and whole body and returns
 * what the client receives (a provider's quirk or fault over a real server's answer).
 */
export async function startRewritingProxy(
  upstreamPort: number,
  rewrite: (req: http.IncomingMessage, res: { status: number; headers: http.IncomingHttpHeaders; body: Buffer }) => { status: number; headers: http.IncomingHttpHeaders; body: Buffer } | undefined,
): Promise<{ endpoint: string; close(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    const up = http.request({ host: '127.0.0.1', port: upstreamPort, method: req.method, path: req.url, headers: req.headers }, (r) => {
      const chunks: Buffer[] = [];
      r.on('data', (c: Buffer) => chunks.push(c));
      r.on('end', () => {
        const real = { status: r.statusCode ?? 502, headers: r.headers, body: Buffer.concat(chunks) };
        const out = rewrite(req, real) ?? real;
        const headers = { ...out.headers };
        delete headers['transfer-encoding'];
        if (req.method !== 'HEAD') headers['content-length'] = String(out.body.length);
        res.writeHead(out.status, headers);
        res.end(req.method === 'HEAD' ? undefined : out.body);
      });
      r.on('error', () => res.destroy());
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return { endpoint: `http://127.0.0.1:${port}`, close: () => new Promise((resolve) => server.close(() => resolve())) };
}
