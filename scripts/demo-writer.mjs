#!/usr/bin/env node
// The live writer of the demo (`npm start`, scripts/start.mjs): the native writer of the
// tests (out/test/support/nativeWriter.js — better-sqlite3, WAL, a few commits a second that
// fire the FTS5 triggers, checkpoints now and then; a busy ai-memory server as far as SQLite
// can tell) on the demo database, until stopped.
//
//   node scripts/demo-writer.mjs <db> [commits per second, default 3]
//
// scripts/start.mjs starts it in its own process group, so a Ctrl+C in the terminal reaches
// only start.mjs, which then stops this by PID (SIGTERM): the writer finishes its
// transaction and closes the database cleanly. It also stops when start.mjs goes away (its
// IPC channel closes).
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const { startWriter } = require('../out/test/support/nativeWriter.js');

const [dbPath, rate = '3'] = process.argv.slice(2);
if (!dbPath) {
  console.error('usage: node scripts/demo-writer.mjs <db> [commits per second]');
  process.exit(2);
}

const send = (m) => {
  if (process.connected) process.send(m);
};

const writer = await startWriter({
  dbPath,
  txPerSecond: Number(rate),
  insertsPerTx: 2,
  checkpointEveryMs: 5_000,
  embeddingDim: 384,
  maxLifetimeMs: 30 * 24 * 3600_000,
  seed: Date.now() % 100_000,
});
await writer.waitForCommits(1);
send({ type: 'ready', writerPid: writer.pid });

let stopping = false;
async function stop(code) {
  if (stopping) return;
  stopping = true;
  const summary = await writer.stop().catch(() => writer.kill());
  console.log(`  demo writer stopped (pid ${writer.pid}${summary?.commits !== undefined ? `, ${summary.commits} commits` : ''})`);
  process.exit(code);
}
process.on('SIGTERM', () => void stop(0));
process.on('SIGINT', () => {}); // a Ctrl+C is for start.mjs, which stops us by PID
process.on('disconnect', () => void stop(0));
setInterval(() => {
  if (!stopping && !writer.running()) {
    console.error(`demo writer (pid ${writer.pid}) exited: ${writer.stderr().trim().split('\n').slice(-3).join(' | ') || '(no message)'}`);
    process.exit(1);
  }
}, 1_000);
