// Workspace trust. Session `untrusted` (session.config.mjs): the workspace is NOT trusted (the
// trust prompt is answered "No, I don't trust the authors"), and it tries to aim the extension
// at databases of its own: .vscode/settings.json sets aiMemory.databasePath and
// aiMemory.backup.directory (and keep: 1), .vscode/mcp.json and .mcp.json (Claude Code) name two more — all
// real ai-memory databases inside the workspace. The extension must use none of them
// (restricted configuration + the workspace's MCP files ignored while untrusted) and find the
// user's own database through ~/.config/ai-memory/config.toml. The user's own settings name a
// database and a backup folder in ${workspaceFolder}: untrusted, those are the workspace's too. As a control, trusting the
// workspace then makes its setting win, which shows the fixture would have worked.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { currentSession, extensionLogFiles, hoverText, openViewContainer, runCommand, statusBarItem, waitFor } from '../harness.mjs';

const EXTENSION_ID = 'ai-memory-tools.ai-memory-backup';
const SNAPSHOT_NAME = /^ai-memory-\d{4}-\d\d-\d\dT\d{6}Z(?:_\d+)?\.db$/;
const sha = (f) => createHash('sha256').update(readFileSync(f)).digest('hex');

/** Every file under `dir` with its sha256 (to show nothing in the workspace changed). */
function fingerprint(dir) {
  const out = {};
  const walk = (d) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else out[p.slice(dir.length + 1)] = sha(p);
    }
  };
  walk(dir);
  return out;
}

