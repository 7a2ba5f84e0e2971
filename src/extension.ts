// Entry point: wires the features together. Placeholder until the features land (issue 3).
import * as vscode from 'vscode';

export function activate(context: vscode.ExtensionContext): void {
  const log = vscode.window.createOutputChannel('AI Memory', { log: true });
  context.subscriptions.push(log);
  context.subscriptions.push(
    vscode.commands.registerCommand('aiMemory.showLog', () => log.show()),
  );
  const status = vscode.window.createStatusBarItem('aiMemory.status', vscode.StatusBarAlignment.Left, 10);
  status.name = 'AI Memory Backup';
  status.text = '$(database) AI Memory';
  status.command = 'aiMemory.showLog';
  status.show();
  context.subscriptions.push(status);
  log.info(`activated in VS Code ${vscode.version}`);
}

export function deactivate(): void {}
