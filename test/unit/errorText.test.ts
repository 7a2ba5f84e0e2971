/**
 * What an engine failure says in VS Code (src/features/errorText.ts, issue 15 #2): never the
 * CLI's flags or its path sources, always where the database path came from, with the
 * punctuation in place.
 */
import * as assert from 'assert';
import { ERROR_CODES, type ErrorCode } from '../../src/core/common/errors';
import { inspectDatabase } from '../../src/core/sqlite/image';
import { runRestore } from '../../src/core/ops/restore';
import { extensionHint, failureText, sentence, speaksCli, type DatabaseOrigin } from '../../src/features/errorText';
import { useTempDir } from '../support/tmp';

const ALL: readonly ErrorCode[] = ERROR_CODES;
const ORIGINS: DatabaseOrigin[] = [
  { via: 'setting', source: 'setting aiMemory.databasePath (User)' },
  { via: 'discovered', source: '.vscode/mcp.json (server "memory")' },
  { via: 'remembered', source: 'your choice' },
];
const CLI_HINT = 'Check the path (--db, $AI_MEMORY_DB or ~/.config/ai-memory/config.toml). Nothing was created.';

describe('error text in VS Code (issue 15 #2)', () => {
  const tmp = useTempDir();

  it('the engine\'s own "database not found" hint speaks the CLI; in VS Code it names where the path came from', async () => {
    const missing = tmp.join('nowhere', 'memories.db');
    const err = await inspectDatabase(missing).then(() => undefined, (e: { code: string; message: string; hint?: string }) => e);
    assert.ok(err);
    assert.strictEqual(err.code, 'DB_NOT_FOUND');
    assert.ok(err.hint && speaksCli(err.hint), 'the CLI hint is what the extension must replace');
    const setting = extensionHint(err.code, err.hint, { operation: 'backup', db: ORIGINS[0] });
    assert.match(setting ?? '', /setting aiMemory\.databasePath \(User\)/);
    const mcp = extensionHint(err.code, err.hint, { operation: 'backup', db: ORIGINS[1] });
    assert.match(mcp ?? '', /\.vscode\/mcp\.json \(server "memory"\)/);
    const text = failureText(err.message, setting);
    assert.ok(text.includes(`${missing}. The path is`), `a sentence ends before the hint: ${text}`);
  });

  it('no code, for any origin and operation, gets a hint with a CLI flag or $AI_MEMORY_DB', () => {
    for (const code of ALL) {
      for (const db of [...ORIGINS, undefined]) {
        for (const operation of ['backup', 'restore', 'verify', 'open', 'extract', 'copy', 'setUpCopy', 'download'] as const) {
          const hint = extensionHint(code, CLI_HINT, { operation, db, directorySetting: false });
          // Only a hint that sends the user to a terminal on purpose may name the CLI.
          if (hint && !hint.includes('in a terminal')) assert.ok(!speaksCli(hint), `${code}/${operation}/${db?.via}: ${hint}`);
        }
      }
    }
  });

  it('in use: the restore hint says to stop the agent, not --force', async () => {
    const hint = extensionHint('IN_USE', 'Stop your agent (or the ai-memory server) first, then restore. --force restores anyway.', { operation: 'restore' });
    assert.match(hint ?? '', /^Stop your agent/);
    assert.doesNotMatch(hint ?? '', /--force/);
  });

  it('restore over another program\'s database: the hint is where its path came from, not --db or --force', () => {
    const hint = extensionHint('NOT_AI_MEMORY', 'Point --db at your ai-memory database. To replace this file anyway (it is kept aside first), pass --force.', { operation: 'restore', db: ORIGINS[1] });
    assert.match(hint ?? '', /\.vscode\/mcp\.json \(server "memory"\)/);
    assert.ok(!speaksCli(hint ?? ''));
  });

  it('a snapshot on a newer schema: Restore Anyway (in use) does not override it, so the hint says what does, in a terminal', () => {
    const hint = extensionHint('SCHEMA_NEWER', 'The ai-memory that uses this database would silently drop the newer columns. Upgrade ai-memory first, or pass --force to restore anyway.', { operation: 'restore', db: ORIGINS[1] });
    assert.match(hint ?? '', /Upgrade ai-memory first/);
    assert.match(hint ?? '', /ai-memory-backup restore --force` in a terminal/);
  });

  it('a bad backup folder names the aiMemory.backup.directory setting', () => {
    assert.match(extensionHint('TARGET_NOT_WRITABLE', 'Fix its permissions, or choose another folder with --to.', { operation: 'backup', directorySetting: true }) ?? '', /aiMemory\.backup\.directory/);
  });

  it('sentences keep their own punctuation and get a full stop otherwise', () => {
    assert.strictEqual(sentence('Database not found: /a/b.db'), 'Database not found: /a/b.db.');
    assert.strictEqual(sentence('Done.'), 'Done.');
    assert.strictEqual(failureText('A', undefined, 'B is back'), 'A. B is back.');
  });

  it('restore of a missing snapshot folder: the hint is for VS Code', async () => {
    const err = await runRestore({ dbPath: tmp.join('x.db'), from: tmp.join('none') }).then(() => undefined, (e: { code: string; hint?: string }) => e);
    assert.ok(err);
    assert.ok(!speaksCli(extensionHint(err.code, err.hint, { operation: 'restore' }) ?? ''));
  });
});
