// Fixtures for the real-VS-Code session (see harness.mjs startSession({ prepare })): a demo
// ai-memory database in the extension host's home, named in the workspace's
// .vscode/mcp.json the way VS Code users configure the ai-memory MCP server, so the
// extension must discover it on its own.
import { mkdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';

const require = createRequire(import.meta.url);

export async function prepare(dirs) {
  const { createAiMemoryDb } = require('../../out/test/support/aiMemoryDb.js');
  const dbDir = join(dirs.home, '.local', 'share', 'ai-memory');
  mkdirSync(dbDir, { recursive: true });
  const db = join(dbDir, 'memories.db');
  // A live-looking database: the last commits only in its -wal.
  createAiMemoryDb(db, { memories: 150, leaveWalCommits: 12 });
  mkdirSync(join(dirs.workspace, '.vscode'), { recursive: true });
  writeFileSync(
    join(dirs.workspace, '.vscode', 'mcp.json'),
    `{
  // ai-memory, as the VS Code MCP docs have you configure it
  "servers": {
    "memory": {
      "type": "stdio",
      "command": "ai-memory",
      "args": ["--db", "\${userHome}/.local/share/ai-memory/memories.db", "mcp"],
    },
  },
}
`,
  );
  return {
    env: { AI_MEMORY_TEST_DB: db },
    // Tests drive the schedule themselves.
    settings: { 'aiMemory.backup.intervalMinutes': 0 },
  };
}
