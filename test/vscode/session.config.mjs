// Sessions of the real-VS-Code run (see harness.mjs startSession({ prepare }) and run.mjs):
// each gets a fresh code-server profile, HOME and workspace, made by its `prepare(dirs)`
// before code-server starts. run.mjs starts them one after the other.
//
//   main       the integration suites (test/integration/*.test.ts, in the extension host),
//              then every UI test not claimed by another session. A demo ai-memory database
//              in the extension host's home, named in the workspace's .vscode/mcp.json the way
//              VS Code users configure the ai-memory MCP server, so the extension must
//              discover it on its own.
//   two-hosts  two workbench pages (= two extension hosts) on one workspace, backups every
//              6 s: one scheduled backup per interval, not one per window.
//   untrusted  the workspace is NOT trusted; its settings and MCP files name other
//              databases, which the extension must ignore.
//   reload     a 4 GiB database and its snapshot: the window is reloaded while a restore runs.
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);

function aiMemoryDb() {
  return require('../../out/test/support/aiMemoryDb.js');
}

/** `~/.local/share/ai-memory/memories.db` in `home` (the ai-memory default), with a live-looking -wal. */
export function createHomeDatabase(home, { memories = 150, leaveWalCommits = 12 } = {}) {
  const dbDir = join(home, '.local', 'share', 'ai-memory');
  mkdirSync(dbDir, { recursive: true });
  const db = join(dbDir, 'memories.db');
  // A live-looking database: the last commits only in its -wal.
  aiMemoryDb().createAiMemoryDb(db, { memories, leaveWalCommits });
  return db;
}

/** The workspace's .vscode/mcp.json naming `dbArg` (as the ai-memory server's --db). */
export function writeVscodeMcpJson(workspace, dbArg = '${userHome}/.local/share/ai-memory/memories.db') {
  mkdirSync(join(workspace, '.vscode'), { recursive: true });
  writeFileSync(
    join(workspace, '.vscode', 'mcp.json'),
    `{
  // ai-memory, as the VS Code MCP docs have you configure it
  "servers": {
    "memory": {
      "type": "stdio",
      "command": "ai-memory",
      "args": ["--db", ${JSON.stringify(dbArg)}, "mcp"],
    },
  },
}
`,
  );
}

/** The `main` session (also what older callers import as `prepare`). */
export async function prepare(dirs) {
  const db = createHomeDatabase(dirs.home);
  writeVscodeMcpJson(dirs.workspace);
  return {
    env: { AI_MEMORY_TEST_DB: db },
    // Tests drive the schedule themselves.
    settings: { 'aiMemory.backup.intervalMinutes': 0 },
  };
}

/** Interval of the two-hosts session, in minutes (fractions are allowed: 0.1 = 6 s). */
export const TWO_HOSTS_INTERVAL_MINUTES = 0.1;

export async function prepareTwoHosts(dirs) {
  const db = createHomeDatabase(dirs.home, { memories: 60, leaveWalCommits: 0 });
  writeVscodeMcpJson(dirs.workspace);
  return {
    env: { AI_MEMORY_TEST_DB: db },
    settings: { 'aiMemory.backup.intervalMinutes': TWO_HOSTS_INTERVAL_MINUTES },
  };
}

/**
 * Untrusted workspace: the user's own ai-memory config (~/.config/ai-memory/config.toml)
 * names ~/ai-memory/memories.db; the workspace's .vscode/settings.json (aiMemory.databasePath,
 * aiMemory.backup.directory; and aiMemory.backup.keep: 1), .vscode/mcp.json and .mcp.json (Claude Code) name three other
 * databases inside the workspace, all real ai-memory databases, so picking any of them would
 * work — and would be wrong. The user's own settings name a database and a backup folder in
 * the workspace (${workspaceFolder}), which the workspace decides as well.
 */
