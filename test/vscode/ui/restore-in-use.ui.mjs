// Restore while the database is in use, with real keys and clicks in the real workbench
// (issue 15 #5, #15): the dialog's headline names the program and pid (the full command in
// the detail); Enter presses the safe default ("Check Again") however often it is pressed —
// never "Restore Anyway"; "Restore Anyway…" then "Restore Anyway" does restore, and the
// progress notification is gone once "Restored" shows.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { clearNotifications, contextMenuAction, currentSession, openViewContainer, screenshotsDir, waitFor, windowScreenshot } from '../harness.mjs';

const require = createRequire(import.meta.url);
const { readMemories, seedMemory } = require('../../../out/test/support/aiMemoryDb.js');

const preRestoreCopies = (dir) => readdirSync(dir).filter((n) => /^memories\.pre-restore-.*\.db$/.test(n));

/** A process holding the database open in WAL mode, like the ai-memory server. */
async function startHolder(db) {
  const holder = spawn(process.execPath, ['-e', `
    const D = require(${JSON.stringify(require.resolve('better-sqlite3'))});
    const d = new D(${JSON.stringify(db)}); d.pragma('journal_mode = WAL'); d.prepare('select count(*) from memories').get();
    globalThis.keep = d; process.stdout.write('ready\\n'); setInterval(() => {}, 1000);`], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise((res, rej) => {
    holder.stdout.once('data', () => res());
    holder.once('exit', (c) => rej(new Error(`holder exited ${c}`)));
  });
  return holder;
}

async function stopHolder(holder) {
  if (holder.exitCode !== null || holder.signalCode !== null) return;
  holder.kill('SIGKILL');
  await new Promise((r) => holder.once('exit', r));
}

describe('UI: restore while the database is in use', function () {
  this.timeout(120_000);
  let page;
  let db;
  let rows;
  let holder;

  before(async function () {
    const session = currentSession();
    page = session.page;
    db = join(session.dirs.home, '.local', 'share', 'ai-memory', 'memories.db');
    assert.ok(existsSync(db));
    await clearNotifications(page);
    await openViewContainer(page, 'AI Memory');
    rows = page.locator('.monaco-list[aria-label="Snapshots"] .monaco-list-row[aria-label^="Snapshot of"]');
    await waitFor(async () => (await rows.count()) > 0, { timeoutMs: 15_000, message: 'a snapshot row' });
  });

  afterEach(async () => {
    if (holder) await stopHolder(holder);
    holder = undefined;
  });

  async function openRestoreDialog() {
    await contextMenuAction(page, rows.first(), 'Restore');
    const dialog = page.locator('.monaco-dialog-box');
    await dialog.waitFor({ state: 'visible', timeout: 15_000 });
    return dialog;
  }

  const focusedButton = () => page.evaluate(() => (document.activeElement?.closest('.monaco-button') ?? document.activeElement)?.textContent?.trim());

  it('Enter, pressed again and again, never restores over the running server', async function () {
    seedMemory(db, 'ui/in-use', 'written while the server runs', 'must still be there: Enter must not restore');
    holder = await startHolder(db);
    const before = readMemories(db);
    const keptBefore = preRestoreCopies(dirname(db));

    const dialog = await openRestoreDialog();
    const message = await dialog.locator('.dialog-message-text').innerText();
    assert.match(message, new RegExp(`^The database is in use by node \\(pid ${holder.pid}\\)\\.$`), 'a short headline: program and pid');
    assert.match(await dialog.locator('.dialog-message-detail').innerText(), new RegExp(`pid ${holder.pid} \\(.*node -e`), 'the full command in the detail');
    await windowScreenshot(page, join(screenshotsDir, 'restore-in-use.png'), { width: 1200, height: 750 });
    assert.equal(await focusedButton(), 'Check Again', 'the safe choice has the focus');
    for (let i = 0; i < 3; i++) {
      await page.keyboard.press('Enter');
      // "Check Again" looks again: still in use, so the same dialog comes back.
      await waitFor(async () => (await dialog.isVisible()) && /in use by/.test(await dialog.locator('.dialog-message-text').innerText()), { timeoutMs: 10_000, message: 'the in-use dialog again' });
      assert.equal(await focusedButton(), 'Check Again');
    }
    await page.keyboard.press('Escape');
    await dialog.waitFor({ state: 'hidden', timeout: 10_000 });
    await new Promise((r) => setTimeout(r, 1_000));
    assert.deepEqual(readMemories(db), before, 'the database was not restored');
    assert.deepEqual(preRestoreCopies(dirname(db)), keptBefore, 'no pre-restore copy was made');
  });

  it('"Restore Anyway…" then "Restore Anyway" restores; the progress notification closes', async function () {
    holder = await startHolder(db);
    const dialog = await openRestoreDialog();
    await dialog.getByRole('button', { name: 'Restore Anyway…', exact: true }).click();
    await waitFor(async () => /while node \(pid \d+\) has the database open\?$/.test(await dialog.locator('.dialog-message-text').innerText()), { timeoutMs: 30_000, message: 'the second confirmation' });
    assert.equal(await focusedButton(), 'Check Again', 'the safe choice has the focus in the second dialog too');
    await dialog.getByRole('button', { name: 'Restore Anyway', exact: true }).click();
    await dialog.waitFor({ state: 'hidden', timeout: 10_000 });
    const toast = page.locator('.notifications-toasts .notification-toast', { hasText: 'Restored the snapshot of' });
    await toast.first().waitFor({ state: 'visible', timeout: 30_000 });
    const progress = page.locator('.notifications-toasts .notification-toast', { hasText: 'restoring the snapshot of' });
    await waitFor(async () => (await progress.count()) === 0, { timeoutMs: 3_000, message: 'the restore progress notification to close' });
    await clearNotifications(page);
  });
});
