/**
 * Modal confirmations go through here, so that automation (another extension, or our own
 * tests in the real extension host) can answer them through the extension's API instead
 * of a person. The UI tests answer the real dialogs with real clicks.
 */
import * as vscode from 'vscode';

export type ConfirmationHandler = (message: string, detail: string, confirmLabel: string) => boolean | Promise<boolean>;

let handler: ConfirmationHandler | undefined;

export function setConfirmationHandler(h: ConfirmationHandler | undefined): void {
  handler = h;
}

/** A modal warning with one confirming button; true when it was pressed. */
export async function confirm(message: string, detail: string, confirmLabel: string): Promise<boolean> {
  if (handler) return handler(message, detail, confirmLabel);
  const picked = await vscode.window.showWarningMessage(message, { modal: true, detail }, confirmLabel);
  return picked === confirmLabel;
}