describe('UI: an untrusted workspace cannot choose the database', function () {
  this.timeout(90_000);
  let page;
  let dirs;
  let userDb;
  let workspaceBefore;
  let item;
  const log = () => extensionLogFiles(dirs, EXTENSION_ID, 'AI Memory').map((f) => readFileSync(f, 'utf8')).join('\n');

  before(function () {
    ({ page, dirs } = currentSession());
    userDb = join(dirs.home, 'ai-memory', 'memories.db');
    workspaceBefore = fingerprint(dirs.workspace);
    item = statusBarItem(page, { extensionId: EXTENSION_ID, id: 'aiMemory.status' });
  });

  it('the window is in Restricted Mode', async function () {
    await page.locator('.part.statusbar .statusbar-item', { hasText: 'Restricted Mode' }).first().waitFor({ state: 'visible', timeout: 15_000 });
  });

  it("uses the user's database from ~/.config/ai-memory/config.toml, none of the workspace's", async function () {
    await item.waitFor({ state: 'visible', timeout: 30_000 });
    const tip = await hoverText(page, item);
    await page.mouse.move(600, 300);
    assert.match(tip, /AI Memory Backup — ~\/ai-memory\/memories\.db/);
    assert.match(tip, /Database from ~\/\.config\/ai-memory\/config\.toml \(db setting\)/);
    assert.doesNotMatch(tip, /evil|aiMemory\.databasePath|\.ai-memory\/memory\.db/);

    const text = await waitFor(() => /database: .*memories\.db/.test(log()) && log(), { timeoutMs: 15_000, message: 'the database decision in the log' });
    // One level of parentheses (issue 15 #16).
    assert.ok(text.includes(`database: ${userDb} — from ~/.config/ai-memory/config.toml (db setting)`), text);
    assert.match(text, /untrusted workspace — its \.vscode\/mcp\.json, \.mcp\.json, \.cursor and \.gemini files are ignored/);
    assert.doesNotMatch(text, /evil/, 'no workspace database is even mentioned');
    // The user's own aiMemory.databasePath names ${workspaceFolder}/.ai-memory/memory.db: a path the workspace decides.
    assert.match(text, /aiMemory\.databasePath "\$\{workspaceFolder\}\/\.ai-memory\/memory\.db" names a path in this untrusted workspace/);
    assert.doesNotMatch(text, /database: \S*\.ai-memory\/memory\.db/, 'the per-workspace database of the user setting is not used');
  });

  /**
   * Clicks the view's Backup button until the extension logs a manual backup: in CI a click once
   * landed while the view's title bar was drawn again under the mouse, and no command ran (the
   * log shows none until the next test's click). A second backup of an unchanged database adds
   * no snapshot, so a click that did run twice changes nothing the tests count.
   */
  async function clickBackup(sidebar) {
    const runs = () => (log().match(/\] backup \(manual\)/g) ?? []).length;
    const before = runs();
    for (let i = 0; i < 3 && runs() === before; i++) {
      await sidebar.locator('.title-actions .action-label[aria-label="Backup"]').first().click();
      await waitFor(() => runs() > before, { timeoutMs: 8_000, message: 'a manual backup in the log' }).catch(() => undefined);
    }
    assert.ok(runs() > before, 'the Backup button started a backup');
  }

  it("the view's Backup button writes the snapshot beside the user's database; the workspace is untouched", async function () {
    const sidebar = await openViewContainer(page, 'AI Memory');
    const rows = page.locator('.monaco-list[aria-label="Snapshots"] .monaco-list-row');
    await sidebar.locator('.welcome-view-content', { hasText: 'No snapshots yet' }).waitFor({ state: 'visible', timeout: 15_000 });
    await clickBackup(sidebar);
    await rows.first().waitFor({ state: 'visible', timeout: 30_000 });
    const made = readdirSync(join(dirs.home, 'ai-memory', 'backups')).filter((n) => SNAPSHOT_NAME.test(n));
    assert.equal(made.length, 1, `one snapshot in ~/ai-memory/backups: ${made}`);
    assert.ok(!existsSync(join(dirs.workspace, 'evil', 'backups')), 'aiMemory.backup.directory from the workspace was not used');
    assert.ok(!existsSync(join(dirs.workspace, '.ai-memory', 'backups')), "the user's aiMemory.backup.directory in ${workspaceFolder} was not used");
    assert.deepEqual(fingerprint(dirs.workspace), workspaceBefore, 'no file in the workspace changed');
  });

  it("the workspace's aiMemory.backup.keep: 1 thins out nothing: a second backup keeps both snapshots", async function () {
    const { createRequire } = await import('node:module');
    const { seedMemory } = createRequire(import.meta.url)('../../../out/test/support/aiMemoryDb.js');
    seedMemory(userDb, 'proj', 'a second memory', 'so that the next backup is a new snapshot');
    const backups = join(dirs.home, 'ai-memory', 'backups');
    const sidebar = await openViewContainer(page, 'AI Memory');
    await clickBackup(sidebar);
    await waitFor(() => readdirSync(backups).filter((n) => SNAPSHOT_NAME.test(n)).length >= 2 && readdirSync(backups), {
      timeoutMs: 30_000,
      message: 'two snapshots after the second backup (the workspace\'s keep: 1 must not apply)',
    });
    await new Promise((r) => setTimeout(r, 2000)); // the backup's own retention runs right after it publishes
    const made = readdirSync(backups).filter((n) => SNAPSHOT_NAME.test(n));
    assert.equal(made.length, 2, `both snapshots kept (the workspace's keep: 1 is ignored in Restricted Mode): ${made}`);
  });

  it('control: once the workspace is trusted, its aiMemory.databasePath setting is used', async function () {
    await runCommand(page, 'Workspaces: Manage Workspace Trust');
    const trustButton = page.locator('.workspace-trust-editor .monaco-button', { hasText: /^Trust( Folder)?$/ }).first();
    await trustButton.waitFor({ state: 'visible', timeout: 15_000 });
    await trustButton.click();
    await page.locator('.part.statusbar .statusbar-item', { hasText: 'Restricted Mode' }).first().waitFor({ state: 'hidden', timeout: 15_000 });
    await waitFor(async () => /evil\/settings\.db/.test((await item.getAttribute('aria-label')) ?? ''), {
      timeoutMs: 20_000,
      message: 'the status bar to name the database of the workspace setting once trusted',
    });
    assert.match((await item.getAttribute('aria-label')) ?? '', /Database from setting aiMemory\.databasePath \(Workspace\)/);
    // The log says the database's new source after the trust was granted (issue 15 #16).
    await waitFor(() => /workspace trusted[^]*database: \S+evil\/settings\.db — from setting aiMemory\.databasePath \(Workspace\)/.test(log()), {
      timeoutMs: 10_000,
      message: 'the log to name the new source after the trust was granted',
    });
  });
});