export async function prepareUntrusted(dirs) {
  const { createAiMemoryDb } = aiMemoryDb();
  const userDir = join(dirs.home, 'ai-memory');
  mkdirSync(userDir, { recursive: true });
  const userDb = join(userDir, 'memories.db');
  createAiMemoryDb(userDb, { memories: 40 });
  mkdirSync(join(dirs.home, '.config', 'ai-memory'), { recursive: true });
  writeFileSync(join(dirs.home, '.config', 'ai-memory', 'config.toml'), '# ai-memory configuration\ndb = "~/ai-memory/memories.db"\n');

  const evil = join(dirs.workspace, 'evil');
  mkdirSync(evil, { recursive: true });
  const settingsDb = join(evil, 'settings.db');
  const mcpDb = join(evil, 'mcp.db');
  const claudeDb = join(evil, 'claude.db');
  for (const p of [settingsDb, mcpDb, claudeDb]) createAiMemoryDb(p, { memories: 5 });
  writeVscodeMcpJson(dirs.workspace, '${workspaceFolder}/evil/mcp.db');
  writeFileSync(
    join(dirs.workspace, '.vscode', 'settings.json'),
    // …and tries to thin out the user's snapshots: keep only the newest one.
    JSON.stringify({ 'aiMemory.databasePath': '${workspaceFolder}/evil/settings.db', 'aiMemory.backup.directory': '${workspaceFolder}/evil/backups', 'aiMemory.backup.keep': 1 }, null, 2),
  );
  writeFileSync(
    join(dirs.workspace, '.mcp.json'),
    JSON.stringify({ mcpServers: { memory: { command: 'ai-memory', args: ['--db', claudeDb, 'mcp'] } } }, null, 2),
  );
  // The user's own settings name a database and a backup folder per workspace (${workspaceFolder}):
  // in this workspace that is a path the repository decides (here a real ai-memory database it
  // ships; a symbolic link there would lead anywhere). Untrusted, neither may be used.
  const perProjectDb = join(dirs.workspace, '.ai-memory', 'memory.db');
  mkdirSync(dirname(perProjectDb), { recursive: true });
  createAiMemoryDb(perProjectDb, { memories: 7 });
  return {
    env: { AI_MEMORY_TEST_DB: userDb, AI_MEMORY_TEST_EVIL: [settingsDb, mcpDb, claudeDb, perProjectDb].join(':') },
    settings: {
      'aiMemory.backup.intervalMinutes': 0,
      'aiMemory.databasePath': '${workspaceFolder}/.ai-memory/memory.db',
      'aiMemory.backup.directory': '${workspaceFolder}/.ai-memory/backups',
    },
  };
}

/**
 * `reload`: a restore that takes long enough to reload the window in its middle. The database
 * is a 4 GiB sparse SQLite file (sparseDb.ts: instant to make, next to no disk), and its
 * snapshot, made here by the packaged engine, a real 4 GiB file: its restore copies and checks
 * 4 GiB (about 20 s here). The files go with the session's temp folder.
 */
export async function prepareReload(dirs) {
  const { makeSparseDatabase, SPARSE_PAGE_SIZE } = require('../../out/test/support/sparseDb.js');
  const dbDir = join(dirs.home, '.local', 'share', 'ai-memory');
  mkdirSync(dbDir, { recursive: true });
  const db = join(dbDir, 'memories.db');
  makeSparseDatabase(db, (4 * 2 ** 30) / SPARSE_PAGE_SIZE);
  const cli = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'dist', 'cli.js');
  const made = spawnSync(process.execPath, [cli, 'backup', '--db', db, '--to', join(dbDir, 'backups'), '--json'], { encoding: 'utf8', env: { ...process.env, HOME: dirs.home } });
  if (made.status !== 0) throw new Error(`reload session: the snapshot could not be made: ${made.stderr}`);
  writeVscodeMcpJson(dirs.workspace);
  return { env: { AI_MEMORY_TEST_DB: db }, settings: { 'aiMemory.backup.intervalMinutes': 0 } };
}

/**
 * The sessions run.mjs starts, in this order. `ui`: the UI test files (names under
 * test/vscode/ui/) run in that session; the session without `ui` runs all the others.
 * `integration`: the in-host suites run there. `trust`: the answer to the trust prompt.
 */
export const sessions = [
  { name: 'main', prepare, integration: true },
  { name: 'two-hosts', prepare: prepareTwoHosts, ui: ['two-hosts.ui.mjs'] },
  { name: 'untrusted', prepare: prepareUntrusted, trust: 'restricted', ui: ['untrusted.ui.mjs'] },
  { name: 'reload', prepare: prepareReload, ui: ['reload-mid-restore.ui.mjs'] },
];
