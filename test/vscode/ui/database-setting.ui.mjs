// The aiMemory.databasePath setting as a user meets it in code-server (issue 15 #7, #2, #3,
// #11, #16): it is in the User settings (not only on the Remote tab) and a value there
// applies; a path with no file makes the view say "not found" with Select Database… / Open
// Settings (no "Back Up Now" that can only fail); the failed backup's notification speaks of
// the setting (not the CLI's --db) in whole sentences; the log says where the path came
// from; clearing the setting brings the discovered database back without a red status bar.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { clearNotifications, currentSession, extensionLogFiles, openViewContainer, runCommand, statusBarItem, waitFor } from '../harness.mjs';

const EXTENSION_ID = 'ai-memory-tools.ai-memory-backup';

/** Sets a text setting in the Settings editor's User tab and closes the editor. */
async function setUserSetting(page, key, value) {
  await runCommand(page, 'Preferences: Open User Settings');
  const editor = page.locator('.settings-editor');
  await editor.waitFor({ state: 'visible', timeout: 15_000 });
  await page.keyboard.type(key); // the search box has the focus
  try {
    const tab = editor.locator('.settings-tabs-widget .checked').first();
    assert.match(await tab.innerText({ timeout: 5_000 }), /^User/, 'the User tab');
    const input = editor.locator(`.setting-item-contents[data-key="${key}"] input`).first();
    await input.waitFor({ state: 'visible', timeout: 15_000 });
    await input.fill(value);
    await input.press('Tab');
  } finally {
    await runCommand(page, 'View: Close All Editors');
    await editor.waitFor({ state: 'hidden', timeout: 10_000 });
  }
}

describe('UI: the database path setting in User settings', function () {
  this.timeout(120_000);
  let page;
  let dirs;
  let item;
  let missing;
  const log = () => extensionLogFiles(dirs, EXTENSION_ID, 'AI Memory').map((f) => readFileSync(f, 'utf8')).join('\n');

  after(async function () {
    // Whatever happened above, the next tests get the discovered database back.
    if (/database not found|backup failed/.test(await item.innerText().catch(() => ''))) await setUserSetting(page, 'aiMemory.databasePath', '').catch(() => {});
  });

  before(async function () {
    ({ page, dirs } = currentSession());
    item = statusBarItem(page, { extensionId: EXTENSION_ID, id: 'aiMemory.status' });
    missing = join(dirs.home, 'nowhere', 'memories.db');
    await clearNotifications(page);
  });

  it('a path with no file, typed in User settings, applies: the view says not found and offers the ways out', async function () {
    await setUserSetting(page, 'aiMemory.databasePath', missing);
    await waitFor(async () => /AI Memory: database not found/.test(await item.innerText()), { timeoutMs: 15_000, message: 'the status bar to say the database is not found' });
    const sidebar = await openViewContainer(page, 'AI Memory');
    const welcome = sidebar.locator('.welcome-view-content');
    await waitFor(async () => /setting aiMemory\.databasePath was not found/.test(await welcome.innerText().catch(() => '')), { timeoutMs: 15_000, message: 'the "not found" welcome' });
    const buttons = await welcome.locator('.monaco-button').allInnerTexts();
    assert.deepEqual(buttons.map((b) => b.trim()), ['Select Database…', 'Open Settings']);
    assert.doesNotMatch(await welcome.innerText(), /Back Up Now/);
    await waitFor(() => log().includes(`database: ${missing} — from setting aiMemory.databasePath (User) — NOT FOUND`), { timeoutMs: 10_000, message: 'the log to say where the path came from' });
  });

  it('"AI Memory: Backup" fails with a hint about the setting, in sentences — not the CLI\'s --db', async function () {
    await runCommand(page, 'AI Memory: Backup');
    const toast = page.locator('.notifications-toasts .notification-toast', { hasText: 'AI Memory backup failed' }).first();
    await toast.waitFor({ state: 'visible', timeout: 30_000 });
    const text = await toast.locator('.notification-list-item-message').innerText();
    assert.match(text, /memories\.db\. The path is the setting aiMemory\.databasePath \(User\)/, text);
    assert.doesNotMatch(text, /--db|\$AI_MEMORY_DB/, text);
    assert.ok((await toast.locator('.monaco-button', { hasText: 'Open Settings' }).count()) === 1, 'an Open Settings button');
    await waitFor(async () => /Last backup failed/.test((await item.getAttribute('aria-label')) ?? ''), { timeoutMs: 10_000, message: 'the status bar\'s tooltip to show the failure' });
    await clearNotifications(page);
  });

  it('clearing the setting brings back the discovered database, without the other database\'s failure', async function () {
    await setUserSetting(page, 'aiMemory.databasePath', '');
    await waitFor(async () => /AI Memory (just now|\d+ min)|AI Memory: no backup yet/.test(await item.innerText()), { timeoutMs: 15_000, message: 'the status bar back on the discovered database' });
    const cls = (await item.getAttribute('class')) ?? '';
    const bg = await item.evaluate((el) => getComputedStyle(el).backgroundColor);
    assert.doesNotMatch(await item.innerText(), /failed/);
    assert.ok(!/error-kind/.test(cls), `no error colour: ${cls} ${bg}`);
  });
});
