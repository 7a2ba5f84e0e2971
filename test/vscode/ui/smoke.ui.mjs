// UI smoke test: Playwright drives the real workbench (code-server 1.100.3 in chromium) that
// test/vscode/run.mjs started with the installed .vsix. Add more *.ui.mjs files beside this one.
// Writes status-bar.png (the status-bar item's tooltip over the AI Memory log) into
// test-results/vscode/screenshots/.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { clearNotifications, currentSession, runCommand, screenshotsDir, statusBarItem, waitFor, windowScreenshot } from '../harness.mjs';

const EXTENSION_ID = 'ai-memory-tools.ai-memory-backup';

/** Sets a number/text setting in the Settings editor (user scope) and closes the editor. */
async function setSettingInEditor(page, key, value) {
  await runCommand(page, 'Preferences: Open User Settings');
  const editor = page.locator('.settings-editor');
  await editor.waitFor({ state: 'visible', timeout: 15_000 });
  await page.keyboard.type(key); // the search box has the focus
  const input = editor.locator(`.setting-item-contents[data-key="${key}"] input`).first();
  await input.waitFor({ state: 'visible', timeout: 15_000 });
  await input.fill(value);
  await input.press('Tab');
  await runCommand(page, 'View: Close All Editors');
  await editor.waitFor({ state: 'hidden', timeout: 10_000 });
}

describe('UI smoke: AI Memory in the workbench', function () {
  this.timeout(60_000);

  it('shows the status-bar item: a database icon and when the last backup ran', async function () {
    const { page } = currentSession();
    const item = statusBarItem(page, { extensionId: EXTENSION_ID, id: 'aiMemory.status' });
    await item.waitFor({ state: 'visible', timeout: 30_000 });
    assert.equal(await item.locator('.codicon-database').count(), 1);
    assert.match(await item.innerText(), /AI Memory( just now| \d+ min| \d+ h|: no backup yet)/, "it says what it is (issue 15 #10)");
    // Its accessible name carries the tooltip: the extension and the database it protects.
    assert.match((await item.getAttribute('aria-label')) ?? '', /AI Memory Backup.*memories\.db/s);
  });

  it('"AI Memory: Show Log" from the Command Palette opens the AI Memory output channel', async function () {
    const { page } = currentSession();
    const panel = page.locator('.part.panel');
    // The integration suites may have opened it already: start from a hidden panel.
    if (await panel.isVisible()) {
      await runCommand(page, 'View: Hide Panel');
      await panel.waitFor({ state: 'hidden', timeout: 10_000 });
    }

    await runCommand(page, 'AI Memory: Show Log');

    await panel.waitFor({ state: 'visible', timeout: 15_000 });
    const channelPicker = panel.locator('select.monaco-select-box').first();
    await channelPicker.waitFor({ state: 'visible', timeout: 15_000 });
    const channel = await channelPicker.evaluate((select) => select.options[select.selectedIndex]?.text ?? '');
    assert.equal(channel, 'AI Memory');
    // The view shows the end of the log (earlier lines are virtualised away): any log line.
    await panel.locator('.view-lines .view-line', { hasText: /\[info\]/ }).first().waitFor({ state: 'visible', timeout: 30_000 });

    // For the README: the status-bar item's tooltip above it, over the log in the Output panel,
    // with the hourly schedule on (the session turns it off), set in the Settings editor.
    const item = statusBarItem(page, { extensionId: EXTENSION_ID, id: 'aiMemory.status' });
    await setSettingInEditor(page, 'aiMemory.backup.intervalMinutes', '60');
    try {
      await waitFor(async () => /Next scheduled backup: .*every 60 min/.test((await item.getAttribute('aria-label')) ?? ''), {
        timeoutMs: 15_000,
        message: 'the status bar to show the hourly schedule',
      });
      await clearNotifications(page);
      await windowScreenshot(page, join(screenshotsDir, 'status-bar.png'), {
        width: 1200,
        height: 750,
        before: async () => {
          await page.mouse.move(600, 300);
          await item.hover();
          await page.locator('.monaco-hover:not(.hidden)', { hasText: 'AI Memory Backup' }).last().waitFor({ state: 'visible', timeout: 10_000 });
        },
      });
      await page.mouse.move(600, 300);
    } finally {
      await setSettingInEditor(page, 'aiMemory.backup.intervalMinutes', '0');
    }
  });
});
