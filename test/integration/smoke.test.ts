// Runs inside the real extension host (code-server 1.100.3) through test/vscode/run.mjs:
// the extension under test is the INSTALLED .vsix, `vscode` is the real API.
import * as assert from 'node:assert/strict';
import * as vscode from 'vscode';

const EXTENSION_ID = 'ai-memory-tools.ai-memory-backup';

/** Polls until `check` is true: onStartupFinished activation happens after the runner starts. */
async function eventually(check: () => boolean, timeoutMs = 30_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return true;
}

describe('smoke: extension in a real VS Code', function () {
  this.timeout(60_000);

  it('runs in VS Code 1.100', function () {
    assert.match(vscode.version, /^1\.100\./);
  });

  it('is installed and activated by onStartupFinished', async function () {
    const ext = vscode.extensions.getExtension(EXTENSION_ID);
    assert.ok(ext, `${EXTENSION_ID} is not installed`);
    assert.ok(
      await eventually(() => ext.isActive),
      `${EXTENSION_ID} was not activated within 30 s (activationEvents: ${JSON.stringify(ext.packageJSON.activationEvents)})`,
    );
  });

  it('runs from the installed .vsix, with the sql.js wasm beside the bundle', function () {
    const ext = vscode.extensions.getExtension(EXTENSION_ID);
    assert.ok(ext);
    assert.equal(ext.packageJSON.main, './dist/extension.js');
    return vscode.workspace.fs.stat(vscode.Uri.joinPath(ext.extensionUri, 'dist', 'sql-wasm.wasm')).then((stat) => {
      assert.ok(stat.size > 100_000, `dist/sql-wasm.wasm is only ${stat.size} bytes`);
    });
  });

  it('registers aiMemory.showLog', async function () {
    const commands = await vscode.commands.getCommands(true);
    assert.ok(commands.includes('aiMemory.showLog'), 'aiMemory.showLog is not registered');
    await vscode.commands.executeCommand('aiMemory.showLog');
  });
});
