// UI smoke test: Playwright drives the real workbench (code-server 1.100.3 in chromium) that
// test/vscode/run.mjs started with the installed .vsix. Add more *.ui.mjs files beside this one.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { currentSession, repoRoot, runCommand, statusBarItem, windowScreenshot } from '../harness.mjs';

const EXTENSION_ID = 'ai-memory-tools.ai-memory-backup';

describe('UI smoke: AI Memory in the workbench', function () {
  this.timeout(60_000);

  it('shows the status-bar item', async function () {
    const { page } = currentSession();
    const item = statusBarItem(page, { extensionId: EXTENSION_ID, id: 'aiMemory.status' });
    await item.waitFor({ state: 'visible', timeout: 30_000 });
    assert.match(await item.innerText(), /AI Memory/);
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
    await panel.locator('.view-lines', { hasText: 'activated in VS Code' }).first().waitFor({ state: 'visible', timeout: 15_000 });

    // For the README: the log in the Output panel above the status-bar item.
    await windowScreenshot(page, join(repoRoot, 'docs', 'screenshots', 'status-bar.png'), { width: 900, height: 560 });
  });
});

