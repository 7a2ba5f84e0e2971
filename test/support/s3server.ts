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
import * as path from 'path';
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

const MAIN = path.join(__dirname, '..', '..', '..', 'test', 'support', 's3rverMain.cjs');

export async function startS3Server(dataDir: string, buckets: string[], port = 0): Promise<S3Server> {
  const child: ChildProcess = spawn(process.execPath, [MAIN, dataDir, String(port), buckets.join(',')], { stdio: ['ignore', 'pipe', 'pipe'] });
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

/** A proxy on 127.0.0.1 that refuses deletes with 403 AccessDenied and forwards the rest. */
export async function startDenyDeleteProxy(upstreamPort: number): Promise<{ endpoint: string; denied: string[]; close(): Promise<void> }> {
  const denied: string[] = [];
  const server = http.createServer((req, res) => {
    const isDelete = req.method === 'DELETE' && !/uploadId=/.test(req.url ?? '') || (req.method === 'POST' && /[?&]delete(=|&|$)/.test(req.url ?? ''));
    if (isDelete) {
      denied.push(`${req.method} ${req.url}`);
      req.resume();
      res.writeHead(403, { 'content-type': 'application/xml' });
      res.end('<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>');
      return;
    }
    const up = http.request({ host: '127.0.0.1', port: upstreamPort, method: req.method, path: req.url, headers: req.headers }, (r) => {
      res.writeHead(r.statusCode ?? 502, r.headers);
      r.pipe(res);
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return { endpoint: `http://127.0.0.1:${port}`, denied, close: () => new Promise((resolve) => server.close(() => resolve())) };
}
