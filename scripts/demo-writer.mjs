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
// IPC channel closes). When a restore replaces the database file, it restarts on the new
// file, like a server the user restarts after a restore.
import { statSync } from 'node:fs';
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

// Like a real ai-memory server that the user stops before a restore and starts again after
// it: when the database file is replaced under us ("Restore Anyway" while we run), the old
// connection would keep writing into the kept pre-restore copy — so we stop and start again
// on the restored file, as the user would restart the agent.
const start = () =>
  startWriter({
    dbPath,
    txPerSecond: Number(rate),
    insertsPerTx: 2,
    checkpointEveryMs: 5_000,
    embeddingDim: 384,
    maxLifetimeMs: 30 * 24 * 3600_000,
    seed: Date.now() % 100_000,
  });
const inode = () => {
  try {
    return statSync(dbPath).ino;
  } catch {
    return undefined;
  }
};

let writer = await start();
await writer.waitForCommits(1);
let watched = inode();
send({ type: 'ready', writerPid: writer.pid });

let stopping = false;
let restarting = false;
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
  if (stopping || restarting) return;
  const now = inode();
  if (now !== undefined && now !== watched) {
    restarting = true;
    const old = writer;
    void (async () => {
      await old.stop().catch(() => old.kill());
      if (stopping) return;
      writer = await start();
      watched = inode();
      console.log(`  demo writer: the database was replaced (a restore); restarted on it (pid ${old.pid} → ${writer.pid}), as you would restart your agent`);
      send({ type: 'restarted', writerPid: writer.pid });
      restarting = false;
    })().catch((e) => {
      console.error(`demo writer could not restart: ${e.message}`);
      process.exit(1);
    });
    return;
  }
  if (!writer.running()) {
    console.error(`demo writer (pid ${writer.pid}) exited: ${writer.stderr().trim().split('\n').slice(-3).join(' | ') || '(no message)'}`);
    process.exit(1);
  }
}, 500);
